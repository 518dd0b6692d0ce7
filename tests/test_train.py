import io
import os
import signal
import time

import numpy as np
import pytest
from conftest import blobs, tiny_net

from tinynet import models, networks, ops, optim, recipes
from tinynet.errors import TrainingError
from tinynet.train import (
    Interrupted,
    Progress,
    SharedLine,
    SharedTimeLeft,
    TimeLeft,
    _format_time,
    describe_duration,
    evaluate,
    fit,
    fit_line,
    side_by_side,
)


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


class FakeTerminal(io.StringIO):
    def isatty(self):
        return True


def test_the_progress_line_never_wraps_in_an_80_column_terminal():
    stream = FakeTerminal()
    report = Progress(stream=stream, interval=0, width=80)
    long = ("epoch 12/12  59904/60000  loss 0.0123  acc 0.9987  12:34:56 left  "
            "123,456 img/s  and more")
    report.update(long)
    report.update("epoch 1/2  short")
    lines = stream.getvalue().split("\r")[1:]
    assert [len(line) for line in lines] == [79, 79]
    assert lines[0].rstrip() == ("epoch 12/12  59904/60000  loss 0.0123  acc 0.9987  "
                                 "12:34:56 left  123,456 img/s")
    assert lines[1].rstrip() == "epoch 1/2  short"       # the longer line is wiped


def test_a_narrow_terminal_drops_the_last_parts_first():
    assert fit_line("epoch 1/3  100/600  loss 0.1000  acc 0.9000  0:12 left  5 img/s", 45) == (
        "epoch 1/3  100/600  loss 0.1000  acc 0.9000")
    assert fit_line("epoch 1/3  100/600", 7) == "epoch 1"
    assert fit_line("x", 10) == "x"


def test_training_progress_fits_the_terminal_and_ends_each_epoch_on_its_own_line():
    x, y = blobs(200)
    xf = (x / 255).astype(np.float32)[:, None]
    rng = np.random.default_rng(0)
    model = tiny_net(rng)
    stream = FakeTerminal()
    fit(model, optim.Adam(model.parameters()), xf, y.astype(np.int64), epochs=2,
        batch_size=20, rng=rng, progress=Progress(stream=stream, interval=0, width=50))
    text = stream.getvalue()
    updates = [part.split("\n")[0] for part in text.split("\r")[1:]]
    assert len(updates) >= 20
    assert all(len(u) == 49 and u.startswith("epoch ") for u in updates)
    assert text.count("\n") == 2 and "epoch 2/2 loss" in text.splitlines()[-1]


class Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


def test_time_left_waits_for_the_compiling_first_step_and_a_few_seconds():
    clock = Clock()
    left = TimeLeft(total=1000, min_seconds=3.0, min_fraction=0.02, clock=clock)
    clock.now = 12.0                      # the first step compiled for 12 s: not counted
    assert left.update(10) is None
    clock.now = 13.0                      # 100 units in 1 s: too early to say
    assert left.update(110) is None
    clock.now = 15.0                      # 300 units in 3 s: 690 left at 100 a second
    assert left.update(310) == pytest.approx(6.9)


def test_time_left_needs_some_of_the_run_done():
    clock = Clock()
    left = TimeLeft(total=100_000, min_seconds=1.0, min_fraction=0.02, clock=clock)
    left.update(0)
    clock.now = 5.0
    assert left.update(1000) is None      # 1% done: an estimate would still swing widely
    clock.now = 10.0
    assert left.update(2000) == pytest.approx(490.0)


def test_describe_duration_and_format_time():
    assert [describe_duration(s) for s in (6, 59.6, 61, 250, 600, 619, 3600, 3960)] == [
        "6 s", "1 min", "1 min 1 s", "4 min 10 s", "10 min", "10 min", "1 h", "1 h 6 min"]
    assert _format_time(75) == "1:15" and _format_time(3725) == "1:02:05"


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


def test_part_of_a_longer_run_shows_the_time_left_for_the_whole_run():
    """An ensemble trains its networks one after another; each fit reports the time left
    for all of them, counting from the images trained before it."""
    x, y = blobs(100)
    xf = (x / 255).astype(np.float32)[:, None]
    rng = np.random.default_rng(0)
    model = tiny_net(rng)
    clock = Clock()
    left = TimeLeft(total=1000, min_seconds=0.0, min_fraction=0.0, clock=clock)
    lines = []

    class Recorder:
        def update(self, text, force=False):
            clock.now += 1.0                   # every step takes a second: 10 images/s
            lines.append(text)

        def done(self, text):
            pass

    fit(model, optim.Adam(model.parameters()), xf, y.astype(np.int64), epochs=1,
        batch_size=10, rng=rng, progress=Recorder(), time_left=(left, 400))
    # the last step: 500 of the 1000 images done, 10 a second, so 50 s left
    assert "  0:50 left  " in lines[-1]


def test_side_by_side_returns_each_jobs_result_in_order():
    assert side_by_side([lambda stop, k=k: k * 10 for k in range(3)]) == [0, 10, 20]


def test_a_failing_job_stops_the_others_and_its_error_is_raised():
    seen = {}

    def fails(stop):
        raise TrainingError("loss became nan")

    def waits(stop):
        for _ in range(500):                  # at most 5 s, then the test fails below
            if stop.requested:
                break
            time.sleep(0.01)
        seen["stop"] = stop.requested
        return "stopped"

    with pytest.raises(TrainingError, match="nan"):
        side_by_side([fails, waits])
    assert seen["stop"] is True


def test_ctrl_c_stops_every_job_after_its_step_and_raises_interrupted():
    steps = {0: 0, 1: 0}

    def job(k):
        def train(stop):
            while True:
                steps[k] += 1
                if k == 0 and steps[0] == 3:
                    os.kill(os.getpid(), signal.SIGINT)   # the main thread takes it
                if stop.requested:
                    raise KeyboardInterrupt
                time.sleep(0.01)
        return train

    with pytest.raises(Interrupted) as info:
        side_by_side([job(0), job(1)])
    assert info.value.signum == signal.SIGINT
    assert steps[0] >= 3 and steps[1] >= 1


def test_the_time_left_of_fits_side_by_side_counts_the_images_of_all():
    clock = Clock()
    shared = SharedTimeLeft(TimeLeft(total=1000, min_seconds=0.0, min_fraction=0.0,
                                     clock=clock), before=200)
    a, b = shared.lane(0), shared.lane(1)
    assert a.update(0) is None                # the first report starts the clock
    clock.now = 10.0
    assert b.update(100) == pytest.approx(70.0)   # 100 images in 10 s, 700 to go
    # 200 before + 100 + 100 done: 200 images in the 10 s, 600 to go
    assert a.update(100) == pytest.approx(30.0)


def test_the_shared_line_follows_the_first_fit_still_running():
    shown, lines = [], []

    class Recorder:
        def update(self, text, force=False):
            shown.append(text)

        def done(self, text):
            lines.append(text)

    line = SharedLine(Recorder(), "networks 1-2 of 5", ["network 1", "network 2"])
    first, second = line.lane(0), line.lane(1)
    first.update("epoch 1/18  a")
    second.update("epoch 1/18  b")           # not shown while network 1 trains
    second.done("epoch 1/18 loss 0.5")
    first.finished()
    second.update("epoch 2/18  c")
    assert shown == ["networks 1-2 of 5  epoch 1/18  a", "networks 1-2 of 5  epoch 2/18  c"]
    assert lines == ["network 2: epoch 1/18 loss 0.5"]
