import numpy as np

from tinynet.gradcheck import numeric_gradient, relative_error
from tinynet.losses import softmax, softmax_cross_entropy


def test_cross_entropy_matches_hand_computation():
    logits = np.array([[1.0, 2.0, 3.0]])
    loss, _ = softmax_cross_entropy(logits, np.array([0]))
    expected = -np.log(np.exp(1) / (np.exp(1) + np.exp(2) + np.exp(3)))
    assert abs(loss - expected) < 1e-12  # 2.4076059644...


def test_gradient_is_probabilities_minus_one_hot_over_batch():
    logits = np.array([[0.0, 0.0], [np.log(3.0), 0.0]])
    _, d = softmax_cross_entropy(logits, np.array([1, 0]))
    np.testing.assert_allclose(d, [[0.25, -0.25], [-0.125, 0.125]])


def test_loss_gradient_matches_finite_differences(rng):
    logits = rng.standard_normal((5, 10))
    labels = rng.integers(0, 10, 5)
    _, analytic = softmax_cross_entropy(logits, labels)
    numeric = numeric_gradient(lambda: softmax_cross_entropy(logits, labels)[0], logits)
    assert relative_error(analytic, numeric) < 1e-6


def test_huge_logits_do_not_overflow():
    logits = np.array([[1000.0, 0.0, -1000.0]], dtype=np.float32)
    loss, d = softmax_cross_entropy(logits, np.array([1]))
    assert abs(loss - 1000.0) < 1e-3
    assert np.all(np.isfinite(d))
    np.testing.assert_allclose(softmax(logits).sum(axis=1), 1.0)


def test_softmax_rows_sum_to_one_and_keep_float32(rng):
    p = softmax(rng.standard_normal((4, 10)).astype(np.float32))
    assert p.dtype == np.float32
    np.testing.assert_allclose(p.sum(axis=1), 1.0, rtol=1e-6)
