"""Training recipes: which network, optimizer, schedule and augmentation reach which accuracy,
plus checkpoints that let an interrupted run continue exactly where it stopped.

A recipe is data; ``run`` trains one (``tinynet.train.fit`` is the loop it calls).
``examples/mnist.py --train`` and the benchmarks both go through here, so the numbers in the
README come from the same code a user runs.
"""

import json
import math
from dataclasses import dataclass, field

import numpy as np

from . import networks, optim
from .data import to_float
from .errors import ModelFileError
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
                  note="original network, Adam, cosine learning-rate decay"),
    # The shipped recognizer: conv blocks with batch norm, random shifts/rotations/zooms,
    # AdamW with a one-cycle learning rate.
    "cnn": Recipe(model="cnn", epochs=12, batch_size=128, lr=3e-3, schedule="one_cycle",
                  weight_decay=0.01,
                  augment={"max_shift": 2.0, "max_rotation": 10.0, "scale": (0.9, 1.1)},
                  note="conv net with batch norm, augmentation, AdamW, one-cycle"),
    # The quickest route to 99% we found: a LeNet-sized net, two epochs, one-cycle.
    "fast": Recipe(model="small_cnn", epochs=2, batch_size=128, lr=6e-3, schedule="one_cycle",
                   note="small conv net, 2 epochs, Adam, one-cycle"),
}


def to_jsonable(state):
    return json.loads(json.dumps(state, default=int))


def run(recipe_name, data, seed=0, epochs=None, progress=True, resume=None,
        checkpoint_path=None):
    """Train a recipe on ``data = (x_train, y_train, x_test, y_test)`` (uint8 MNIST arrays).

    Returns the trained ``Sequential`` with its history, test accuracy and recipe in
    ``model.metadata``. With ``resume`` (a checkpoint path) the run continues from it.
    On Ctrl-C, when ``checkpoint_path`` is given, the state at the last finished step is
    written there before ``KeyboardInterrupt`` propagates.
    """
    recipe = RECIPES[recipe_name]
    x_train, y_train, x_test, y_test = data
    x, y = to_float(x_train), y_train.astype(np.int64)
    xt, yt = to_float(x_test), y_test.astype(np.int64)
    epochs = epochs or recipe.epochs

    rng = np.random.default_rng(seed)
    model = networks.BUILDERS[recipe.model](rng)
    optimizer = recipe.make_optimizer(model)
    history, state = {}, None
    if resume is not None:
        ckpt = load_checkpoint(resume, model, optimizer, rng)
        if ckpt["recipe"] != recipe_name:
            raise ModelFileError(f"{resume}: a checkpoint of recipe {ckpt['recipe']!r}, "
                                 f"not {recipe_name!r}")
        seed, epochs, history, state = ckpt["seed"], ckpt["epochs"], ckpt["history"], ckpt["state"]
    steps = epochs * math.ceil(len(x) / recipe.batch_size)

    position = {"state": state}

    def remember(s):
        position["state"] = s

    info = {"recipe": recipe_name, "seed": seed, "epochs": epochs}
    try:
        fit(model, optimizer, x, y, epochs=epochs, batch_size=recipe.batch_size, rng=rng,
            schedule=recipe.make_schedule(steps), augment=recipe.make_augment(),
            validation=(xt, yt), progress=progress, history=history, state=state,
            on_step=remember, threads=recipe.threads)
    except KeyboardInterrupt:
        if checkpoint_path is not None and position["state"] is not None:
            save_checkpoint(checkpoint_path, model, optimizer, rng, position["state"], history,
                            info)
        raise
    # fit tested the model on (xt, yt) after the last epoch; no need to do it twice.
    model.metadata.update({
        "history": history, "test_accuracy": history["val_accuracy"][-1],
        "test_loss": history["val_loss"][-1],
        "recipe": {"name": recipe_name, **recipe.__dict__, "epochs": epochs, "seed": seed},
    })
    return model


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


def load_checkpoint(path, model, optimizer, rng):
    """Restore a checkpoint into freshly built ``model``, ``optimizer`` and ``rng``."""
    arrays = read_npz(path)
    saved = model_from_arrays(arrays, path)
    ckpt = saved.metadata.get("checkpoint")
    if ckpt is None:
        raise ModelFileError(f"{path}: a model file, not a training checkpoint")
    if len(saved.layers) != len(model.layers):
        raise ModelFileError(f"{path}: checkpoint holds a different network")
    for mine, theirs in zip(model.layers, saved.layers):
        for store in ("params", "buffers"):
            for name, value in getattr(theirs, store).items():
                getattr(mine, store)[name][...] = value
    opt_state = {"steps": ckpt["optimizer"]["steps"], "lr": ckpt["optimizer"]["lr"]}
    for key, value in optimizer.state_dict().items():
        if isinstance(value, list):
            opt_state[key] = [arrays[f"optim.{key}.{i}"] for i in range(len(value))]
    optimizer.load_state_dict(opt_state)
    rng.bit_generator.state = ckpt["rng"]
    for i, layer_state in ckpt["layer_rngs"].items():
        model.layers[int(i)].rng.bit_generator.state = layer_state
    state = dict(ckpt["state"])
    if "fit.order" in arrays:
        state["order"] = arrays["fit.order"]
    ckpt["state"] = state
    return ckpt
