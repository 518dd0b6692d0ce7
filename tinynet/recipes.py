"""Training recipes: which network, optimizer, schedule and augmentation reach which accuracy,
plus checkpoints that let an interrupted run continue exactly where it stopped.

A recipe is data; ``run`` trains one (``tinynet.train.fit`` is the loop it calls).
``examples/mnist.py --train`` and the benchmarks both go through here, so the numbers in the
README come from the same code a user runs.
"""

import json
import math
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from . import feature_distance, networks, ops, optim
from .data import to_float
from .errors import ModelFileError
from .files import interrupts_ignored
from .model import model_from_arrays, read_npz
from .networks import NOT_A_DIGIT
from .train import Progress, SharedLine, SharedTimeLeft, TimeLeft, evaluate, fit, side_by_side


@dataclass
class Recipe:
    model: str                      # a key of networks.BUILDERS
    epochs: int
    batch_size: int
    lr: float
    optimizer: str = "adam"         # "adam" or "sgd"
    schedule: str = "cosine"        # "constant", "cosine" or "one_cycle"
    weight_decay: float = 0.0
    momentum: float = 0.9           # SGD only
    augment: dict = field(default_factory=dict)  # keyword arguments of tinynet.augment.augment
    threads: int | None = None      # threads for the ops; None: every available core
    members: int = 1                # >1: that many networks from different seeds, averaged
    negatives: float = 0.0          # "not a digit" images (class 10) per training image
    redrawn: float = 0.0            # share of training digits redrawn with an even pen
    rerendered: float = 0.0         # share of training digits rendered as the reader does
    validation: int = 0             # training images held out to watch and to calibrate on
    note: str = ""
    seconds: float | None = None    # training time measured on the 2-core development machine

    def expected_seconds(self, epochs=None):
        """About how long training takes for ``epochs`` (default the recipe's), or None."""
        if self.seconds is None:
            return None
        return self.seconds * (epochs or self.epochs) / self.epochs

    def make_optimizer(self, model):
        if self.optimizer == "adam":
            return optim.Adam(model.parameters(), lr=self.lr, weight_decay=self.weight_decay)
        return optim.SGD(model.parameters(), lr=self.lr, momentum=self.momentum,
                         weight_decay=self.weight_decay, nesterov=True)

    def make_schedule(self, total_steps):
        if self.schedule == "constant":
            return optim.constant(self.lr)
        if self.schedule == "one_cycle":
            return optim.one_cycle(self.lr, total_steps)
        return optim.cosine(self.lr, total_steps)

    def make_augment(self):
        if not self.augment:
            return None
        from .augment import augment

        settings = dict(self.augment)
        return lambda xb, rng: augment(xb, rng, **settings)


# What users' digits differ in from MNIST's, as augmentation: slant, narrow and wide hands,
# rotation, size and position in the box, a pen a little finer or bolder, now and then a gap
# where the pen skipped. Mild on purpose: the reader already brings every glyph to MNIST's
# stroke width, size and centre (tinynet/vision.py), and a first try with twice these
# amounts (pen -0.6..0.8, gaps 0.15, slant 0.25, aspect 0.8..1.2, rotation 12, elastic
# wobble) gave one network only 99.06% on the held-out digits.
ROBUST_AUGMENT = {"max_shift": 2.0, "max_rotation": 10.0, "scale": (0.9, 1.1),
                  "max_shear": 0.15, "aspect": (0.85, 1.15), "pen": (-0.3, 0.5), "gaps": 0.05,
                  "gap_radius": 1.0}

RECIPES = {
    # The original script's network and optimizer (784-128-128-10, Adam, 3 epochs, batch 32);
    # a cosine decay of the learning rate is the one addition. One thread, for tinynet's ops
    # and the BLAS alike: these products are too small to pay for waking a second one.
    "mlp": Recipe(model="mlp", epochs=3, batch_size=32, lr=1e-3, threads=1,
                  note="original network, Adam, cosine learning-rate decay", seconds=6),
    # The previous shipped recognizer: an ensemble of five conv nets with batch norm, each
    # with an output for "not a digit" (trained on generated letters, symbols, doodles,
    # scribbles and pieces of digits: tinynet/negatives.py), augmented the ways people's
    # handwriting differs (slant, aspect, rotation, size, position, pen width, broken
    # strokes), AdamW with a one-cycle learning rate. 5,000 training images are held out:
    # they are watched during training and calibrate the probabilities; the test set is only
    # measured once, at the end. Its "not a digit" output learnt a shortcut (an even pen
    # means not a digit), which cnn_redrawn removes.
    "cnn": Recipe(model="cnn", epochs=14, batch_size=128, lr=3e-3, schedule="one_cycle",
                  weight_decay=0.01, members=5, negatives=0.1, validation=5000,
                  augment=ROBUST_AUGMENT,
                  note="5 conv nets with batch norm and a not-a-digit class, handwriting "
                       "augmentation, AdamW, one-cycle", seconds=3700),
    # The shipped recognizer (`python examples/mnist.py --train`): cnn with 18 epochs, twice
    # the negatives, 30% of the training digits redrawn with an even pen as the negatives are
    # drawn (so that an even pen no longer means "not a digit" to the network) and 20%
    # rendered as the reader renders a digit in a user's file. See weights/README.md.
    "cnn_redrawn": Recipe(model="cnn", epochs=18, batch_size=128, lr=3e-3,
                          schedule="one_cycle", weight_decay=0.01, members=5, negatives=0.2,
                          redrawn=0.3, rerendered=0.2, validation=5000,
                          augment=ROBUST_AUGMENT,
                          note="5 conv nets with a not-a-digit class, digits redrawn and "
                               "rendered as the reader does, AdamW, one-cycle", seconds=2979),
    # One network of that recipe: 10 classes, the previous shipped recognizer (99.60%).
    "cnn_single": Recipe(model="cnn", epochs=12, batch_size=128, lr=3e-3, schedule="one_cycle",
                         weight_decay=0.01,
                         augment={"max_shift": 2.0, "max_rotation": 10.0, "scale": (0.9, 1.1)},
                         note="conv net with batch norm, augmentation, AdamW, one-cycle",
                         seconds=619),
    # The quickest route to 99% we found: a LeNet-sized net, one epoch, one-cycle.
    "fast": Recipe(model="small_cnn", epochs=1, batch_size=128, lr=1e-2, schedule="one_cycle",
                   note="small conv net, 1 epoch, Adam, one-cycle", seconds=7),
}


def to_jsonable(state):
    return json.loads(json.dumps(state, default=int))


CHECKPOINT_SUFFIX = ".checkpoint.npz"


def checkpoint_for(out):
    """Where training that saves its model to ``out`` keeps its checkpoint:
    ``weights/mnist.npz`` -> ``weights/mnist.checkpoint.npz`` (a name .gitignore lists)."""
    out = Path(out)
    return out.with_name(out.stem + CHECKPOINT_SUFFIX)


VALIDATION_SEED = 20261129    # the held-out images are the same whatever the training seed


def training_size(recipe, count):
    """How many images ``prepare`` gives ``recipe`` to train on, out of ``count`` MNIST
    training images: those not held out, plus the generated non-digits."""
    kept = count - recipe.validation
    return kept + _negatives_for(recipe, kept)


def _negatives_for(recipe, count):
    """How many "not a digit" images ``prepare`` adds to ``count`` digits."""
    return int(round(recipe.negatives * count))


def prepare(recipe, data, seed=0):
    """Float arrays (x, y, x_val, y_val, x_test, y_test) for training ``recipe`` on
    ``data = (x_train, y_train, x_test, y_test)`` (uint8 MNIST arrays).

    With ``recipe.validation`` > 0 that many training images (a fixed random choice) are held
    out as the validation set; otherwise the test set is watched during training (older
    recipes, whose final weights are shipped whatever it shows). With ``recipe.negatives``,
    generated "not a digit" images (class 10) are added to both, drawn from the seed; with
    ``recipe.redrawn``, that share of the training digits (a random choice from the seed) is
    replaced by the same digits redrawn with an even pen (``augment.redraw_with_pen``), the
    way the negatives are drawn, so that the pen alone cannot tell digits from the rest;
    with ``recipe.rerendered``, another share is enlarged and rendered as the reader renders
    a glyph in a user's file (``augment.rerender``)."""
    x_train, y_train, x_test, y_test = data
    x, y = to_float(x_train), y_train.astype(np.int64)
    xt, yt = to_float(x_test), y_test.astype(np.int64)
    xv, yv = xt, yt
    if recipe.validation:
        order = np.random.default_rng(VALIDATION_SEED).permutation(len(x))
        held, kept = order[:recipe.validation], np.sort(order[recipe.validation:])
        xv, yv, x, y = x[held], y[held], x[kept], y[kept]
    if recipe.redrawn or recipe.rerendered:
        from .augment import redraw_with_pen, rerender

        rng = np.random.default_rng([seed, 3])
        u = rng.random(len(x))
        pick = np.flatnonzero(u < recipe.redrawn)
        x[pick, 0] = redraw_with_pen(x[pick, 0], rng)
        pick = np.flatnonzero((u >= recipe.redrawn) & (u < recipe.redrawn + recipe.rerendered))
        x[pick, 0] = rerender(x[pick, 0], rng)
    if recipe.negatives:
        from . import negatives

        def with_negatives(images, labels, stream):
            count = _negatives_for(recipe, len(images))
            drawn = negatives.draw(count, np.random.default_rng([seed, stream]),
                                   digits=images[:, 0])
            return (np.concatenate([images, drawn[:, None]]),
                    np.concatenate([labels, np.full(count, NOT_A_DIGIT, np.int64)]))

        x, y = with_negatives(x, y, 1)
        xv, yv = with_negatives(xv, yv, 2)
    return x, y, xv, yv, xt, yt


def run(recipe_name, data, seed=0, epochs=None, progress=True, resume=None,
        checkpoint_path=None, out=None, resumed=None):
    """Train a recipe on ``data = (x_train, y_train, x_test, y_test)`` (uint8 MNIST arrays).

    Returns the trained model (a ``Sequential``, or an ``Ensemble`` for a recipe with several
    members) with its history, test accuracy, recipe and training time (``train_seconds``,
    every run of a resumed training added up) in ``model.metadata``. The test set is
    evaluated once, at the end, unless the recipe watches it (no ``validation`` split).
    With ``resume`` (a checkpoint path) the run continues from it (``resumed``: its
    ``read_checkpoint``, when the caller has read it already, so it is not read twice). On
    Ctrl-C or SIGTERM, when ``checkpoint_path`` is given, the state at the last finished step
    is written there (with ``out``, where the finished model is meant to go) before the
    ``KeyboardInterrupt`` propagates.

    An ensemble's networks train side by side, one per core (``side_by_side_for``): two
    networks each on one core get through more images a second than one network on two
    cores, whose every op waits for both. Which networks share the cores, and with how many
    threads each, is fixed before training starts (and kept in a checkpoint), so the result
    never depends on which network finishes first.
    """
    start = time.monotonic()
    recipe = RECIPES[recipe_name]
    checkpoint = resumed
    if checkpoint is None and resume is not None:
        checkpoint = read_checkpoint(resume)                     # read once, used throughout
    ckpt = checkpoint[2] if checkpoint is not None else None
    if ckpt is not None:
        seed, epochs = ckpt["seed"], ckpt["epochs"]
    epochs = epochs or recipe.epochs
    x, y, xv, yv, xt, yt = prepare(recipe, data, seed)
    done, histories = [], []
    if ckpt is not None and recipe.members > 1:
        done = _finished_members(resume, recipe, checkpoint)
        histories = list(ckpt.get("member_histories", []))[:len(done)]
    # a checkpoint of a run that trained one network at a time (older code) goes on so
    side = ckpt.get("side_by_side", 1) if ckpt is not None else side_by_side_for(recipe)
    seconds_before = ckpt["train_seconds"] if ckpt is not None else 0.0
    info = {"recipe": recipe_name, "seed": seed, "epochs": epochs, "side_by_side": side,
            "out": None if out is None else os.path.abspath(out)}
    # One estimate of the time left for all the networks still to train.
    time_left = TimeLeft(recipe.members * epochs * len(x))
    first = len(done)                  # the group the checkpoint stopped in starts here
    for group in member_groups(recipe.members, side):
        if group[-1] < first:
            continue
        resumed = (resume, checkpoint) if checkpoint is not None and group[0] == first else None
        info.update(member=group[0], member_histories=histories, done=done,
                    train_seconds=seconds_before)
        trained = _fit_group(recipe, recipe_name, group, seed, x, y, (xv, yv), epochs,
                             progress, resumed,
                             checkpoint_path, info, start, time_left)
        done = done + [t.model for t in trained]
        histories = histories + [t.history for t in trained]
    members = done
    seconds = round(seconds_before + time.monotonic() - start, 1)
    recipe_info = {"name": recipe_name, **recipe.__dict__, "epochs": epochs, "seed": seed}
    if recipe.members == 1:
        model = members[0]
        history = histories[0]
        model.metadata.update({"history": history, "recipe": recipe_info})
        if recipe.validation:
            model.metadata["validation_accuracy"] = history["val_accuracy"][-1]
            _, model.metadata["test_accuracy"] = evaluate(model, xt, yt)
        else:   # fit tested the model on (xt, yt) after the last epoch
            model.metadata["test_accuracy"] = history["val_accuracy"][-1]
            model.metadata["test_loss"] = history["val_loss"][-1]
    else:
        model, val_accuracy = _calibrated_ensemble(members, xv, yv)
        _, test_accuracy = evaluate(model, xt, yt)
        model.metadata.update({
            "history": histories[-1], "member_histories": histories, "recipe": recipe_info,
            "validation_accuracy": val_accuracy, "test_accuracy": test_accuracy})
    model.metadata["train_seconds"] = seconds
    if recipe.negatives and recipe.validation:   # it says "not a digit": also when far
        if progress:
            print(f"fitting the feature distance on {int((y < NOT_A_DIGIT).sum()):,} "
                  "training digits", flush=True)
        model.feature_distance = _fitted_distance(model, x, y, xv, yv)
    if resume is not None:
        model.metadata["resumed_from"] = os.fspath(resume)
    return model


def fit_feature_distance(model, data):
    """Fit ``model``'s feature distance (``tinynet/feature_distance.py``) as ``run`` does at
    the end of training: on the training digits of the recipe and seed its metadata names,
    as ``prepare`` makes them from ``data``, with the threshold from the held-out digits.
    For a model trained before the test existed. Returns the ``FeatureDistance``."""
    info = model.metadata.get("recipe") or {}
    name = info.get("name")
    if name not in RECIPES or not RECIPES[name].validation:
        raise ValueError(f"the model's recipe is {name!r}; fitting a feature distance needs "
                         "one of this tinynet's recipes that holds digits out")
    x, y, xv, yv, _, _ = prepare(RECIPES[name], data, info.get("seed", 0))
    return _fitted_distance(model, x, y, xv, yv)


def _fitted_distance(model, x, y, xv, yv):
    """The feature distance of ``model`` on ``prepare``'s arrays: centres and spread from the
    training digits, the threshold from the held-out digits (not the held-out negatives)."""
    return feature_distance.fit(model, x, y, xv[yv < NOT_A_DIGIT])


def side_by_side_for(recipe):
    """How many of the recipe's networks train at once: one per core the ops may use, for an
    ensemble whose recipe leaves the threads to tinynet; else one."""
    if recipe.members <= 1 or recipe.threads is not None:
        return 1
    return max(1, min(recipe.members, ops.default_threads()))


def member_groups(members, side):
    """The networks that train together, in order: five networks two at a time are
    [[0, 1], [2, 3], [4]]."""
    return [list(range(s, min(s + side, members))) for s in range(0, members, side)]


class _Member:
    """One network of a recipe in training: model, optimizer, random generator, history,
    and its position (``state``, as ``fit`` reports it after each step)."""

    def __init__(self, recipe, recipe_name, index, seed, x, resume):
        """``resume``: None, or (path, ``read_checkpoint(path)``) to continue from."""
        self.index = index
        self.rng = np.random.default_rng(seed if recipe.members == 1 else [seed, index])
        self.model = _build(recipe, self.rng)
        self.optimizer = recipe.make_optimizer(self.model)
        self.history, self.state = {}, None
        if resume is not None:
            path, checkpoint = resume
            ckpt = load_checkpoint(path, self.model, self.optimizer, self.rng, recipe_name,
                                   index, checkpoint)
            self.history, self.state = ckpt["history"], ckpt["state"]
            order = self.state.get("order")
            if order is not None and (len(order) != len(x) or not _is_permutation(order)):
                raise ModelFileError(f"{path}: the checkpoint's shuffled order has "
                                     f"{len(order)} entries, not a permutation of the "
                                     f"{len(x)} training images (a different data set?)")

    def remember(self, state):
        self.state = state

    def fit(self, recipe, x, y, validation, epochs, progress, threads, time_left, stop=None):
        steps = epochs * math.ceil(len(x) / recipe.batch_size)
        fit(self.model, self.optimizer, x, y, epochs=epochs, batch_size=recipe.batch_size,
            rng=self.rng, schedule=recipe.make_schedule(steps), augment=recipe.make_augment(),
            validation=validation, progress=progress, history=self.history, state=self.state,
            on_step=self.remember, threads=threads, time_left=time_left, stop=stop)
        return self


def _fit_group(recipe, recipe_name, group, seed, x, y, validation, epochs, progress, resume,
               checkpoint_path, info, start, time_left):
    """Train the networks ``group`` (resuming them from ``resume`` if given), side by side
    when there are several; returns them as ``_Member``s. On Ctrl-C, writes the checkpoint:
    these networks where they stopped, the finished ones beside them."""
    members = [_Member(recipe, recipe_name, m, seed, x, resume) for m in group]
    before = group[0] * epochs * len(x)
    try:
        if len(members) == 1:
            if recipe.members > 1 and progress:
                print(f"network {group[0] + 1} of {recipe.members}", file=sys.stderr, flush=True)
            members[0].fit(recipe, x, y, validation, epochs, progress, recipe.threads,
                           (time_left, before))
        else:
            threads = max(1, ops.default_threads() // len(members))
            names = [f"network {m + 1}" for m in group]
            title = (f"networks {group[0] + 1}-{group[-1] + 1} of {recipe.members}"
                     f" ({threads} thread{'s' if threads > 1 else ''} each)")
            if progress:
                print(f"{title}, side by side", file=sys.stderr, flush=True)
                line = SharedLine(Progress() if progress is True else progress, title, names)
            shared = SharedTimeLeft(time_left, before)

            def job(k):
                report = line.lane(k) if progress else False

                def train(stop):
                    member = members[k].fit(recipe, x, y, validation, epochs, report, threads,
                                            (shared.lane(k), 0), stop)
                    if report:
                        report.finished()
                    return member
                return train

            side_by_side([job(k) for k in range(len(members))])
    except KeyboardInterrupt:
        # nothing to keep if no network has finished a step (Ctrl-C while compiling)
        if checkpoint_path is not None and any(m.state is not None for m in members):
            info = dict(info)
            info["train_seconds"] = round(info["train_seconds"] + time.monotonic() - start, 1)
            # The user has asked to stop already: another Ctrl-C must not cost the checkpoint.
            with interrupts_ignored():
                _save_group(checkpoint_path, recipe, members, info)
        raise
    return members


def _save_group(path, recipe, members, info):
    """The checkpoint of networks ``members`` in training (the first one as the file's
    model, the others under ``running.m<k>.``) and of the finished ones (``done.m<k>.``)."""
    done = info.pop("done")
    extra = {f"done.m{k}.{key}": value for k, member in enumerate(done)
             for key, value in member.arrays().items()}
    running = []
    for member in members[1:]:
        prefix = f"running.m{member.index}."
        arrays, entry = _position(member.model, member.optimizer, member.rng,
                                  member.state, member.history, prefix)
        extra.update(arrays)
        extra.update({prefix + key: value for key, value in member.model.arrays().items()})
        running.append({"member": member.index, **entry})
    if recipe.members == 1:
        for key in ("member", "member_histories", "side_by_side"):
            info.pop(key)
    elif running:
        info["running"] = running
    first = members[0]
    save_checkpoint(path, first.model, first.optimizer, first.rng, first.state,
                    first.history, info, extra)


def _build(recipe, rng):
    """A fresh network of the recipe: with an output for "not a digit" if it trains one."""
    extra = {"classes": NOT_A_DIGIT + 1} if recipe.negatives else {}
    return networks.BUILDERS[recipe.model](rng, **extra)


def _finished_members(path, recipe, checkpoint):
    """The networks an interrupted ensemble training had finished, from its checkpoint
    (``read_checkpoint(path)``)."""
    from .ensemble import member_arrays

    arrays, _, ckpt = checkpoint
    count = ckpt.get("member", 0)
    if not isinstance(count, int) or not 0 <= count < recipe.members:
        raise ModelFileError(f"{path}: damaged checkpoint: 'member' is {count!r}")
    layers = _build(recipe, 0)
    finished = {k[len("done."):]: v for k, v in arrays.items() if k.startswith("done.")}
    return [model_from_arrays(member_arrays(finished, k, layers.describe()),
                              f"{path} (finished network {k})") for k in range(count)]


def _calibrated_ensemble(members, xv, yv):
    """The members as an ``Ensemble`` whose temperature is fitted on the validation set, and
    its accuracy there (from the same logits: dividing by T changes no argmax)."""
    from .calibration import fit_temperature
    from .ensemble import Ensemble

    ensemble = Ensemble(members)
    logits = np.concatenate([ensemble.forward(xv[i:i + 1000]) for i in range(0, len(xv), 1000)])
    ensemble.temperature = fit_temperature(logits, yv)
    return ensemble, float((logits.argmax(axis=1) == yv).mean())


def _is_permutation(order):
    seen = np.zeros(len(order), dtype=bool)
    if len(order) and (order.min() < 0 or order.max() >= len(order)):
        return False
    seen[order] = True
    return bool(seen.all())


# The old name of ``run``, kept for callers written before it was renamed (``train`` is
# also the name of the module holding ``fit``).
train = run


def save_checkpoint(path, model, optimizer, rng, state, history, info, extra_arrays=None):
    """Everything needed to continue training exactly: weights, optimizer moments, the
    position in the epoch (including its shuffled order) and every random generator (and
    ``extra_arrays``: an ensemble's other networks)."""
    extra = dict(extra_arrays or {})
    arrays, entry = _position(model, optimizer, rng, state, history, "")
    extra.update(arrays)
    model.save(path, extra_arrays=extra, extra_metadata={"checkpoint": to_jsonable(
        {**info, **entry})})


def _position(model, optimizer, rng, state, history, prefix):
    """(arrays under ``prefix``, description) of where one network's training stands: its
    optimizer's moments, the epoch's shuffled order, the step, every random generator."""
    state = state or {"epoch": 0, "step": 0}     # stopped before its first step
    arrays = {}
    for key, value in optimizer.state_dict().items():
        if isinstance(value, list):
            for i, array in enumerate(value):
                arrays[f"{prefix}optim.{key}.{i}"] = array
    if "order" in state:
        arrays[f"{prefix}fit.order"] = state["order"]
    layer_rngs = {str(i): layer.rng.bit_generator.state for i, layer in enumerate(model.layers)
                  if hasattr(layer, "rng")}
    return arrays, {"state": {k: v for k, v in state.items() if k != "order"},
                    "history": history,
                    "optimizer": {"steps": optimizer.steps, "lr": optimizer.lr},
                    "rng": rng.bit_generator.state, "layer_rngs": layer_rngs}


def read_checkpoint(path):
    """(arrays, the checked description) of a checkpoint; ``ModelFileError`` if it is not
    one or is damaged. The description says which recipe it trains (``recipe``), for how many
    epochs, where the model is meant to go (``out``, None if unknown) and how far it got
    (``state``: ``epoch``, ``step``; ``running``: the same for the networks that were
    training beside it), and for how long it has trained (``train_seconds``)."""
    arrays = read_npz(path)
    saved = model_from_arrays(arrays, path)
    ckpt = saved.metadata.get("checkpoint")
    if ckpt is None:
        raise ModelFileError(f"{path}: a model file, not a training checkpoint")
    check = _Checker(path)
    check.dict(ckpt, "checkpoint", ("recipe", "seed", "epochs"))
    check.that(isinstance(ckpt["recipe"], str), "'recipe' is not a name")
    check.int(ckpt["seed"], "seed", 0)
    check.int(ckpt["epochs"], "epochs", 1)
    out = ckpt.setdefault("out", None)
    check.that(out is None or isinstance(out, str), "'out' is not a path")
    ckpt["train_seconds"] = check.number(ckpt.get("train_seconds", 0.0), "train_seconds", 0)
    check.int(ckpt.setdefault("side_by_side", 1), "side_by_side", 1)
    _check_position(check, ckpt, arrays, "", ckpt["epochs"])
    running = ckpt.setdefault("running", [])
    check.that(isinstance(running, list), "'running' is not a list")
    for entry in running:
        check.dict(entry, "running", ("member",))
        k = check.int(entry["member"], "running.member", 0)
        _check_position(check, entry, arrays, f"running.m{k}.", ckpt["epochs"])
    return arrays, saved, ckpt


def _check_position(check, entry, arrays, prefix, epochs):
    """Check one network's position (see ``_position``) in a checkpoint's description: the
    file's own network (``prefix`` "") or one that trained beside it ("running.m<k>.", the
    prefix of its arrays and of its names in the messages)."""
    check.dict(entry, prefix or "checkpoint", ("state", "history", "optimizer", "rng",
                                            "layer_rngs"))
    state = entry["state"]
    check.dict(state, f"{prefix}state", ("epoch", "step"))
    check.int(state["epoch"], f"{prefix}state.epoch", 0, epochs)
    check.int(state["step"], f"{prefix}state.step", 0)
    if state["step"] > 0:
        check.dict(state, f"{prefix}state", ("sum_loss", "correct", "seen"))
        check.number(state["sum_loss"], f"{prefix}state.sum_loss", 0)
        check.int(state["correct"], f"{prefix}state.correct", 0, state["seen"])
        check.int(state["seen"], f"{prefix}state.seen", 0)
        check.that(f"{prefix}fit.order" in arrays, "the shuffled order of the epoch is missing")
    history = entry["history"]
    check.dict(history, f"{prefix}history", ())
    for key, values in history.items():
        check.that(isinstance(values, list), f"{prefix}history '{key}' is not a list")
        for value in values:
            check.number(value, f"{prefix}history '{key}'")
    check.dict(entry["optimizer"], f"{prefix}optimizer", ("steps", "lr"))
    check.int(entry["optimizer"]["steps"], f"{prefix}optimizer.steps", 0)
    check.number(entry["optimizer"]["lr"], f"{prefix}optimizer.lr", 0)
    check.dict(entry["rng"], f"{prefix}rng", ())
    check.dict(entry["layer_rngs"], f"{prefix}layer_rngs", ())
    if f"{prefix}fit.order" in arrays:
        order = arrays[f"{prefix}fit.order"]
        check.that(order.ndim == 1 and np.issubdtype(order.dtype, np.integer),
                   "the shuffled order is not a list of image numbers")


class _Checker:
    """Raise ModelFileError naming the checkpoint and the bad entry."""

    def __init__(self, path):
        self.path = path

    def that(self, condition, problem):
        if not condition:
            raise ModelFileError(f"{self.path}: damaged checkpoint: {problem}")

    def dict(self, value, name, keys):
        self.that(isinstance(value, dict), f"'{name}' is not an object")
        missing = [k for k in keys if k not in value]
        self.that(not missing, f"'{name}' lacks {', '.join(map(repr, missing))}")

    def int(self, value, name, low=None, high=None):
        self.that(isinstance(value, int) and not isinstance(value, bool),
                  f"'{name}' is {value!r}, not a whole number")
        self.that((low is None or value >= low) and (high is None or value <= high),
                  f"'{name}' is {value}, out of range")
        return value

    def number(self, value, name, low=None):
        self.that(isinstance(value, (int, float)) and not isinstance(value, bool)
                  and math.isfinite(value), f"'{name}' is {value!r}, not a finite number")
        self.that(low is None or value >= low, f"'{name}' is {value}, out of range")
        return float(value)


def load_checkpoint(path, model, optimizer, rng, recipe_name=None, member=None,
                    checkpoint=None):
    """Restore a checkpoint into freshly built ``model``, ``optimizer`` and ``rng`` (for an
    ensemble, of network ``member``: the file's own model or one of those that trained
    beside it; None: the file's own). Returns the checkpoint's description, with ``state``
    and ``history`` those of that network. ``checkpoint``: ``read_checkpoint(path)``, when
    the caller has read it already (to restore several networks from one reading).

    Raises ``ModelFileError`` (naming ``path``) when the file is not a checkpoint, is damaged,
    trains another recipe than ``recipe_name`` or another network than ``model``, or does not
    hold network ``member``."""
    arrays, saved, ckpt = checkpoint if checkpoint is not None else read_checkpoint(path)
    check = _Checker(path)
    if recipe_name is not None and ckpt["recipe"] != recipe_name:
        raise ModelFileError(f"{path}: a checkpoint of recipe {ckpt['recipe']!r}, "
                             f"not {recipe_name!r}")
    if saved.describe() != model.describe():
        raise ModelFileError(f"{path}: checkpoint holds a different network")
    entry, prefix = ckpt, ""
    if member is not None and member != ckpt.get("member", member):
        entry = next((e for e in ckpt["running"] if e["member"] == member), None)
        check.that(entry is not None, f"network {member} is not in it")
        prefix = f"running.m{member}."
    for i, (mine, theirs) in enumerate(zip(model.layers, saved.layers)):
        for store in ("params", "buffers"):
            for name, value in getattr(theirs, store).items():
                if prefix:
                    key = f"{prefix}{i}.{store}.{name}"
                    check.that(key in arrays and arrays[key].shape == value.shape,
                               f"array {key} is missing or has the wrong shape")
                    value = arrays[key]
                getattr(mine, store)[name][...] = value
    opt_state = {"steps": entry["optimizer"]["steps"], "lr": entry["optimizer"]["lr"]}
    for key, value in optimizer.state_dict().items():
        if isinstance(value, list):
            opt_state[key] = []
            for i, current in enumerate(value):
                name = f"{prefix}optim.{key}.{i}"
                check.that(name in arrays, f"optimizer array {name} is missing")
                saved_array = arrays[name]
                check.that(saved_array.shape == current.shape,
                           f"optimizer array {name} has shape {saved_array.shape}, "
                           f"not {current.shape}")
                check.that(np.issubdtype(saved_array.dtype, np.floating)
                           and bool(np.all(np.isfinite(saved_array))),
                           f"optimizer array {name} is not finite floating point")
                opt_state[key].append(saved_array)
    optimizer.load_state_dict(opt_state)
    _set_rng_state(check, rng, entry["rng"], f"{prefix}rng")
    with_rng = {i for i, layer in enumerate(model.layers) if hasattr(layer, "rng")}
    check.that({str(i) for i in with_rng} == set(entry["layer_rngs"]),
               f"'{prefix}layer_rngs' does not match the network's random layers")
    for i, layer_state in entry["layer_rngs"].items():
        _set_rng_state(check, model.layers[int(i)].rng, layer_state,
                       f"{prefix}layer_rngs.{i}")
    state = dict(entry["state"])
    if f"{prefix}fit.order" in arrays:
        state["order"] = arrays[f"{prefix}fit.order"].astype(np.int64)
    return {**ckpt, "state": state, "history": entry["history"]}


def _set_rng_state(check, generator, state, name):
    try:
        check.that(isinstance(state, dict)
                   and state.get("bit_generator") == type(generator.bit_generator).__name__,
                   f"'{name}' is not the state of a {type(generator.bit_generator).__name__} "
                   "generator")
        generator.bit_generator.state = state
    except (TypeError, ValueError, KeyError, OverflowError) as exc:
        raise ModelFileError(f"{check.path}: damaged checkpoint: '{name}' ({exc})") from None
