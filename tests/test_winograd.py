"""Winograd F(4x4, 3x3) convolution: the readable twin in ops/reference.py and the fast
kernels in ops/fast/winograd.py agree with each other and with the direct (im2col)
convolution, in float32 and float64, for odd sizes and padding; the gradients pass
finite-difference checks; the fast conv2d ops route 3x3 stride-1 layers through it."""

import numpy as np
import pytest

from tinynet import ops
from tinynet.gradcheck import check_layer
from tinynet.layers.conv import Conv2D
from tinynet.ops import reference as ref

fast = pytest.importorskip("tinynet.ops.fast", reason="the fast backend needs Numba")

# (N, C, H, W, F, pad): odd and even outputs, padding up to 2, one-tile planes, a batch cut
# into several slices, and conv2 of the examples CNN
CASES = [
    (2, 3, 7, 9, 4, 0),
    (3, 2, 8, 8, 5, 1),
    (1, 2, 5, 6, 3, 2),
    (1, 1, 3, 3, 2, 0),
    (2, 5, 4, 11, 3, 1),
    (2, 3, 6, 6, 2, 0),
    (1, 2, 10, 7, 3, 1),
    (40, 16, 14, 13, 8, 1),
    (9, 32, 26, 26, 64, 0),
]
IDS = ["x".join(map(str, c)) for c in CASES]


def _r(shape, seed, dtype=np.float32):
    return np.random.default_rng(seed).standard_normal(shape).astype(dtype)


def _inputs(case, dtype):
    N, C, H, W, F, pad = case
    return _r((N, C, H, W), 0, dtype), _r((F, C, 3, 3), 1, dtype), _r(F, 2, dtype), pad


def rel(a, b):
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    assert a.shape == b.shape
    return float(np.abs(a - b).max() / max(np.abs(b).max(), 1e-30))


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_reference_twin_is_the_convolution(case):
    x, W, b, pad = _inputs(case, np.float64)
    y = ref.conv2d_forward(x, W, b, 1, pad)
    assert rel(ref.conv2d_winograd_forward(x, W, b, pad), y) < 1e-11
    g = _r(y.shape, 3, np.float64)
    for need_dx in (True, False):
        direct = ref.conv2d_backward(g, x, W, 1, pad, need_dx)
        wino = ref.conv2d_winograd_backward(g, x, W, pad, need_dx)
        for a, c in zip(wino, direct):
            assert (a is None) == (c is None)
            if a is not None:
                assert rel(a, c) < 1e-11


@pytest.mark.parametrize("dtype, tol", [(np.float32, 2e-5), (np.float64, 1e-12)])
@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_fast_kernels_agree_with_the_twin(case, dtype, tol):
    x, W, b, pad = _inputs(case, dtype)
    y = fast.conv2d_winograd_forward(x, W, b, pad)
    assert y.dtype == dtype
    assert rel(y, ref.conv2d_winograd_forward(x, W, b, pad)) < tol
    g = _r(y.shape, 3, dtype)
    for need_dx in (True, False):
        mine = fast.conv2d_winograd_backward(g, x, W, pad, need_dx)
        twin = ref.conv2d_winograd_backward(g, x, W, pad, need_dx)
        for a, c in zip(mine, twin):
            assert (a is None) == (c is None)
            if a is not None:
                assert a.dtype == dtype
                assert rel(a, c) < tol


@pytest.mark.parametrize("case", [CASES[1], CASES[7], CASES[8]], ids=[IDS[1], IDS[7], IDS[8]])
def test_training_keeps_the_input_tiles_for_backward_and_gets_the_same_gradients(case):
    """With ``saved`` (a training step) the fast forward keeps each slice's transformed input
    tiles V (as V^T, for the backward's product), the backward uses them instead of
    transforming x again, and lets them go: the gradients are those of a backward that
    recomputes V."""
    x, W, b, pad = _inputs(case, np.float32)
    saved = {}
    y = fast.conv2d_winograd_forward(x, W, b, pad, saved=saved)
    assert saved and all(key[0] == "wino_Vt" for key in saved)
    np.testing.assert_array_equal(y, fast.conv2d_winograd_forward(x, W, b, pad))
    g = _r(y.shape, 3)
    recomputed = fast.conv2d_winograd_backward(g, x, W, pad)
    kept = fast.conv2d_winograd_backward(g, np.zeros_like(x), W, pad, saved=saved)
    assert saved == {}
    # x was replaced by zeros: dW can only be right if the kept V was used
    for a, c in zip(kept[1:], recomputed[1:]):
        np.testing.assert_array_equal(a, c)
    np.testing.assert_array_equal(kept[0], recomputed[0])      # dx does not depend on x


def _tiles_of(xp, TH, TW):
    """(T, C, 6, 6): the overlapping 6x6 tiles of xp (n, C, HP, WP), t = (n, th, tw)."""
    return np.stack([xp[n, :, 4 * th:4 * th + 6, 4 * tw:4 * tw + 6] for n in range(len(xp))
                     for th in range(TH) for tw in range(TW)])


@pytest.mark.parametrize("n, C, TH, TW", [(2, 3, 2, 3), (1, 32, 6, 6), (3, 1, 1, 1)])
def test_input_transform_writes_each_tiles_bt_d_b_channels_last(n, C, TH, TW):
    xp = _r((n, C, 4 * TH + 2, 4 * TW + 2), 0, np.float64)
    k = fast.winograd.constants(np.float64)
    Vt = fast.winograd.input_transform(xp, TH, TW, np.empty((36, n * TH * TW, C)), k)
    BT = ref.WINOGRAD_BT
    want = np.einsum("ia,tcab,jb->ijtc", BT, _tiles_of(xp, TH, TW), BT).reshape(36, -1, C)
    np.testing.assert_allclose(Vt, want, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("relu", [False, True])
def test_output_kernels_give_a_t_m_a_plus_bias_then_the_pooled_maxima_and_where(relu):
    n, F, TH, TW = 2, 5, 2, 3
    T = n * TH * TW
    Mt, b = _r((36, T, F), 0, np.float64), _r(F, 1, np.float64)
    k = fast.winograd.constants(np.float64, 0 if relu else -np.inf)
    AT = ref.WINOGRAD_AT
    tiles = np.einsum("ai,tfij,ej->tfae", AT, Mt.reshape(6, 6, T, F).transpose(2, 3, 0, 1), AT)
    planes = tiles.reshape(n, TH, TW, F, 4, 4).transpose(0, 3, 1, 4, 2, 5)
    lin = planes.reshape(n, F, 4 * TH, 4 * TW) + b[:, None, None]
    want = np.maximum(lin, 0) if relu else lin
    y = fast.winograd.output_transform(Mt, b, TH, TW, np.empty(want.shape), k)
    np.testing.assert_allclose(y, want, rtol=1e-12, atol=1e-12)

    def windows(a):                                       # (n, F, 2TH, 2TW, 4)
        a = a.reshape(n, F, 2 * TH, 2, 2 * TW, 2).transpose(0, 1, 2, 4, 3, 5)
        return a.reshape(n, F, 2 * TH, 2 * TW, 4)

    shape = (n, F, 2 * TH, 2 * TW)
    y = np.empty(shape)
    pooled = fast.winograd.output_transform_pool(Mt, b, TH, TW, y, k, y, False)
    np.testing.assert_allclose(pooled, windows(want).max(axis=-1), rtol=1e-12, atol=1e-12)
    where = np.empty(shape, np.int8)
    again = fast.winograd.output_transform_pool(Mt, b, TH, TW, np.empty(shape), k, where, True)
    np.testing.assert_array_equal(again, pooled)
    # the max-pool's argmax, of the values before the ReLU (which keeps their order)
    np.testing.assert_array_equal(where, windows(lin).argmax(axis=-1))


def test_output_grad_kernels_give_a_dy_a_t_six_entries_at_a_time():
    """The backward's first kernel writes A dY (24 values a tile, row 6s + i for column s,
    column f*T + t); grad_rows makes entries 6i..6i+5 of dM = A dY A^T from it."""
    n, F, TH, TW = 2, 3, 2, 3
    T = n * TH * TW
    dy = _r((n, F, 4 * TH, 4 * TW), 0, np.float64)
    k = fast.winograd.constants(np.float64)
    Z, db = np.full((24, F * T + 3), np.nan), np.zeros(F)
    fast.winograd.output_grad_transform(dy, TH, TW, Z, db, k, dy, False)
    tiles = dy.reshape(n, F, TH, 4, TW, 4).transpose(1, 0, 2, 4, 3, 5).reshape(F, T, 4, 4)
    A = ref.WINOGRAD_AT.T
    np.testing.assert_allclose(Z[:, :F * T].reshape(4, 6, F, T),
                               np.einsum("ia,ftas->sift", A, tiles), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(db, dy.sum(axis=(0, 2, 3)), rtol=1e-12)
    want = np.einsum("ia,ftas,js->ijft", A, tiles, A).reshape(36, F, T)
    D = np.full((6, F * T + 3), np.nan)
    for i in range(6):
        fast.winograd.grad_rows(Z, i, F * T, D, k)
        np.testing.assert_allclose(D[:, :F * T].reshape(6, F, T), want[6 * i:6 * i + 6],
                                   rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("masked", [False, True])
def test_pooled_grad_kernel_routes_each_window_to_its_maximum(masked):
    """After the fused 2x2 max-pool, each tile's dY is zero but at its four windows' maxima
    (``where``), which get the pooled gradient (gated by the pooled output > 0 with the
    fused ReLU); the kernel writes A dY as output_grad_transform does, and db."""
    n, F, TH, TW = 2, 3, 2, 3
    T = n * TH * TW
    dp = _r((n, F, 2 * TH, 2 * TW), 0, np.float64)
    mask = np.maximum(_r(dp.shape, 1, np.float64), 0)
    where = np.random.default_rng(2).integers(0, 4, dp.shape).astype(np.int8)
    k = fast.winograd.constants(np.float64)
    Z, db = np.full((24, F * T + 3), np.nan), np.zeros(F)
    fast.winograd.pooled_grad_transform(dp, where, TH, TW, Z, db, k, mask, masked)
    g = np.where(mask > 0, dp, 0) if masked else dp
    dy = np.zeros((n, F, 4 * TH, 4 * TW))                 # each window's gradient at its max
    for p in range(2 * TH):
        for q in range(2 * TW):
            r, c = 2 * p + where[:, :, p, q] // 2, 2 * q + where[:, :, p, q] % 2
            for a in range(n):
                dy[a, np.arange(F), r[a], c[a]] = g[a, :, p, q]
    want_Z, want_db = np.full_like(Z, np.nan), np.zeros(F)
    fast.winograd.output_grad_transform(dy, TH, TW, want_Z, want_db, k, dy, False)
    np.testing.assert_allclose(Z[:, :F * T], want_Z[:, :F * T], rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(db, g.sum(axis=(0, 2, 3)), rtol=1e-12)


def test_input_grad_kernels_add_b_dv_b_t_into_the_overlapping_tiles():
    """grad_times_bt takes dV B^T six entries (one row of each 6x6) at a time, as the
    backward calls it after each product; input_grad_transform adds B (dV B^T) into each
    tile's place: together, the adjoint of input_transform."""
    n, C, TH, TW = 2, 3, 2, 3
    T = n * TH * TW
    dV = _r((36, C, T), 0, np.float64)
    k = fast.winograd.constants(np.float64)
    R = np.full((36, C * T + 5), np.nan)
    for i in range(6):
        rows = np.ascontiguousarray(dV[6 * i:6 * i + 6].reshape(6, C * T))
        fast.winograd.grad_times_bt(rows, C * T, R, i, k)
    B = ref.WINOGRAD_BT.T
    tiles = dV.reshape(6, 6, C, T).transpose(2, 3, 0, 1)                 # (C, T, 6, 6)
    np.testing.assert_allclose(R[:, :C * T].reshape(6, 6, C, T),
                               np.einsum("ctij,sj->isct", tiles, B), rtol=1e-12, atol=1e-12)
    dx = fast.winograd.input_grad_transform(R, TH, TW, np.full((n, C, 4 * TH + 2, 4 * TW + 2),
                                                               np.nan), k)
    want = np.zeros(dx.shape)
    placed = np.einsum("ri,ctij,sj->ctrs", B, tiles, B).reshape(C, n, TH, TW, 6, 6)
    for th in range(TH):
        for tw in range(TW):
            tile = placed[:, :, th, tw].transpose(1, 0, 2, 3)               # (n, C, 6, 6)
            want[:, :, 4 * th:4 * th + 6, 4 * tw:4 * tw + 6] += tile
    np.testing.assert_allclose(dx, want, rtol=1e-12, atol=1e-12)


def test_float32_error_stays_at_rounding_level():
    """Winograd transforms with coefficients up to 8 (and G's sixths) before multiplying;
    in float32 its error must stay within a few units of rounding of the float64 direct
    convolution (here conv2 of the examples CNN, with values of the size a trained network
    sees): measured 3.5e-6 of the largest output, against 7e-7 for the direct product."""
    x, W, b, pad = _inputs((4, 32, 26, 26, 64, 0), np.float32)
    x, W = np.abs(x), W * np.float32(np.sqrt(2 / 288))
    y64 = ref.conv2d_forward(x.astype(np.float64), W.astype(np.float64), b, 1, pad)
    im2col32 = rel(ref.conv2d_forward(x, W, b, 1, pad), y64)
    wino32 = rel(fast.conv2d_winograd_forward(x, W, b, pad), y64)
    assert wino32 < 1e-5
    assert wino32 < 15 * max(im2col32, 1e-7)


@pytest.mark.parametrize("shape, pad", [((2, 8, 6, 7), 0), ((1, 8, 5, 5), 1)])
def test_winograd_layer_gradients(shape, pad):
    """Conv2D with 8 input channels takes the Winograd path in the fast backend; its
    float64 gradients match finite differences."""
    with ops.use("fast"):
        layer = Conv2D(shape[1], 3, 3, padding=pad, rng=np.random.default_rng(1))
        layer.params["b"] = _r(3, 2)
        errors = check_layer(layer, _r(shape, 0, np.float64))
    assert set(errors) == {"x", "W", "b"}
    assert max(errors.values()) < 1e-6, errors


def test_fast_conv2d_uses_winograd_for_3x3_stride_1(monkeypatch):
    from tinynet.ops.fast import conv

    calls = []
    real = conv.conv2d_winograd_forward
    monkeypatch.setattr(conv, "conv2d_winograd_forward",
                        lambda *a: calls.append(a[1].shape) or real(*a))
    x, W, b, _ = _inputs((2, 8, 6, 6, 4, 0), np.float32)
    conv.conv2d_forward(x, W, b, 1, 1)                          # 3x3, stride 1: Winograd
    conv.conv2d_forward(x, W, b, 2, 1)                          # stride 2: im2col
    conv.conv2d_forward(x[:, :1], W[:, :1], b, 1, 0)            # one channel: im2col
    assert calls == [(4, 8, 3, 3)]


# -- a ReLU fused into the convolution ------------------------------------------------------

@pytest.mark.parametrize("case", [(3, 8, 10, 10, 4, 0), (2, 8, 7, 9, 3, 1), (2, 1, 9, 8, 4, 1),
                                  (2, 3, 9, 9, 2, 0)], ids=lambda c: "x".join(map(str, c)))
def test_fused_relu_agrees_with_conv_then_relu(case):
    """relu=True is max(conv, 0); relu_out gates the gradient as relu_backward does, on the
    Winograd path (8 channels) and the im2col path (fewer), odd sizes included."""
    x, W, b, pad = _inputs(case, np.float32)
    plain = ref.conv2d_forward(x, W, b, 1, pad)
    want_y = ref.relu_forward(plain)
    g = _r(plain.shape, 3)
    want = ref.conv2d_backward(ref.relu_backward(g, want_y), x, W, 1, pad)
    for backend in (ref, fast):
        y = backend.conv2d_forward(x, W, b, 1, pad, relu=True)
        assert rel(y, want_y) < 2e-5 and y.min() >= 0
        for a, c in zip(backend.conv2d_backward(g, x, W, 1, pad, True, relu_out=y), want):
            assert rel(a, c) < 2e-5


def test_sequential_fuses_conv_relu_and_folds_batchnorm_at_inference(rng):
    """The shipped CNN gives the same outputs and gradients with and without fusion."""
    from tinynet import networks
    from tinynet.losses import softmax_cross_entropy

    model = networks.cnn(np.random.default_rng(0))
    x = rng.random((6, 1, 28, 28), dtype=np.float32)
    labels = rng.integers(0, 10, 6)
    for layer in model.layers:
        if hasattr(layer, "p"):                   # no dropout: the same function each time
            layer.p = 0.0
        if "running_mean" in layer.buffers:       # running statistics away from (0, 1)
            n = layer.num_features
            layer.buffers["running_mean"] = rng.standard_normal(n).astype(np.float32)
            layer.buffers["running_var"] = rng.random(n, dtype=np.float32) + 0.5
    out = {}
    for fuse in (False, True):
        model.fuse = fuse
        out[fuse] = [model.forward(x)]
    for fuse in (False, True):       # (training moves the running statistics: after inference)
        model.fuse = fuse
        logits = model.forward(x, training=True)
        model.backward(softmax_cross_entropy(logits, labels)[1])
        out[fuse] += [logits, model.layers[0].grads["W"].copy()]
    for a, c in zip(out[True], out[False]):
        assert rel(a, c) < 1e-4


@pytest.mark.parametrize("case", [(3, 8, 10, 10, 4, 0), (2, 8, 11, 9, 3, 1), (2, 8, 13, 13, 2, 1),
                                  (2, 2, 9, 8, 4, 1)], ids=lambda c: "x".join(map(str, c)))
@pytest.mark.parametrize("relu", [True, False])
def test_fused_pool_agrees_with_conv_then_pool(case, relu):
    """pool=True is a 2x2, stride-2 max-pool of the (ReLU'd) convolution, for the Winograd
    kernel that pools each output tile and for the im2col path, odd sizes included."""
    x, W, b, pad = _inputs(case, np.float32)
    want = ref.maxpool_forward(ref.conv2d_forward(x, W, b, 1, pad, relu), 2, 2, 2)[0]
    for backend in (ref, fast):
        assert rel(backend.conv2d_forward(x, W, b, 1, pad, relu, pool=True), want) < 2e-5


@pytest.mark.parametrize("case", [(3, 8, 10, 10, 4, 0), (2, 8, 11, 9, 3, 1), (2, 8, 13, 13, 2, 1),
                                  (2, 2, 9, 8, 4, 1), (9, 32, 26, 26, 64, 0)],
                         ids=lambda c: "x".join(map(str, c)))
@pytest.mark.parametrize("relu", [True, False])
def test_fused_pool_in_training_agrees_with_conv_then_pool(case, relu):
    """In training (``saved``) pool=True keeps where each maximum was, and the backward,
    given the pooled gradient and output, equals the three ops' backwards in turn, on the
    Winograd path (whose kernel routes each window's gradient inside its tile) and the
    im2col path, odd sizes included; the backward takes what it kept from ``saved``."""
    x, W, b, pad = _inputs(case, np.float32)
    y = ref.conv2d_forward(x, W, b, 1, pad, relu)
    pooled, arg = ref.maxpool_forward(y, 2, 2, 2)
    g = _r(pooled.shape, 3)
    dy = ref.maxpool_backward(g, arg, y.shape)
    want = ref.conv2d_backward(dy, x, W, 1, pad, True, relu_out=y if relu else None)
    for backend in (ref, fast):
        saved = {}
        out = backend.conv2d_forward(x, W, b, 1, pad, relu, pool=True, saved=saved)
        assert rel(out, pooled) < 2e-5
        grads = backend.conv2d_backward(g, x, W, 1, pad, True, out if relu else None, saved)
        for a, c in zip(grads, want):
            assert rel(a, c) < 2e-5
        assert not saved                          # everything kept was used, and let go


def _fused_and_layer_by_layer(model, n, grads):
    """The logits and the named gradients ((layer index, "W" or "b") pairs) of one training
    step on n random images, with the layers fused and then one by one; and the set of
    layers that ran inside another's op."""
    from tinynet.losses import softmax_cross_entropy

    x = np.random.default_rng(1).random((n, 1, 28, 28), dtype=np.float32)
    out = {}
    for fuse in (True, False):
        model.fuse = fuse
        logits = model.forward(x, training=True)
        if fuse:
            fused = set(model._fused)
        model.backward(softmax_cross_entropy(logits, np.arange(n) % 10)[1])
        out[fuse] = [logits] + [model.layers[i].grads[k].copy() for i, k in grads]
    return out[True], out[False], fused


def test_examples_cnn_training_is_the_same_fused():
    """PyTorch's example network trains through the fused Conv2D + ReLU + max-pool: the same
    logits and gradients as layer by layer (dropout off, so both see the same function)."""
    from tinynet import networks

    model = networks.torch_example_cnn(np.random.default_rng(0))
    for layer in model.layers:
        if hasattr(layer, "p"):
            layer.p = 0.0
    fused, plain, which = _fused_and_layer_by_layer(model, 5, [(0, "W"), (2, "W")])
    assert which == {1, 3, 4}                     # both ReLUs, and the max-pool after conv2
    for a, c in zip(fused, plain):
        assert rel(a, c) < 1e-4


def test_fast_recipe_cnn_training_is_the_same_fused():
    """The fast recipe's network fuses each max-pool into the convolution before it, with
    the ReLU (conv1) and without one (conv2, whose batch norm comes after the pool): the same
    logits and gradients as layer by layer. Its conv1 takes dL/dW by taps, from the pooled
    gradient. (Not conv2's dL/db: the batch norm after it cancels any bias, so that one is
    zero but for rounding.)"""
    from tinynet import networks

    model = networks.small_cnn(np.random.default_rng(0))
    fused, plain, which = _fused_and_layer_by_layer(model, 6, [(0, "W"), (0, "b"), (3, "W")])
    assert {1, 2, 4} <= which                     # conv1's ReLU and pool, conv2's pool
    for a, c in zip(fused, plain):
        assert rel(a, c) < 1e-4


@pytest.mark.parametrize("relu", [True, False])
@pytest.mark.parametrize("case", [(5, 1, 12, 11, 4, 5, 0), (3, 1, 9, 9, 3, 3, 1)],
                         ids=lambda c: "x".join(map(str, c)))
def test_first_layer_weight_gradient_by_taps_from_the_pooled_gradient(case, relu):
    """A first layer with a fused max-pool: dL/dW and dL/db by taps straight from the
    pooled gradient and where the maxima were, odd output sizes included."""
    from tinynet.ops.fast import conv

    N, C, H, Wd, F, k, pad = case
    assert C * k * k <= conv.BY_TAPS_MAX
    rng = np.random.default_rng(2)
    x = rng.standard_normal((N, C, H, Wd)).astype(np.float32)
    W = rng.standard_normal((F, C, k, k)).astype(np.float32)
    b = rng.standard_normal(F).astype(np.float32)
    y = ref.conv2d_forward(x, W, b, 1, pad, relu)
    pooled, arg = ref.maxpool_forward(y, 2, 2, 2)
    g = _r(pooled.shape, 3)
    want = ref.conv2d_backward(ref.maxpool_backward(g, arg, y.shape), x, W, 1, pad, False,
                               relu_out=y if relu else None)
    saved = {}
    out = fast.conv2d_forward(x, W, b, 1, pad, relu, pool=True, saved=saved)
    assert rel(out, pooled) < 2e-5
    got = fast.conv2d_backward(g, x, W, 1, pad, False, out if relu else None, saved)
    assert got[0] is None and not saved
    for a, c in zip(got[1:], want[1:]):
        assert rel(a, c) < 2e-5


@pytest.mark.parametrize("case", [(3, 8, 10, 10, 4, 0), (2, 8, 11, 9, 3, 1), (2, 9, 13, 13, 2, 1)],
                         ids=lambda c: "x".join(map(str, c)))
@pytest.mark.parametrize("relu, pool", [(False, False), (True, True)])
def test_winograd_reads_an_input_laid_out_channels_last_the_same(case, relu, pool):
    """At inference the Winograd forward reads a channels-last input (a transposed view of an
    NHWC array) with ``input_transform_last``, padding it itself: the same output, bit for
    bit, as from the same values in NCHW order; odd sizes and padding included."""
    x, W, b, pad = _inputs(case, np.float32)
    xl = np.ascontiguousarray(x.transpose(0, 2, 3, 1))
    assert fast.winograd.channels_last(xl.transpose(0, 3, 1, 2)) is not None
    assert fast.winograd.channels_last(x) is None
    want = fast.conv2d_winograd_forward(x, W, b, pad, relu, pool)
    got = fast.conv2d_winograd_forward(xl.transpose(0, 3, 1, 2), W, b, pad, relu, pool)
    np.testing.assert_array_equal(got, want)


def test_input_kernel_for_channels_last_gives_the_same_tiles():
    x = _r((2, 8, 10, 14), 1)
    k = fast.winograd.constants(np.float32)
    want = fast.winograd.input_transform(x, 2, 3, np.empty((36, 12, 8), np.float32), k)
    got = fast.winograd.input_transform_last(np.ascontiguousarray(x.transpose(0, 2, 3, 1)), 2, 3,
                                             np.empty((36, 12, 8), np.float32), k)
    np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("relu", [True, False])
def test_conv_output_laid_out_channels_last_holds_the_same_values(relu):
    """``channels_last`` (the im2col path) returns y with the channels innermost in memory:
    the same values as the reference's, with the bias and ReLU (``add_bias_last``)."""
    x, W, b = _r((5, 1, 11, 9), 1), _r((8, 1, 3, 3), 2), _r((8,), 3)
    y = fast.conv2d_forward(x, W, b, 1, 1, relu, channels_last=True)
    assert y.shape == (5, 8, 11, 9) and y.strides[1] == 4            # channels innermost
    assert rel(y, ref.conv2d_forward(x, W, b, 1, 1, relu)) < 2e-6
    assert ref.conv2d_forward(x, W, b, 1, 1, relu, channels_last=True).flags.c_contiguous


def test_only_a_winograd_convolution_asks_for_a_channels_last_input():
    """The fast backend's Winograd forward reads a channels-last input faster, its im2col path
    would copy it back; the reference reads every layout alike; and before the kernels are
    loaded (the NumPy start) nobody asks."""
    W3, W5 = np.zeros((16, 8, 3, 3), np.float32), np.zeros((16, 8, 5, 5), np.float32)
    assert fast.conv2d_reads_channels_last(W3, 1, 1)
    assert not fast.conv2d_reads_channels_last(W5, 1, 0)
    assert not fast.conv2d_reads_channels_last(W3, 2, 1)               # stride 2: im2col
    assert not fast.conv2d_reads_channels_last(W3[:, :1], 1, 1)        # one channel: im2col
    assert not ref.conv2d_reads_channels_last(W3, 1, 1)


def test_a_convolution_into_an_im2col_one_keeps_its_output_in_nchw(monkeypatch):
    from tinynet import Conv2D, Dense, Flatten, ReLU, Sequential

    calls = []
    real = fast.conv.add_bias_last                 # only a channels-last output calls it
    monkeypatch.setattr(fast.conv, "add_bias_last", lambda *a: calls.append(1) or real(*a))
    rng = np.random.default_rng(0)
    model = Sequential([Conv2D(1, 8, 3, rng=rng), ReLU(), Conv2D(8, 4, 5, rng=rng), Flatten(),
                        Dense(4 * 6 * 6, 3, rng=rng)])
    with ops.use("fast"):
        model.forward(np.random.default_rng(1).random((3, 1, 12, 12), dtype=np.float32))
    assert not calls                     # the 5x5 convolution reads NCHW: nothing to gain


def test_examples_cnn_inference_hands_conv1_to_conv2_channels_last(monkeypatch):
    from tinynet import networks

    calls = []
    real = fast.winograd.input_transform_last
    monkeypatch.setattr(fast.winograd, "input_transform_last",
                        lambda *a: calls.append(1) or real(*a))
    model = networks.torch_example_cnn(np.random.default_rng(0))
    x = np.random.default_rng(1).random((300, 1, 28, 28), dtype=np.float32)
    with ops.use("fast"):
        logits = model.forward(x)
        assert calls                                 # conv2 read conv1's output so
        model.fuse = False
        assert rel(model.forward(x), logits) < 1e-4


def test_examples_cnn_inference_is_the_same_fused():
    from tinynet import networks

    model = networks.torch_example_cnn(np.random.default_rng(0))
    x = np.random.default_rng(1).random((5, 1, 28, 28), dtype=np.float32)
    model.fuse = False
    plain = model.forward(x)
    model.fuse = True
    assert rel(model.forward(x), plain) < 1e-4


def test_remembered_filter_transforms_follow_in_place_updates():
    """The fast op remembers transformed filters; an optimizer changing W in place (same
    array object) must still get the new weights' result."""
    x, W, b, pad = _inputs((2, 8, 8, 8, 4, 0), np.float32)
    before = fast.conv2d_winograd_forward(x, W, b, pad)
    W *= 2                                               # in place, as Adam does
    after = fast.conv2d_winograd_forward(x, W, b, pad)
    assert rel(after - b[:, None, None], 2 * (before - b[:, None, None])) < 1e-5
    assert rel(after, ref.conv2d_winograd_forward(x, W, b, pad)) < 2e-5


def test_a_fresh_process_reads_a_few_digits_without_loading_numba():
    """tinynet.ops starts the fast backend on NumPy: predicting a few images runs the
    NumPy ops (Numba is not even imported), with the kernels' results; a training step then
    loads the kernels and later calls use them."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    code = f"""
import sys
sys.path.insert(0, {str(root)!r})
import numpy as np
import tinynet
from tinynet import networks, ops
model = tinynet.load({str(root / 'weights' / 'mnist.npz')!r})
x = np.random.default_rng(0).random((20, 28, 28), dtype=np.float32)
cold = model.predict(x)
assert "numba" not in sys.modules, "a kernel was loaded"
assert ops.backend() == "fast"
net = networks.small_cnn(0)
net.forward(np.zeros((300, 1, 28, 28), np.float32), training=True)   # big: the kernels
net.backward(np.ones((300, 10), np.float32))                         # and a backward pass
assert "numba" in sys.modules
warm = model.predict(x)
print(float(np.abs(cold - warm).max()), int((cold.argmax(1) != warm.argmax(1)).sum()))
"""
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=300, env=dict(os.environ, TINYNET_OPS="fast"))
    assert res.returncode == 0, res.stderr[-3000:]
    diff, changed = res.stdout.split()
    assert float(diff) < 1e-4 and int(changed) == 0


def test_filter_transforms_are_remembered_for_each_network_of_an_ensemble(monkeypatch):
    from tinynet.ops.fast import winograd

    calls = []
    real = winograd.filter_transform
    monkeypatch.setattr(winograd, "filter_transform", lambda W: calls.append(1) or real(W))
    monkeypatch.setattr(winograd, "_transformed", type(winograd._transformed)())
    banks = [np.random.default_rng(k).normal(size=(8, 4, 3, 3)).astype(np.float32)
             for k in range(5)]
    for _ in range(3):                                  # three predictions of five networks
        for W in banks:
            np.testing.assert_array_equal(winograd.transformed_filters(W), real(W))
    assert len(calls) == 5
    banks[2] += 1.0                                     # an optimizer step changes W in place
    np.testing.assert_array_equal(winograd.transformed_filters(banks[2]), real(banks[2]))
    assert len(calls) == 6
