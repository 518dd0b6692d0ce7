"""Training checkpoints: they know their recipe, output file and training time, and a damaged
one is a ModelFileError naming it (never a KeyError or a silently wrong resume)."""

import json

import numpy as np
import pytest
from conftest import interrupted_run, tiny_net

from tinynet import recipes
from tinynet.errors import ModelFileError
from tinynet.model import META_KEY
from tinynet.optim import Adam


def make_checkpoint(path, data, step=3, seconds=12.5, out="weights/tiny.npz"):
    """A checkpoint of recipe 'tiny' as an interrupted run writes it: ``step`` steps into
    the first epoch."""
    rng = np.random.default_rng(0)
    model = tiny_net(rng)
    optimizer = Adam(model.parameters(), lr=3e-3)
    order = rng.permutation(len(data[0]))
    state = {"epoch": 0, "step": step, "order": order, "sum_loss": 2.3 * 50 * step,
             "correct": 5 * step, "seen": 50 * step}
    recipes.save_checkpoint(path, model, optimizer, rng, state, {},
                            {"recipe": "tiny", "seed": 0, "epochs": 2, "out": out,
                             "train_seconds": seconds})
    return path


def test_a_checkpoint_knows_its_recipe_output_and_time(tmp_path, tiny_recipe):
    path = make_checkpoint(tmp_path / "c.npz", tiny_recipe)
    _, _, info = recipes.read_checkpoint(path)
    assert info["recipe"] == "tiny" and info["out"] == "weights/tiny.npz"
    assert info["epochs"] == 2 and info["state"]["step"] == 3
    assert info["train_seconds"] == 12.5


def test_a_resumed_run_adds_up_the_training_time(tmp_path, tiny_recipe):
    path = make_checkpoint(tmp_path / "c.npz", tiny_recipe, seconds=1000.0)
    model = recipes.run("tiny", tiny_recipe, progress=False, resume=path)
    assert 1000.0 <= model.metadata["train_seconds"] < 1100.0   # rounded to 0.1 s
    assert model.metadata["resumed_from"] == str(path)


def test_an_interrupted_run_writes_recipe_and_output_into_its_checkpoint(tmp_path, tiny_recipe,
                                                                         monkeypatch):
    from test_train import interrupt_at

    interrupt_at(4, monkeypatch)
    checkpoint = recipes.checkpoint_for(tmp_path / "m.npz")
    assert checkpoint == tmp_path / "m.checkpoint.npz"
    with pytest.raises(KeyboardInterrupt):
        recipes.run("tiny", tiny_recipe, progress=False, checkpoint_path=checkpoint,
                      out=tmp_path / "m.npz")
    _, _, info = recipes.read_checkpoint(checkpoint)
    assert info["recipe"] == "tiny" and info["out"] == str(tmp_path / "m.npz")
    assert info["state"] == {"epoch": 0, "step": 4, "sum_loss": info["state"]["sum_loss"],
                             "correct": info["state"]["correct"], "seen": 200}
    assert 0 <= info["train_seconds"] < 60


def edit_checkpoint(path, change_description=None, change_arrays=None):
    with np.load(path, allow_pickle=False) as f:
        arrays = {k: f[k] for k in f.files}
    meta = json.loads(str(arrays[META_KEY]))
    if change_description:
        change_description(meta["metadata"]["checkpoint"])
    if change_arrays:
        change_arrays(arrays)
    arrays[META_KEY] = np.array(json.dumps(meta))
    np.savez(path, **arrays)


def drop(key):
    return lambda c: c.pop(key)


def setitem(*keys_and_value):
    *keys, value = keys_and_value

    def change(c):
        for key in keys[:-1]:
            c = c[key]
        c[keys[-1]] = value
    return change


DAMAGE = [
    (drop("recipe"), None, "'checkpoint' lacks 'recipe'"),
    (drop("state"), None, "'checkpoint' lacks 'state'"),
    (drop("optimizer"), None, "'checkpoint' lacks 'optimizer'"),
    (drop("rng"), None, "'checkpoint' lacks 'rng'"),
    (drop("layer_rngs"), None, "'checkpoint' lacks 'layer_rngs'"),
    (setitem("recipe", 7), None, "'recipe' is not a name"),
    (setitem("epochs", "2"), None, "'epochs' is '2', not a whole number"),
    (setitem("epochs", 0), None, "'epochs' is 0, out of range"),
    (setitem("seed", True), None, "'seed' is True, not a whole number"),
    (setitem("out", 5), None, "'out' is not a path"),
    (setitem("train_seconds", float("nan")), None, "'train_seconds' is nan"),
    (setitem("state", "epoch 1"), None, "'state' is not an object"),
    (lambda c: c["state"].pop("step"), None, "'state' lacks 'step'"),
    (lambda c: c["state"].pop("seen"), None, "'state' lacks 'seen'"),
    (setitem("state", "epoch", 5), None, "'state.epoch' is 5, out of range"),
    (setitem("state", "step", -1), None, "'state.step' is -1, out of range"),
    (setitem("state", "sum_loss", "x"), None, "'state.sum_loss' is 'x'"),
    (setitem("history", [1]), None, "'history' is not an object"),
    (setitem("history", {"loss": [1, None]}), None, "'history 'loss'' is None"),
    (setitem("optimizer", "steps", 1.5), None, "'optimizer.steps' is 1.5"),
    (setitem("optimizer", "lr", None), None, "'optimizer.lr' is None"),
    (setitem("rng", "state", 3), None, "'rng'"),
    (setitem("rng", {"bit_generator": "MT19937"}), None, "'rng' is not the state of a PCG64"),
    (setitem("layer_rngs", {"0": {}}), None, "'layer_rngs' does not match"),
    (setitem("layer_rngs", "3", "state", {}), None, "'layer_rngs.3'"),
    (None, lambda a: a.pop("optim.m.0"), "optimizer array optim.m.0 is missing"),
    (None, lambda a: a.update({"optim.v.1": np.zeros(3, np.float32)}),
     "optimizer array optim.v.1 has shape (3,), not (16,)"),
    (None, lambda a: a.update({"optim.v.1": np.full(16, np.nan, np.float32)}),
     "optimizer array optim.v.1 is not finite"),
    (None, lambda a: a.pop("fit.order"), "the shuffled order of the epoch is missing"),
    (None, lambda a: a.update({"fit.order": np.zeros(5, np.float32)}),
     "the shuffled order is not a list of image numbers"),
]


@pytest.mark.parametrize("describe, arrays, message", DAMAGE)
def test_a_damaged_checkpoint_is_a_model_file_error_naming_it(tmp_path, tiny_recipe, describe,
                                                              arrays, message):
    path = make_checkpoint(tmp_path / "c.npz", tiny_recipe)
    edit_checkpoint(path, describe, arrays)
    with pytest.raises(ModelFileError) as info:
        recipes.run("tiny", tiny_recipe, progress=False, resume=path)
    assert str(info.value).startswith(f"{path}: damaged checkpoint: ")
    assert message in str(info.value)


@pytest.mark.parametrize("order, message", [
    (np.arange(499), "has 499 entries, not a permutation of the 500 training images"),
    (np.zeros(500, np.int64), "has 500 entries, not a permutation"),
    (np.arange(500) + 1, "not a permutation"),
])
def test_a_checkpoint_of_another_data_set_is_refused(tmp_path, tiny_recipe, order, message):
    path = make_checkpoint(tmp_path / "c.npz", tiny_recipe)
    edit_checkpoint(path, change_arrays=lambda a: a.update({"fit.order": order}))
    with pytest.raises(ModelFileError, match=r"c\.npz: the checkpoint's shuffled order ") as info:
        recipes.run("tiny", tiny_recipe, progress=False, resume=path)
    assert message in str(info.value)


def test_a_checkpoint_of_another_recipe_is_refused_by_name(tmp_path, tiny_recipe):
    path = make_checkpoint(tmp_path / "c.npz", tiny_recipe)
    edit_checkpoint(path, setitem("recipe", "mlp"))
    with pytest.raises(ModelFileError, match=r"c\.npz: a checkpoint of recipe 'mlp', not 'tiny'"):
        recipes.run("tiny", tiny_recipe, progress=False, resume=path)


def test_the_output_path_is_kept_absolute_so_resume_works_from_another_folder(
        tmp_path, tiny_recipe, monkeypatch):
    from test_train import interrupt_at

    monkeypatch.chdir(tmp_path)
    interrupt_at(2, monkeypatch)
    with pytest.raises(KeyboardInterrupt):
        recipes.train("tiny", tiny_recipe, progress=False, checkpoint_path="m.checkpoint.npz",
                      out="m.npz")
    _, _, info = recipes.read_checkpoint(tmp_path / "m.checkpoint.npz")
    assert info["out"] == str(tmp_path / "m.npz")



def test_ctrl_c_during_the_last_evaluation_still_checkpoints_and_resumes(tiny_recipe, tmp_path,
                                                                          monkeypatch):
    straight = recipes.run("tiny", tiny_recipe, seed=3, progress=False)
    checkpoint = tmp_path / "ckpt.npz"
    # Ctrl-C during the second evaluation: the validation after the last epoch
    interrupted_run(monkeypatch, 2, "tiny", tiny_recipe, seed=3, progress=False,
                    checkpoint_path=checkpoint)
    resumed = recipes.run("tiny", tiny_recipe, progress=False, resume=checkpoint)
    for a, b in zip(straight.layers, resumed.layers):
        for name in a.params:
            np.testing.assert_array_equal(a.params[name], b.params[name])
    assert resumed.metadata["test_accuracy"] == straight.metadata["test_accuracy"]
    assert resumed.metadata["history"]["loss"] == straight.metadata["history"]["loss"]
