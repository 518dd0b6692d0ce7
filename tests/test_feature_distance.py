"""tinynet.feature_distance: how far an image's features lie from every digit's, in a model
file, through predict, and as the reader's "not a digit"."""
import json

import numpy as np
import pytest
from conftest import blobs, tiny_net

import tinynet
from tinynet import feature_distance, networks, recipes
from tinynet.ensemble import Ensemble
from tinynet.errors import ModelFileError
from tinynet.feature_distance import FeatureDistance
from tinynet.model import META_KEY, read_npz
from tinynet.reader import rejected


def _mahalanobis(h, mu, cov):
    """(h - mu)^T S^-1 (h - mu) for each row of h, solved directly (float64)."""
    d = h - mu
    return np.einsum("nk,nk->n", d, np.linalg.solve(cov, d.T).T)


def test_score_is_the_smallest_mahalanobis_distance_averaged_over_networks():
    rng = np.random.default_rng(0)
    k, classes = 5, 3
    mus, covs, feats = [], [], []
    for _ in range(2):                                   # two networks
        a = rng.normal(size=(k, k))
        covs.append(a @ a.T + 0.5 * np.eye(k))
        mus.append(rng.normal(size=(classes, k)))
        feats.append(rng.normal(size=(7, k)))
    whiten = [np.linalg.cholesky(np.linalg.inv(c)) for c in covs]
    test = FeatureDistance(np.stack([m @ w for m, w in zip(mus, whiten)]), np.stack(whiten),
                           threshold=2.0)
    expected = np.mean([np.min([_mahalanobis(h, mu, cov) for mu in m], axis=0)
                        for h, m, cov in zip(feats, mus, covs)], axis=0)
    np.testing.assert_allclose(test.score(feats), expected, rtol=1e-9)
    np.testing.assert_allclose(test.relative(feats), expected / 2.0, rtol=1e-9)


def _digits_and_more(n=300, seed=0):
    """Blob images labelled 0-2, plus a few labelled 10 ("not a digit")."""
    x, y = blobs(n, seed)
    y = y.astype(np.int64)
    y[:20] = 10
    return x.astype(np.float32)[:, None] / 255, y


def test_fit_centres_the_digits_and_sets_the_threshold_from_held_out_digits():
    net = tiny_net(np.random.default_rng(1))
    x, y = _digits_and_more()
    held_out = _digits_and_more(seed=3)[0][:100]
    test = feature_distance.fit(net, x, y, held_out)
    h = net.features(x).astype(np.float64)
    digits = y < 10
    assert test.centres.shape == (1, 3, 16)              # classes 0-2 occur; 10 is left out
    w = test.whiten[0]
    for c in range(3):
        np.testing.assert_allclose(test.centres[0, c], h[y == c].mean(axis=0) @ w,
                                   rtol=1e-7, atol=1e-9)
    mu = np.stack([h[y == c].mean(axis=0) for c in range(3)])
    spread = h[digits] - mu[y[digits]]
    cov = spread.T @ spread / digits.sum()
    cov += np.eye(16) * feature_distance.RIDGE * np.trace(cov) / 16
    np.testing.assert_allclose(w @ w.T, np.linalg.inv(cov), rtol=1e-6)
    scores = test.score([net.features(held_out)])
    assert test.threshold == pytest.approx(np.quantile(scores, feature_distance.QUANTILE))
    assert np.mean(scores > test.threshold) <= 1 - feature_distance.QUANTILE + 0.01


def _fitted(model):
    x, y = _digits_and_more()
    model.feature_distance = feature_distance.fit(model, x, y, x[:100])
    return model


def test_predict_with_distance_gives_the_same_probabilities_from_one_pass():
    for model in (_fitted(tiny_net(np.random.default_rng(2))),
                  _fitted(Ensemble([tiny_net(np.random.default_rng(s)) for s in (3, 4)],
                                   temperature=1.3))):
        x = _digits_and_more(seed=7)[0][:50]
        probs, distances = model.predict(x, batch_size=16, distance=True)
        np.testing.assert_array_equal(probs, model.predict(x, batch_size=16))
        expected = model.feature_distance.relative(feature_distance.features(model, x))
        np.testing.assert_allclose(distances, expected, rtol=1e-5)
        assert distances.shape == (50,)


def test_predict_with_distance_needs_a_fitted_test():
    with pytest.raises(ValueError, match="no fitted feature distance"):
        tiny_net(np.random.default_rng(0)).predict(np.zeros((1, 28, 28)), distance=True)


@pytest.mark.parametrize("kind", ["network", "ensemble"])
def test_the_test_is_saved_with_the_model_and_loaded_back(tmp_path, kind):
    model = tiny_net(np.random.default_rng(5)) if kind == "network" else \
        Ensemble([tiny_net(np.random.default_rng(s)) for s in (5, 6)])
    _fitted(model).save(tmp_path / "m.npz")
    loaded = tinynet.load(tmp_path / "m.npz")
    for key, value in model.feature_distance.arrays().items():
        np.testing.assert_array_equal(loaded.feature_distance.arrays()[key], value)
    assert loaded.feature_distance.threshold == model.feature_distance.threshold
    x = _digits_and_more(seed=9)[0][:20]
    for a, b in zip(loaded.predict(x, distance=True), model.predict(x, distance=True)):
        np.testing.assert_array_equal(a, b)
    # a model without the test has none after loading either
    tiny_net(np.random.default_rng(5)).save(tmp_path / "plain.npz")
    assert tinynet.load(tmp_path / "plain.npz").feature_distance is None


def _damaged(tmp_path, change):
    path = tmp_path / "m.npz"
    _fitted(tiny_net(np.random.default_rng(5))).save(path)
    arrays = read_npz(path)
    meta = json.loads(str(arrays[META_KEY]))
    change(arrays, meta)
    arrays[META_KEY] = np.array(json.dumps(meta))
    np.savez(path, **arrays)
    return path


@pytest.mark.parametrize("change, problem", [
    (lambda a, m: m["feature_distance"].update(threshold=-1.0), "threshold is -1.0"),
    (lambda a, m: m["feature_distance"].update(threshold="far"), "threshold is 'far'"),
    (lambda a, m: a.pop("feature_distance.whiten"), "missing array feature_distance.whiten"),
    (lambda a, m: a.update({"feature_distance.whiten": np.zeros((1, 4, 4))}),
     "1 networks of 16 features need"),
    (lambda a, m: a["feature_distance.centres"].__setitem__((0, 0, 0), np.nan),
     "must hold finite floats"),
])
def test_a_damaged_test_in_a_model_file_is_named(tmp_path, change, problem):
    path = _damaged(tmp_path, change)
    with pytest.raises(ModelFileError, match=problem.replace("(", r"\(")):
        tinynet.load(path)


def test_a_test_on_a_network_not_ending_in_a_dense_layer_is_refused(tmp_path):
    net = tinynet.Sequential([tinynet.Flatten(), tinynet.Dense(784, 4), tinynet.ReLU()])
    net.feature_distance = FeatureDistance(np.zeros((1, 2, 4)), np.eye(4)[None], 1.0)
    net.save(tmp_path / "m.npz")
    with pytest.raises(ModelFileError, match="needs networks ending in a Dense layer"):
        tinynet.load(tmp_path / "m.npz")


def test_rejected_counts_far_rows_as_not_digits():
    probs = np.full((3, 11), 0.02, np.float32)
    probs[:, 3] = 0.8
    probs[2, 10], probs[2, 3] = 0.95, 0.0
    assert rejected(probs).tolist() == [False, False, True]
    assert rejected(probs, distances=np.array([0.5, 1.5, 0.2])).tolist() == [False, True, True]
    # a 10-output model can still be told an image is far
    assert rejected(probs[:, :10], distances=np.array([0.5, 1.5, 0.2])).tolist() == \
        [False, True, False]


def eleven_outputs(rng, classes=11):
    assert classes == 11
    return tinynet.Sequential([*tiny_net(rng).layers[:-1],
                                tinynet.Dense(16, 11, init="glorot", rng=rng)])


def test_a_recipe_with_negatives_fits_the_test_on_its_training_digits(tiny_recipe,
                                                                    monkeypatch):
    monkeypatch.setitem(networks.BUILDERS, "tiny11", eleven_outputs)
    monkeypatch.setitem(recipes.RECIPES, "tiny11", recipes.Recipe(
        model="tiny11", epochs=1, batch_size=50, lr=3e-3, members=2, negatives=0.2,
        validation=100))
    model = recipes.run("tiny11", tiny_recipe, seed=1, progress=False)
    test = model.feature_distance
    assert test is not None and test.centres.shape == (2, 3, 16)   # blobs: classes 0-2
    # the same test as fitting it afterwards, as --fit-distance does for an older file
    model.metadata["recipe"] = {"name": "tiny11", "seed": 1}
    again = recipes.fit_feature_distance(model, tiny_recipe)
    np.testing.assert_allclose(again.centres, test.centres, rtol=1e-6)
    assert again.threshold == pytest.approx(test.threshold, rel=1e-6)


def test_fitting_needs_a_recipe_that_holds_digits_out(tiny_recipe):
    model = tiny_net(np.random.default_rng(0))
    model.metadata["recipe"] = {"name": "tiny", "seed": 0}
    with pytest.raises(ValueError, match="holds digits out"):
        recipes.fit_feature_distance(model, tiny_recipe)
