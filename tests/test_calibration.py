"""Tests for tinynet.calibration: ECE, reliability bins and temperature fitting."""

import numpy as np
import pytest

from tinynet import calibration
from tinynet.calibration import (
    expected_calibration_error,
    fit_temperature,
    reliability,
    softmax_with_temperature,
)

# Four examples, two classes, five bins ((0, .2], (.2, .4], (.4, .6], (.6, .8], (.8, 1]):
#   [0.9, 0.1]   label 0: confidence 0.9, right  -> bin 4
#   [0.8, 0.2]   label 1: confidence 0.8, wrong  -> bin 3 (0.8 is the bin's right edge)
#   [0.3, 0.7]   label 1: confidence 0.7, right  -> bin 3
#   [0.55, 0.45] label 1: confidence 0.55, wrong -> bin 2
# ECE = 1/4 |1 - 0.9| + 2/4 |0.5 - 0.75| + 1/4 |0 - 0.55| = 0.025 + 0.125 + 0.1375 = 0.2875
HAND_PROBS = np.array([[0.9, 0.1], [0.8, 0.2], [0.3, 0.7], [0.55, 0.45]])
HAND_LABELS = np.array([0, 1, 1, 1])


def test_ece_of_a_small_hand_computed_set():
    assert expected_calibration_error(HAND_PROBS, HAND_LABELS, bins=5) == \
        pytest.approx(0.2875, abs=1e-12)


def test_reliability_bins_of_the_hand_computed_set():
    count, confidence, accuracy = reliability(HAND_PROBS, HAND_LABELS, bins=5)
    np.testing.assert_array_equal(count, [0, 0, 1, 2, 1])
    np.testing.assert_allclose(confidence, [0, 0, 0.55, 0.75, 0.9])
    np.testing.assert_allclose(accuracy, [0, 0, 0, 0.5, 1])


def binary_outcomes(n, rng):
    """Probabilities of class 0 spread over [0.5, 1], and labels drawn with exactly those
    probabilities: a perfectly calibrated two-class model."""
    p = rng.uniform(0.5, 1.0, n)
    labels = (rng.random(n) >= p).astype(np.int64)          # class 0 with probability p
    return p, labels


def test_a_perfectly_calibrated_model_has_an_ece_near_zero():
    p, labels = binary_outcomes(200_000, np.random.default_rng(0))
    assert expected_calibration_error(np.stack([p, 1 - p], axis=1), labels) < 0.005


def test_an_overconfident_model_has_a_clearly_positive_ece():
    p, labels = binary_outcomes(200_000, np.random.default_rng(0))
    boasted = 1 - (1 - p) ** 3             # right as often as p says, but claims more
    ece = expected_calibration_error(np.stack([boasted, 1 - boasted], axis=1), labels)
    assert ece > 0.05


def sampled_labels(logits, temperature, rng):
    """One label per row drawn from softmax(logits / temperature)."""
    probs = softmax_with_temperature(logits, temperature)
    cumulative = probs.cumsum(axis=1)
    labels = (rng.random(len(probs))[:, None] > cumulative).sum(axis=1)
    return np.minimum(labels, probs.shape[1] - 1)


@pytest.mark.parametrize("true_temperature", [0.5, 1.0, 2.5])
def test_fit_temperature_recovers_the_temperature_the_labels_were_drawn_with(true_temperature):
    rng = np.random.default_rng(1)
    logits = rng.normal(0, 4, (20_000, 10))
    labels = sampled_labels(logits, true_temperature, rng)
    assert fit_temperature(logits, labels) == pytest.approx(true_temperature, rel=0.05)


def test_the_fitted_temperature_minimises_the_nll_and_keeps_every_prediction():
    rng = np.random.default_rng(2)
    logits = rng.normal(0, 4, (5_000, 10))
    labels = sampled_labels(logits, 2.0, rng)
    t = fit_temperature(logits, labels)
    best = calibration.mean_nll(logits, labels, t)
    assert best <= calibration.mean_nll(logits, labels, t * 1.05)
    assert best <= calibration.mean_nll(logits, labels, t / 1.05)
    assert best < calibration.mean_nll(logits, labels, 1.0)
    np.testing.assert_array_equal(softmax_with_temperature(logits, t).argmax(axis=1),
                                  logits.argmax(axis=1))
    # and the model it gives is better calibrated than the overconfident one it came from
    before = expected_calibration_error(softmax_with_temperature(logits, 1.0), labels)
    after = expected_calibration_error(softmax_with_temperature(logits, t), labels)
    assert after < before / 3


def test_a_temperature_beyond_the_range_stops_at_its_end():
    logits = np.array([[5.0, 0.0], [0.0, 5.0]] * 50)
    labels = np.array([0, 1] * 50)                     # always right: sharpen without end
    low, high = calibration.TEMPERATURE_RANGE
    assert fit_temperature(logits, labels) == pytest.approx(low, rel=1e-3)
    assert fit_temperature(logits, 1 - labels) == pytest.approx(high, rel=1e-3)


def test_bad_shapes_and_labels_are_refused():
    with pytest.raises(ValueError, match="shape"):
        expected_calibration_error(np.ones(4), np.zeros(4, int))
    with pytest.raises(ValueError, match=r"labels must be integers in \[0, 2\)"):
        expected_calibration_error(HAND_PROBS, np.array([0, 1, 2, 1]))
