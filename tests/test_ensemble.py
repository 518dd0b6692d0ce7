"""tinynet.ensemble: several networks as one model, saved in one file; and training one."""

import json

import numpy as np
import pytest
from conftest import interrupted_run, tiny_net

import tinynet
from tinynet import ops, recipes
from tinynet.ensemble import Ensemble
from tinynet.errors import ModelFileError
from tinynet.losses import softmax
from tinynet.model import META_KEY, read_npz


def _members(count=3):
    return [tiny_net(np.random.default_rng(seed)) for seed in range(count)]


def _images(n=6):
    return np.random.default_rng(5).random((n, 1, 28, 28), dtype=np.float32)


def test_predict_is_the_renormalised_geometric_mean_of_the_members():
    members = _members()
    x = _images()
    each = np.stack([m.predict(x) for m in members]).astype(np.float64)
    geometric = np.exp(np.log(each).mean(axis=0))
    expected = geometric / geometric.sum(axis=1, keepdims=True)
    np.testing.assert_allclose(Ensemble(members).predict(x), expected, atol=1e-5)


def test_temperature_softens_without_changing_the_answer():
    members = _members()
    x = _images(20)
    sharp, soft = Ensemble(members).predict(x), Ensemble(members, temperature=3.0).predict(x)
    np.testing.assert_array_equal(sharp.argmax(axis=1), soft.argmax(axis=1))
    assert (soft.max(axis=1) < sharp.max(axis=1)).all()
    logits = Ensemble(members).forward(x)
    np.testing.assert_allclose(soft, softmax(logits / 3.0), atol=1e-5)


def test_save_and_load_round_trip(tmp_path):
    ensemble = Ensemble(_members(), temperature=1.7, metadata={"test_accuracy": 0.5})
    path = tmp_path / "ensemble.npz"
    ensemble.save(path)
    loaded = tinynet.load(path)
    assert isinstance(loaded, Ensemble)
    assert loaded.temperature == 1.7 and loaded.metadata == {"test_accuracy": 0.5}
    assert len(loaded.members) == 3
    x = _images()
    np.testing.assert_array_equal(loaded.predict(x), ensemble.predict(x))
    meta = json.loads(str(read_npz(path)[META_KEY]))
    assert meta["format_version"] == 2 and len(meta["members"]) == 3


def _rewrite(path, change):
    arrays = read_npz(path)
    meta = json.loads(str(arrays[META_KEY]))
    change(arrays, meta)
    arrays[META_KEY] = np.array(json.dumps(meta))
    np.savez(path, **arrays)


@pytest.mark.parametrize("change, message", [
    (lambda a, m: m.update(temperature=0), "temperature is 0, not a positive number"),
    (lambda a, m: m.update(temperature="hot"), "temperature is 'hot'"),
    (lambda a, m: m.update(members=[]), "the ensemble has no members"),
    (lambda a, m: a.pop("m1.1.params.W"), r"\(member 1\): missing array 1.params.W"),
    (lambda a, m: m["members"][2][-1]["config"].update(out_features=11),
     r"\(member 2\)"),
])
def test_a_damaged_ensemble_file_is_refused_by_name(tmp_path, change, message):
    path = tmp_path / "ensemble.npz"
    Ensemble(_members()).save(path)
    _rewrite(path, change)
    with pytest.raises(ModelFileError, match=message):
        tinynet.load(path)


def test_an_ensemble_is_not_trained_as_one():
    with pytest.raises(TypeError, match="train its members"):
        Ensemble(_members()).forward(_images(), training=True)
    with pytest.raises(ValueError, match="temperature"):
        Ensemble(_members(), temperature=-1)


@pytest.fixture
def tiny_ensemble_recipe(tiny_recipe, monkeypatch):
    monkeypatch.setitem(recipes.RECIPES, "tiny3", recipes.Recipe(
        model="tiny", epochs=2, batch_size=50, lr=3e-3, members=3, validation=100))
    return tiny_recipe


def test_an_ensemble_recipe_trains_each_member_and_calibrates_on_held_out_images(
        tiny_ensemble_recipe):
    model = recipes.run("tiny3", tiny_ensemble_recipe, seed=1, progress=False)
    assert isinstance(model, Ensemble) and len(model.members) == 3
    meta = model.metadata
    assert len(meta["member_histories"]) == 3
    # the members start from different seeds, so they end different
    w = [m.layers[1].params["W"] for m in model.members]
    assert not np.allclose(w[0], w[1])
    # 400 of the 500 training images were trained on, 100 held out; the test set is
    # evaluated once, at the end
    assert len(meta["member_histories"][0]["val_accuracy"]) == 2
    assert meta["validation_accuracy"] > 0.5          # three classes: chance is 1/3
    x_test, y_test = tiny_ensemble_recipe[2:]
    pred = model.predict(x_test.astype(np.float32)[:, None] / 255).argmax(axis=1)
    assert meta["test_accuracy"] == pytest.approx((pred == y_test).mean())
    assert 0.05 < model.temperature < 20


def _same_ensembles(straight, resumed):
    for k, (a, b) in enumerate(zip(straight.members, resumed.members)):
        np.testing.assert_array_equal(a.layers[1].params["W"], b.layers[1].params["W"],
                                      err_msg=f"member {k}")
    assert resumed.temperature == straight.temperature
    for a, b in zip(straight.metadata["member_histories"], resumed.metadata["member_histories"]):
        assert a["loss"] == b["loss"] and a["val_accuracy"] == b["val_accuracy"]


def test_an_interrupted_ensemble_resumes_where_it_stopped(tiny_ensemble_recipe, tmp_path,
                                                          monkeypatch):
    monkeypatch.setenv("TINYNET_THREADS", "1")        # one core: one network at a time
    assert recipes.side_by_side_for(recipes.RECIPES["tiny3"]) == 1
    straight = recipes.run("tiny3", tiny_ensemble_recipe, seed=2, progress=False)
    checkpoint = tmp_path / "ckpt.npz"
    # Ctrl-C during the third evaluation: after the second network's first epoch
    interrupted_run(monkeypatch, 3, "tiny3", tiny_ensemble_recipe, seed=2, progress=False,
                    checkpoint_path=checkpoint)
    _, _, info = recipes.read_checkpoint(checkpoint)
    assert info["member"] == 1 and info["side_by_side"] == 1 and info["running"] == []
    resumed = recipes.run("tiny3", tiny_ensemble_recipe, progress=False, resume=checkpoint)
    _same_ensembles(straight, resumed)


@pytest.fixture
def fast_ops():
    """Side by side is the fast backend's (the reference ops leave threads to the BLAS, so
    there an ensemble trains one network at a time)."""
    with ops.use("fast"):
        yield


@pytest.mark.parametrize("at_evaluation", [2, 4])
def test_on_two_cores_networks_train_two_at_a_time_and_resume_exactly(
        tiny_ensemble_recipe, tmp_path, monkeypatch, at_evaluation, fast_ops):
    monkeypatch.setenv("TINYNET_THREADS", "2")
    assert recipes.side_by_side_for(recipes.RECIPES["tiny3"]) == 2
    assert recipes.member_groups(3, 2) == [[0, 1], [2]]
    straight = recipes.run("tiny3", tiny_ensemble_recipe, seed=2, progress=False)
    checkpoint = tmp_path / "ckpt.npz"
    # Ctrl-C during the 2nd evaluation (networks 1 and 2 training side by side, in their
    # first or second epoch) or the 4th (the last of the two: both have finished)
    interrupted_run(monkeypatch, at_evaluation, "tiny3", tiny_ensemble_recipe, seed=2,
                    progress=False, checkpoint_path=checkpoint)
    _, _, info = recipes.read_checkpoint(checkpoint)
    assert info["side_by_side"] == 2 and info["member"] == 0
    assert [e["member"] for e in info["running"]] == [1]
    epochs = sorted([info["state"]["epoch"], info["running"][0]["state"]["epoch"]])
    assert epochs == [2, 2] if at_evaluation == 4 else epochs[0] < 2
    resumed = recipes.run("tiny3", tiny_ensemble_recipe, progress=False, resume=checkpoint)
    _same_ensembles(straight, resumed)


def test_networks_trained_side_by_side_equal_those_trained_alone_on_one_thread(
        tiny_ensemble_recipe, monkeypatch, fast_ops):
    """A network's result depends on the threads it was given, never on what trains beside
    it: two at a time on one thread each is three networks each trained on one thread."""
    monkeypatch.setenv("TINYNET_THREADS", "2")
    assert recipes.side_by_side_for(recipes.RECIPES["tiny3"]) == 2
    together = recipes.run("tiny3", tiny_ensemble_recipe, seed=4, progress=False)
    monkeypatch.setenv("TINYNET_THREADS", "1")
    alone = recipes.run("tiny3", tiny_ensemble_recipe, seed=4, progress=False)
    for k in (0, 1):   # the third trained alone with both threads in the first run
        np.testing.assert_array_equal(together.members[k].layers[1].params["W"],
                                      alone.members[k].layers[1].params["W"])


def test_training_size_counts_what_prepare_gives_to_train_on(tiny_recipe):
    recipe = recipes.Recipe(model="tiny", epochs=1, batch_size=50, lr=1e-3, negatives=0.2,
                            validation=100)
    x = recipes.prepare(recipe, tiny_recipe)[0]
    assert len(x) == recipes.training_size(recipe, len(tiny_recipe[0])) == 480
    assert recipes.training_size(recipes.RECIPES["cnn_redrawn"], 60000) == 66000


def test_a_recipe_redraws_the_share_of_training_digits_it_asks_for(tiny_recipe):
    recipe = recipes.Recipe(model="tiny", epochs=1, batch_size=50, lr=1e-3, redrawn=0.2,
                            rerendered=0.2, validation=100)
    plain = recipes.Recipe(model="tiny", epochs=1, batch_size=50, lr=1e-3, validation=100)
    x, y, xv, yv, _, _ = recipes.prepare(recipe, tiny_recipe, seed=3)
    x0, y0, xv0, _, _, _ = recipes.prepare(plain, tiny_recipe, seed=3)
    changed = np.any(x != x0, axis=(1, 2, 3))
    assert 0.3 < changed.mean() < 0.5                      # about 40% of the 400
    np.testing.assert_array_equal(y, y0)                   # the labels stay
    np.testing.assert_array_equal(xv, xv0)                 # held-out images are never redrawn
    again = recipes.prepare(recipe, tiny_recipe, seed=3)[0]
    np.testing.assert_array_equal(x, again)
