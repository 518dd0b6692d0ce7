import os
import signal

import numpy as np
import pytest
from conftest import blobs, tiny_net

from tinynet import models, networks, ops, optim, recipes
from tinynet.errors import TrainingError
from tinynet.train import evaluate, fit


def test_fit_learns_separable_data():
    x, y = blobs()
    xf = (x / 255).astype(np.float32)[:, None]
    rng = np.random.default_rng(0)
    model = tiny_net(rng)
    before, _ = evaluate(model, xf, y.astype(np.int64))
    history = fit(model, optim.Adam(model.parameters(), lr=3e-3), xf, y.astype(np.int64),
                  epochs=3, batch_size=50, rng=rng, progress=False)
    after, accuracy = evaluate(model, xf, y.astype(np.int64))
    assert after < before / 5
    assert accuracy > 0.95
    assert len(history["loss"]) == 3 and history["loss"][2] < history["loss"][0]


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
def test_nan_loss_stops_training_and_restores_exactly_the_last_good_weights():
    x, y = blobs(200)
    xf = (x / 255).astype(np.float32)[:, None]
    rng = np.random.default_rng(0)
    model = tiny_net(rng)
    params = [p for p, _ in model.parameters()]
    after_step = {0: [p.copy() for p in params]}
    opt = optim.SGD(model.parameters(), lr=1e30)  # float32 overflows within a few steps

    def remember(state):
        after_step[opt.steps] = [p.copy() for p in params]

    with pytest.raises(TrainingError, match="loss became (nan|inf).*restored") as info:
        fit(model, opt, xf, y.astype(np.int64), epochs=50, batch_size=20, rng=rng,
            progress=False, on_step=remember)
    message = str(info.value)
    assert "loss became" in message and "training stopped" in message
    good = int(message.split("those of step ")[1].split(" ")[0])
    for p, kept in zip(params, after_step[good]):
        np.testing.assert_array_equal(p, kept)
    for layer in model.layers:
        for value in layer.params.values():
            assert np.all(np.isfinite(value))


def interrupt_at(step_number, monkeypatch):
    """Make recipes.train receive Ctrl-C (a real SIGINT) after ``step_number`` steps."""
    real_fit = recipes.fit

    def fit_with_ctrl_c(*args, on_step, **kwargs):
        count = {"n": 0}

        def hook(state):
            on_step(state)
            count["n"] += 1
            if count["n"] == step_number:
                os.kill(os.getpid(), signal.SIGINT)

        return real_fit(*args, on_step=hook, **kwargs)

    monkeypatch.setattr(recipes, "fit", fit_with_ctrl_c)


def test_resume_after_ctrl_c_matches_an_uninterrupted_run(tiny_recipe, tmp_path, monkeypatch):
    straight = recipes.run("tiny", tiny_recipe, seed=3, progress=False)

    interrupt_at(13, monkeypatch)  # mid-way through the second epoch (10 steps per epoch)
    checkpoint = tmp_path / "ckpt.npz"
    with pytest.raises(KeyboardInterrupt):
        recipes.run("tiny", tiny_recipe, seed=3, progress=False, checkpoint_path=checkpoint)
    assert checkpoint.exists()
    monkeypatch.undo()
    monkeypatch.setitem(networks.BUILDERS, "tiny", tiny_net)
    monkeypatch.setitem(recipes.RECIPES, "tiny",
                        recipes.Recipe(model="tiny", epochs=2, batch_size=50, lr=3e-3))
    resumed = recipes.run("tiny", tiny_recipe, seed=999, progress=False, resume=checkpoint)

    for a, b in zip(straight.layers, resumed.layers):
        for name in a.params:
            np.testing.assert_array_equal(a.params[name], b.params[name])
    assert straight.metadata["history"]["loss"] == resumed.metadata["history"]["loss"]
    assert resumed.metadata["test_accuracy"] == straight.metadata["test_accuracy"]


def test_training_records_history_and_test_accuracy(tiny_recipe):
    model = recipes.run("tiny", tiny_recipe, seed=0, progress=False)
    meta = model.metadata
    assert len(meta["history"]["val_accuracy"]) == 2
    assert meta["test_accuracy"] > 0.9
    assert meta["recipe"]["name"] == "tiny" and meta["recipe"]["seed"] == 0


@pytest.mark.parametrize("keyword", ["threads", "blas_threads"])
def test_fit_runs_the_ops_on_the_threads_it_is_given(keyword):
    """threads=1 (the MLP recipe's choice) is explicit, and blas_threads, its old name, means
    the same; outside fit the worker count is back to its default."""
    fast = pytest.importorskip("tinynet.ops.fast")
    x, y = blobs(100)
    xf = (x / 255).astype(np.float32)[:, None]
    rng = np.random.default_rng(0)
    model = tiny_net(rng)
    seen = set()
    default = fast.scheduler.workers()
    with ops.use("fast"):
        fit(model, optim.Adam(model.parameters()), xf, y.astype(np.int64), epochs=1,
            batch_size=50, rng=rng, progress=False, **{keyword: 1},
            on_step=lambda state: seen.add(fast.scheduler.workers()))
    assert seen == {1}
    assert fast.scheduler.workers() == default
    assert recipes.RECIPES["mlp"].threads == 1


def test_old_names_still_work():
    assert recipes.train is recipes.run
    assert models.BUILDERS is networks.BUILDERS and models.mlp is networks.mlp
