"""Recognise handwritten digits with tinynet.

    python examples/mnist.py --train                    train on MNIST, save weights/mnist.npz
    python examples/mnist.py --load weights/mnist.npz   use a saved model
    python examples/mnist.py                            ask which (loads when not interactive)

Either way it then reads every image in digits/ (or --digits DIR/FILES) with `tinynet.read_many`,
prints one line per file as it goes (``digit7.png: 7 (98.2%)``, ``sheet.jpg: 123/456 (97.1%
for the least sure digit)``; with a model that has a "not a digit" output, also
``letter.png: not a digit (97.1% sure)``), and draws the images with their readings in one figure.
Exit status: 0 when every image was read, 1 when some could not be (or training failed),
2 for a bad command line.
"""

import argparse
import os
import signal
import sys
from pathlib import Path

_STARTED = False


def _stop_once(signum, frame):
    """Ctrl-C outside training: stop, and ignore further presses while stopping, so that an
    impatient second or third press cannot break the clean-up into a traceback. (Training
    has its own handler: first press = stop after this step, second = at once.)"""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if not _STARTED:      # still importing (Numba takes a moment): nothing to clean up
        os.write(2, b"\nmnist.py: interrupted\n")
        os._exit(130)
    raise KeyboardInterrupt


if __name__ == "__main__":
    signal.signal(signal.SIGINT, _stop_once)

import numpy as np  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # run from a checkout without installing

import tinynet  # noqa: E402
from tinynet import data, feature_distance, plots, recipes  # noqa: E402
from tinynet import train as train_module  # noqa: E402
from tinynet.errors import ModelFileError, TinynetError  # noqa: E402

DEFAULT_MODEL = "cnn_redrawn"          # the recipe of the shipped weights/mnist.npz
SHIPPED = ROOT / "weights" / "mnist.npz"


def default_out(model: str) -> Path:
    """Where --train saves a recipe's model: the default recipe replaces the shipped
    weights/mnist.npz, the original MLP goes to weights/mnist_mlp.npz, any other recipe to
    weights/mnist_<recipe>.npz (so trying one never overwrites the shipped model)."""
    if model == DEFAULT_MODEL:
        return SHIPPED
    return ROOT / "weights" / ("mnist_mlp.npz" if model == "mlp" else f"mnist_{model}.npz")


class UsageError(Exception):
    """A problem with the command line itself (exit status 2)."""


class Parser(argparse.ArgumentParser):
    def error(self, message):
        self.print_usage(sys.stderr)
        print(f"{self.prog}: error: {message}", file=sys.stderr)
        raise SystemExit(2)


def parse_args(argv):
    p = Parser(prog="mnist.py", description=__doc__.split("\n\n")[0])
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--train", action="store_true", help="train a new network on MNIST")
    mode.add_argument("--load", metavar="PATH", help="load a saved model (.npz)")
    p.add_argument("--model", choices=sorted(recipes.RECIPES),
                   help=f"network to train (default {DEFAULT_MODEL}; with --resume, the "
                   "checkpoint's)")
    p.add_argument("--out", metavar="PATH", help="where --train saves the model (with "
                   "--resume, default: where the interrupted run would have saved it)")
    p.add_argument("--epochs", type=int, metavar="N", help="override the recipe's epochs")
    p.add_argument("--seed", type=int, help="random seed (default 0)")
    p.add_argument("--data", metavar="DIR", help="folder with the MNIST files "
                   "(default: $TINYNET_DATA, then the cache, then download)")
    p.add_argument("--resume", metavar="CHECKPOINT", help="continue an interrupted --train")
    p.add_argument("--evaluate", action="store_true",
                   help="print test accuracy, per-class accuracy and the confusion matrix")
    p.add_argument("--fit-distance", action="store_true",
                   help="with --load: fit the model's feature distance (which answers 'not "
                   "a digit' for images far from every digit it learnt) on the training "
                   "digits of its recipe, and save the model back to the same file")
    p.add_argument("--digits", nargs="+", metavar="PATH", default=[str(ROOT / "digits")],
                   help="folders or image files to recognise (default digits/)")
    p.add_argument("--figure", metavar="PNG", default=str(ROOT / "out" / "predictions.png"),
                   help="where to save the predictions figure: a file (.png, .pdf, .svg, "
                   ".jpg; no extension means .png) or a folder (--evaluate puts "
                   "evaluation.png beside it)")
    p.add_argument("--no-show", action="store_true", help="do not open a window")
    p.add_argument("--no-figure", action="store_true",
                   help="do not draw the predictions figure (nor open a window)")
    args = p.parse_args(argv)
    if args.epochs is not None and args.epochs < 1:
        p.error("--epochs must be at least 1")
    try:
        args.figure = plots.figure_path(args.figure)
    except ValueError as exc:
        p.error(f"--figure {exc}")
    if args.resume:
        args.train = True
    if args.fit_distance and args.load is None:
        p.error("--fit-distance needs --load PATH (--train fits it itself)")
    if args.evaluate and args.train is False and args.load is None:
        args.load = str(SHIPPED)
    return args


def ask_load_or_train(model=DEFAULT_MODEL, out=None):
    """The original script's question. Without a terminal, load the shipped model.

    The 't' choice says up front how long training takes and which file it replaces."""
    if not sys.stdin.isatty():
        return "load"
    shipped = SHIPPED.relative_to(ROOT)
    print(f"  [l] load the trained model ({shipped})\n"
          f"  [t] train a new one: {training_plan(model, None, out or default_out(model))}")
    while True:
        try:
            answer = input("Load or train? [l/t] ").strip().lower()
        except EOFError:
            return "load"
        if answer in ("", "l", "load"):
            return "load"
        if answer in ("t", "train"):
            return "train"
        print("Please answer l or t.")


def epochs_text(epochs: int) -> str:
    """'1 epoch', '18 epochs'."""
    return f"{epochs} epoch{'s' if epochs != 1 else ''}"


def training_plan(model, epochs, out):
    """'cnn, 5 networks of 14 epochs, about 1 h 2 min (on 2 cores); then replaces
    weights/mnist.npz'."""
    recipe = recipes.RECIPES[model]
    epochs = epochs or recipe.epochs
    text = f"{model}, " + (f"{recipe.members} networks of " if recipe.members > 1 else "")
    text += epochs_text(epochs)
    seconds = recipe.expected_seconds(epochs)
    if seconds is not None:
        text += f", about {train_module.describe_duration(seconds)} (on 2 cores)"
    shown = out.relative_to(ROOT) if out.is_relative_to(ROOT) else out
    if out.exists():
        text += f"; then replaces {shown}"
        if out.resolve() == SHIPPED:
            text += " (the shipped model; `git checkout` brings it back)"
    else:
        text += f"; saves {shown}"
    return text


# -- training ------------------------------------------------------------------------------

def train(args):
    info = resumed = None
    if args.resume:
        # The checkpoint knows which recipe it trains and where the model was to be saved.
        resumed = recipes.read_checkpoint(args.resume)
        info = resumed[2]
        if args.model is not None and args.model != info["recipe"]:
            raise UsageError(f"{args.resume} continues the training of --model "
                             f"{info['recipe']}, not {args.model}")
        if info["recipe"] not in recipes.RECIPES:
            raise TinynetError(f"{args.resume}: a checkpoint of recipe {info['recipe']!r}, "
                               "which this tinynet does not have")
        for flag, given, saved in (("--epochs", args.epochs, info["epochs"]),
                                   ("--seed", args.seed, info["seed"])):
            if given is not None and given != saved:
                raise UsageError(f"{args.resume} continues a run with {flag} {saved}; "
                                 f"{flag} cannot change that when resuming")
        args.model = info["recipe"]
        if args.out is None and info["out"]:
            args.out = info["out"]
    args.model = args.model or DEFAULT_MODEL
    out = Path(args.out) if args.out else default_out(args.model)
    check_writable(out)
    checkpoint = recipes.checkpoint_for(out)
    mnist = load_mnist(args)
    recipe = recipes.RECIPES[args.model]
    if info is not None:
        images = recipes.training_size(recipe, len(mnist[0]))
        print(f"resuming {args.model} from {args.resume}: "
              f"{where_training_stood(info, recipe, images)}, after "
              f"{train_module.describe_duration(info['train_seconds'])} of training")
    else:
        print(f"training {args.model}: {recipe.note}; "
              f"{epochs_text(args.epochs or recipe.epochs)}, batch {recipe.batch_size}")
    try:
        model = recipes.run(args.model, mnist, seed=args.seed or 0, epochs=args.epochs,
                              resume=args.resume, checkpoint_path=checkpoint, out=out,
                              resumed=resumed)
    except KeyboardInterrupt as exc:
        signal.signal(signal.SIGINT, signal.SIG_IGN)    # stopping already: no more tracebacks
        where = f"; resume with --resume {checkpoint}" if checkpoint.exists() else ""
        print(f"\ninterrupted: {out} was not changed{where}", file=sys.stderr)
        raise SystemExit(128 + getattr(exc, "signum", signal.SIGINT)) from None
    seconds = model.metadata["train_seconds"]
    took = f"trained in {train_module.describe_duration(seconds)}"
    if info is not None:
        before = info["train_seconds"]
        took += (f": {train_module.describe_duration(before)} before the interruption, "
                 f"{train_module.describe_duration(seconds - before)} now")
    print(f"test accuracy {100 * model.metadata['test_accuracy']:.2f}% ({took})")
    try:
        model.save(out)
    except OSError as exc:
        kept = "the previous file is unchanged" if out.exists() else "nothing was written"
        raise TinynetError(f"could not write {out}: {exc.strerror or exc} ({kept}; the "
                           "trained model is lost)") from None
    for done in {checkpoint, Path(args.resume) if args.resume else checkpoint}:
        if done.exists() and done.resolve() != out.resolve():
            done.unlink()
    print(f"saved {out}")
    return model


def load_mnist(args):
    """The four MNIST arrays, from --data, $TINYNET_DATA, the cache or a download."""
    print(f"loading MNIST ({args.data or os.environ.get('TINYNET_DATA') or 'cache/download'})")
    return data.load_mnist(args.data, source="--data")


def where_training_stood(info, recipe, images):
    """'epoch 3 of 18, step 20 of 469' for a checkpoint, naming the networks of an
    ensemble: 'network 3 of 5 at epoch 2 of 18, step 5 of 516; network 4 at ...'."""
    steps = -(-images // recipe.batch_size)

    def at(entry):
        state = entry["state"]
        if state["epoch"] >= info["epochs"]:
            return "the end (trained)"
        return f"epoch {state['epoch'] + 1} of {info['epochs']}, step {state['step']} of {steps}"

    if recipe.members == 1:
        return at(info)
    return "; ".join([f"network {info.get('member', 0) + 1} of {recipe.members} at {at(info)}"]
                     + [f"network {e['member'] + 1} at {at(e)}" for e in info["running"]])


def check_writable(path):
    folder = path.resolve().parent
    if not folder.is_dir():
        raise UsageError(f"cannot write {path}: folder {folder} does not exist")
    if path.is_dir():
        raise UsageError(f"cannot write {path}: it is a folder; give a file name such as "
                         f"{path / 'mnist.npz'}")
    if not os.access(folder, os.W_OK) or (path.exists() and not os.access(path, os.W_OK)):
        raise UsageError(f"cannot write {path}: permission denied")


# -- evaluation ----------------------------------------------------------------------------

def evaluate(model, args):
    _, _, x_test, y_test = data.load_mnist(args.data, parts=("test",), source="--data")
    probs, far = tinynet.reader.predict(model, data.to_float(x_test))
    # a model with a "not a digit" output is scored on its best digit, so the matrix keeps
    # its ten columns; how many of these digits the reader would reject (by that output or
    # by the feature distance, as it rejects a glyph read alone) is said apart
    rejected = int((tinynet.reader.rejected(probs) | far).sum())
    has_reject_output = probs.shape[1] > tinynet.NOT_A_DIGIT
    probs = probs[:, :tinynet.NOT_A_DIGIT]
    pred = probs.argmax(axis=1)
    matrix = plots.confusion_matrix(y_test, pred)
    print(f"test accuracy {100 * (pred == y_test).mean():.2f}% on {len(y_test)} images")
    if has_reject_output:
        print(f"{rejected} of these digits judged not a digit (scored above by their best "
              "digit)")
    print("per class: " + "  ".join(
        f"{c}: {100 * matrix[c, c] / max(matrix[c].sum(), 1):.1f}%" for c in range(10)))
    print("confusion matrix (rows: true digit, columns: predicted):")
    print("     " + "".join(f"{c:>6}" for c in range(10)))
    for c in range(10):
        print(f"{c:>5}" + "".join(f"{n:>6}" for n in matrix[c]))
    wrong = np.flatnonzero(pred != y_test)
    wrong = wrong[np.argsort(-probs[wrong, pred[wrong]])][:12]
    mistakes = [(x_test[i] / 255, int(y_test[i]), int(pred[i]), float(probs[i, pred[i]]))
                for i in wrong]
    # A recipe with a validation split watched it during training, not the test set.
    held_out = "validation" if "validation_accuracy" in model.metadata else "test"
    fig = plots.evaluation(model.metadata.get("history"), matrix, mistakes, held_out=held_out)
    path = Path(args.figure).with_name("evaluation" + Path(args.figure).suffix)
    print(f"saved {plots.save(fig, path)}")


# -- recognising images --------------------------------------------------------------------

def describe(reading):
    """'7 (98.2%)' or '123/456 (97.1% for the least sure digit)', plus the top three of each
    digit the model is unsure of, and how many glyphs were left out as not digits (models
    with a "not a digit" output); 'not a digit (97.1% sure)' for an image without digits."""
    digits = reading.digits
    if not digits:
        return describe_no_digit(reading)
    if len(digits) == 1:
        text = f"{reading.text} ({100 * reading.confidence:.1f}%)"
    else:
        text = f"{reading.text} ({100 * reading.confidence:.1f}% for the least sure digit)"
    unsure = [(i, d) for i, d in enumerate(digits)
              if d.confidence < tinynet.reader.UNSURE_BELOW]
    for i, digit in unsure:
        top = np.argsort(-digit.probabilities)[:3]
        where = "" if len(digits) == 1 else f" of digit {i + 1}"
        text += f"; unsure{where}; top 3: " + ", ".join(
            f"{d} {100 * digit.probabilities[d]:.1f}%" for d in top)
    return text + left_out(reading.not_digits)


def describe_no_digit(reading):
    """'not a digit (97.1% sure)'. With several glyphs, the image holds no digit only if
    none of them is one, so the line gives the least sure of them (as a number gives its
    least sure digit): 'not a digit (3 glyphs; 81.0% sure of the least sure)'. A glyph the
    model's feature distance found far from every digit: 'not a digit (far from every digit
    the model learnt)'."""
    glyphs = reading.not_digits
    far = all(g.far for g in glyphs)
    sure = ("far from every digit the model learnt" if far
            else f"{100 * reading.confidence:.1f}% sure")
    if len(glyphs) == 1:
        text = f"not a digit ({sure})"
    else:
        text = f"not a digit ({len(glyphs)} glyphs; {sure}{'' if far else ' of the least sure'})"
    if reading.unsure:
        least = min(glyphs, key=lambda g: g.confidence)
        text += (f"; unsure; as a digit it would be {least.best_digit} "
                 f"({100 * least.best_digit_probability:.1f}%)")
    return text


def left_out(not_digits):
    """'; 1 glyph not a digit left out' ('(55.0% sure)' added when that is unsure), or ''."""
    if not not_digits:
        return ""
    count = len(not_digits)
    text = ("; 1 glyph not a digit left out" if count == 1
            else f"; {count} glyphs not digits left out")
    least = min(g.confidence for g in not_digits)
    if least < tinynet.reader.UNSURE_BELOW:     # a barely rejected glyph may be a lost digit
        text += f" ({100 * least:.1f}% sure{' of the least sure' if count > 1 else ''})"
    return text


def recognise(model, targets):
    """Read every image, printing one line each as it goes. Returns (figure entries, counts).

    Only what the figure needs is kept: every entry up to the figure's grid size, and the
    unsure readings and errors up to its summary size, so memory does not grow with the
    number of images."""
    from tinynet import plots

    first, flagged = [], []
    counts = {"read": 0, "unsure": 0, "errors": 0, "total": 0}
    for result in tinynet.read_many(targets, model):
        counts["total"] += 1
        if result.ok:
            counts["read"] += 1
            counts["unsure"] += result.unsure
            print(f"{result.name}: {describe(result)}", flush=True)
        else:
            counts["errors"] += 1
            print(f"{result.name}: error: {result.reason}", file=sys.stderr, flush=True)
        entry = None
        if len(first) <= plots.GRID_MAX:
            entry = plots.prediction_entry(result)
            first.append(entry)
        if (not result.ok or result.unsure) and len(flagged) < plots.SUMMARY_TILES:
            flagged.append(entry or plots.prediction_entry(result))
    entries = first if counts["total"] <= plots.GRID_MAX else \
        flagged + [e for e in first if not any(e is f for f in flagged)]
    return entries, counts


def fit_distance(model, args):
    """--fit-distance: fit the loaded model's feature distance as --train would have, save."""
    name = (model.metadata.get("recipe") or {}).get("name")
    mnist = load_mnist(args)
    print(f"fitting the feature distance on the training digits of recipe {name}", flush=True)
    try:
        model.feature_distance = recipes.fit_feature_distance(model, mnist)
    except ValueError as exc:
        raise TinynetError(f"{args.load}: {exc}") from None
    model.save(args.load)
    print(f"saved {args.load} (threshold {model.feature_distance.threshold:.1f}: "
          f"{100 * feature_distance.QUANTILE:.1f}% of the held-out digits lie nearer)")


def load_model(path):
    """tinynet.load, plus a check that the network maps a 28x28 image to 10 probabilities
    (or 11, the last meaning "not a digit")."""
    model = tinynet.load(path)
    try:
        shape = model.predict(np.zeros((1, 28, 28), np.float32)).shape
    except Exception as exc:
        raise ModelFileError(f"{path}: not a digit recognizer: it cannot take a 28x28 image "
                             f"({exc})") from None
    if shape not in ((1, 10), (1, 11)):
        raise ModelFileError(f"{path}: not a digit recognizer: its output for one image has "
                             f"shape {shape[1:]}, not 10 digit probabilities (or 11, with "
                             "'not a digit')")
    return model


def main(argv=None):
    global _STARTED
    _STARTED = True
    args = parse_args(sys.argv[1:] if argv is None else argv)
    try:
        if args.train:
            model = train(args)
        else:
            if args.load is None:
                model_name = args.model or DEFAULT_MODEL
                out = Path(args.out) if args.out else default_out(model_name)
                if ask_load_or_train(model_name, out) == "train":
                    args.train = True
                    if out.exists():
                        print(f"{out} will be replaced when training finishes; Ctrl-C stops "
                              "it and keeps the old file")
                    model = train(args)
                else:
                    args.load = str(SHIPPED)
            if not args.train:
                model = load_model(args.load)
                print(f"loaded {args.load}")
                if args.fit_distance:
                    fit_distance(model, args)
        if args.evaluate:
            evaluate(model, args)
        entries, counts = recognise(model, args.digits)
        failures = counts["errors"]
        if counts["read"] and not args.no_figure:
            figure = plots.predictions(entries, counts["total"], counts)
            print(f"figure saved to {plots.save_image(figure, args.figure)}")
            if not args.no_show:
                plots.show_image(figure, "tinynet: predictions")
    except UsageError as exc:
        print(f"mnist.py: error: {exc}", file=sys.stderr)
        return 2
    except TinynetError as exc:
        print(f"mnist.py: error: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:   # e.g. the disk filled up while saving the model or the figure
        name = f"{exc.filename}: " if exc.filename else ""
        print(f"mnist.py: error: {name}{exc.strerror or exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        signal.signal(signal.SIGINT, signal.SIG_IGN)    # stopping already: no more tracebacks
        print("\nmnist.py: interrupted", file=sys.stderr)
        return 130
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
