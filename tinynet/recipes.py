"""Training recipes: which network, optimizer, schedule and augmentation reach which accuracy,
plus checkpoints that let an interrupted run continue exactly where it stopped.

A recipe is data; ``run`` trains one (``tinynet.train.fit`` is the loop it calls).
``examples/mnist.py --train`` and the benchmarks both go through here, so the numbers in the
README come from the same code a user runs.
"""

import json
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from . import networks, optim
from .data import to_float
from .errors import ModelFileError
from .files import interrupts_ignored
from .model import model_from_arrays, read_npz
from .train import fit


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


RECIPES = {
    # The original script's network and optimizer (784-128-128-10, Adam, 3 epochs, batch 32);
    # a cosine decay of the learning rate is the one addition. One thread, for tinynet's ops
    # and the BLAS alike: these products are too small to pay for waking a second one.
    "mlp": Recipe(model="mlp", epochs=3, batch_size=32, lr=1e-3, threads=1,
                  note="original network, Adam, cosine learning-rate decay", seconds=6),
    # The shipped recognizer: conv blocks with batch norm, random shifts/rotations/zooms,
    # AdamW with a one-cycle learning rate.
    "cnn": Recipe(model="cnn", epochs=12, batch_size=128, lr=3e-3, schedule="one_cycle",
                  weight_decay=0.01,
                  augment={"max_shift": 2.0, "max_rotation": 10.0, "scale": (0.9, 1.1)},
                  note="conv net with batch norm, augmentation, AdamW, one-cycle", seconds=619),
    # The quickest route to 99% we found: a LeNet-sized net, two epochs, one-cycle.
    "fast": Recipe(model="small_cnn", epochs=2, batch_size=128, lr=6e-3, schedule="one_cycle",
                   note="small conv net, 2 epochs, Adam, one-cycle", seconds=24),
}


def to_jsonable(state):
    return json.loads(json.dumps(state, default=int))


CHECKPOINT_SUFFIX = ".checkpoint.npz"


def checkpoint_for(out):
    """Where training that saves its model to ``out`` keeps its checkpoint:
    ``weights/mnist.npz`` -> ``weights/mnist.checkpoint.npz`` (a name .gitignore lists)."""
    out = Path(out)
    return out.with_name(out.stem + CHECKPOINT_SUFFIX)


def run(recipe_name, data, seed=0, epochs=None, progress=True, resume=None,
        checkpoint_path=None, out=None):
    """Train a recipe on ``data = (x_train, y_train, x_test, y_test)`` (uint8 MNIST arrays).

    Returns the trained ``Sequential`` with its history, test accuracy, recipe and training
    time (``train_seconds``, every run of a resumed training added up) in ``model.metadata``.
    With ``resume`` (a checkpoint path) the run continues from it. On Ctrl-C or SIGTERM, when
    ``checkpoint_path`` is given, the state at the last finished step is written there
    (with ``out``, where the finished model is meant to go) before the ``KeyboardInterrupt``
    propagates.
    """
    start = time.monotonic()
    recipe = RECIPES[recipe_name]
    x_train, y_train, x_test, y_test = data
    x, y = to_float(x_train), y_train.astype(np.int64)
    xt, yt = to_float(x_test), y_test.astype(np.int64)
    epochs = epochs or recipe.epochs

    rng = np.random.default_rng(seed)
    model = networks.BUILDERS[recipe.model](rng)
    optimizer = recipe.make_optimizer(model)
    history, state, seconds_before = {}, None, 0.0
    if resume is not None:
        ckpt = load_checkpoint(resume, model, optimizer, rng, recipe_name=recipe_name)
        seed, epochs, history, state = ckpt["seed"], ckpt["epochs"], ckpt["history"], ckpt["state"]
        seconds_before = ckpt["train_seconds"]
        order = state.get("order")
        if order is not None and (len(order) != len(x) or not _is_permutation(order)):
            raise ModelFileError(f"{resume}: the checkpoint's shuffled order has "
                                 f"{len(order)} entries, not a permutation of the "
                                 f"{len(x)} training images (a different data set?)")
    steps = epochs * math.ceil(len(x) / recipe.batch_size)

    position = {"state": state}

    def remember(s):
        position["state"] = s

    info = {"recipe": recipe_name, "seed": seed, "epochs": epochs,
            "out": None if out is None else os.path.abspath(out)}
    try:
        fit(model, optimizer, x, y, epochs=epochs, batch_size=recipe.batch_size, rng=rng,
            schedule=recipe.make_schedule(steps), augment=recipe.make_augment(),
            validation=(xt, yt), progress=progress, history=history, state=state,
            on_step=remember, threads=recipe.threads)
    except KeyboardInterrupt:
        if checkpoint_path is not None and position["state"] is not None:
            info["train_seconds"] = round(seconds_before + time.monotonic() - start, 1)
            # The user has asked to stop already: another Ctrl-C must not cost the checkpoint.
            with interrupts_ignored():
                save_checkpoint(checkpoint_path, model, optimizer, rng, position["state"],
                                history, info)
        raise
    # fit tested the model on (xt, yt) after the last epoch; no need to do it twice.
    model.metadata.update({
        "history": history, "test_accuracy": history["val_accuracy"][-1],
        "test_loss": history["val_loss"][-1],
        "recipe": {"name": recipe_name, **recipe.__dict__, "epochs": epochs, "seed": seed},
        "train_seconds": round(seconds_before + time.monotonic() - start, 1),
    })
    if resume is not None:
        model.metadata["resumed_from"] = os.fspath(resume)
    return model


def _is_permutation(order):
    seen = np.zeros(len(order), dtype=bool)
    if len(order) and (order.min() < 0 or order.max() >= len(order)):
        return False
    seen[order] = True
    return bool(seen.all())


# The old name of ``run``, kept for callers written before it was renamed (``train`` is
# also the name of the module holding ``fit``).
train = run


def save_checkpoint(path, model, optimizer, rng, state, history, info):
    """Everything needed to continue training exactly: weights, optimizer moments, the
    position in the epoch (including its shuffled order) and every random generator."""
    extra = {}
    for key, value in optimizer.state_dict().items():
        if isinstance(value, list):
            for i, array in enumerate(value):
                extra[f"optim.{key}.{i}"] = array
    plain_state = {k: v for k, v in state.items() if k != "order"}
    if "order" in state:
        extra["fit.order"] = state["order"]
    layer_rngs = {str(i): layer.rng.bit_generator.state for i, layer in enumerate(model.layers)
                  if hasattr(layer, "rng")}
    checkpoint = {**info, "state": plain_state, "history": history,
                  "optimizer": {"steps": optimizer.steps, "lr": optimizer.lr},
                  "rng": rng.bit_generator.state, "layer_rngs": layer_rngs}
    model.save(path, extra_arrays=extra, extra_metadata={"checkpoint": to_jsonable(checkpoint)})


def read_checkpoint(path):
    """(arrays, the checked description) of a checkpoint; ``ModelFileError`` if it is not
    one or is damaged. The description says which recipe it trains (``recipe``), for how many
    epochs, where the model is meant to go (``out``, None if unknown) and how far it got
    (``state``: ``epoch``, ``step``), and for how long it has trained (``train_seconds``)."""
    arrays = read_npz(path)
    saved = model_from_arrays(arrays, path)
    ckpt = saved.metadata.get("checkpoint")
    if ckpt is None:
        raise ModelFileError(f"{path}: a model file, not a training checkpoint")
    check = _Checker(path)
    check.dict(ckpt, "checkpoint", ("recipe", "seed", "epochs", "state", "history",
                                    "optimizer", "rng", "layer_rngs"))
    check.that(isinstance(ckpt["recipe"], str), "'recipe' is not a name")
    check.int(ckpt["seed"], "seed", 0)
    check.int(ckpt["epochs"], "epochs", 1)
    out = ckpt.setdefault("out", None)
    check.that(out is None or isinstance(out, str), "'out' is not a path")
    ckpt["train_seconds"] = check.number(ckpt.get("train_seconds", 0.0), "train_seconds", 0)
    state = ckpt["state"]
    check.dict(state, "state", ("epoch", "step"))
    check.int(state["epoch"], "state.epoch", 0, ckpt["epochs"])
    check.int(state["step"], "state.step", 0)
    if state["step"] > 0:
        check.dict(state, "state", ("sum_loss", "correct", "seen"))
        check.number(state["sum_loss"], "state.sum_loss", 0)
        check.int(state["correct"], "state.correct", 0, state["seen"])
        check.int(state["seen"], "state.seen", 0)
        check.that("fit.order" in arrays, "the shuffled order of the epoch is missing")
    history = ckpt["history"]
    check.dict(history, "history", ())
    for key, values in history.items():
        check.that(isinstance(values, list), f"history '{key}' is not a list")
        for value in values:
            check.number(value, f"history '{key}'")
    check.dict(ckpt["optimizer"], "optimizer", ("steps", "lr"))
    check.int(ckpt["optimizer"]["steps"], "optimizer.steps", 0)
    check.number(ckpt["optimizer"]["lr"], "optimizer.lr", 0)
    check.dict(ckpt["rng"], "rng", ())
    check.dict(ckpt["layer_rngs"], "layer_rngs", ())
    if "fit.order" in arrays:
        order = arrays["fit.order"]
        check.that(order.ndim == 1 and np.issubdtype(order.dtype, np.integer),
                   "the shuffled order is not a list of image numbers")
    return arrays, saved, ckpt


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


def load_checkpoint(path, model, optimizer, rng, recipe_name=None):
    """Restore a checkpoint into freshly built ``model``, ``optimizer`` and ``rng``.

    Raises ``ModelFileError`` (naming ``path``) when the file is not a checkpoint, is damaged,
    or trains another recipe than ``recipe_name`` or another network than ``model``."""
    arrays, saved, ckpt = read_checkpoint(path)
    check = _Checker(path)
    if recipe_name is not None and ckpt["recipe"] != recipe_name:
        raise ModelFileError(f"{path}: a checkpoint of recipe {ckpt['recipe']!r}, "
                             f"not {recipe_name!r}")
    if saved.describe() != model.describe():
        raise ModelFileError(f"{path}: checkpoint holds a different network")
    for mine, theirs in zip(model.layers, saved.layers):
        for store in ("params", "buffers"):
            for name, value in getattr(theirs, store).items():
                getattr(mine, store)[name][...] = value
    opt_state = {"steps": ckpt["optimizer"]["steps"], "lr": ckpt["optimizer"]["lr"]}
    for key, value in optimizer.state_dict().items():
        if isinstance(value, list):
            opt_state[key] = []
            for i, current in enumerate(value):
                name = f"optim.{key}.{i}"
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
    _set_rng_state(check, rng, ckpt["rng"], "rng")
    with_rng = {i for i, layer in enumerate(model.layers) if hasattr(layer, "rng")}
    check.that({str(i) for i in with_rng} == set(ckpt["layer_rngs"]),
               "'layer_rngs' does not match the network's random layers")
    for i, layer_state in ckpt["layer_rngs"].items():
        _set_rng_state(check, model.layers[int(i)].rng, layer_state, f"layer_rngs.{i}")
    state = dict(ckpt["state"])
    if "fit.order" in arrays:
        state["order"] = arrays["fit.order"].astype(np.int64)
    ckpt["state"] = state
    return ckpt


def _set_rng_state(check, generator, state, name):
    try:
        check.that(isinstance(state, dict)
                   and state.get("bit_generator") == type(generator.bit_generator).__name__,
                   f"'{name}' is not the state of a {type(generator.bit_generator).__name__} "
                   "generator")
        generator.bit_generator.state = state
    except (TypeError, ValueError, KeyError, OverflowError) as exc:
        raise ModelFileError(f"{check.path}: damaged checkpoint: '{name}' ({exc})") from None
