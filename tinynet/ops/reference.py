"""The reference ops: plain NumPy, written to be read.

Each op is a function of arrays; a layer keeps whatever the forward returns for its backward
and calls the backward with it. Shapes use N for the batch. The fast backend
(``tinynet/ops/fast/``) computes the same results with the same signatures, faster;
``tests/test_ops.py`` checks that the two agree on every op.

Read the ops in this order: dense, relu, softmax cross-entropy, sgd/adam, then conv2d
(im2col, col2im), maxpool, batchnorm, dropout, and the augmentation warps.
"""

import numpy as np

# -- shapes ---------------------------------------------------------------------------------


def conv_output_size(size, k, stride, pad):
    """Number of output positions along one axis: (size + 2*pad - k) // stride + 1."""
    return (size + 2 * pad - k) // stride + 1


def pool_output_size(size, k, stride):
    """Number of whole windows along one axis: (size - k) // stride + 1."""
    return (size - k) // stride + 1


def _feature_axes(x):
    """Batch-norm reduction axes for x (N, D) or (N, C, H, W), and the shape that broadcasts
    a per-feature vector over x."""
    if x.ndim == 2:
        return (0,), (1, -1)
    return (0, 2, 3), (1, -1, 1, 1)


# -- dense ----------------------------------------------------------------------------------


def dense_forward(x, W, b):
    """y = x W + b

    x (N, D_in), W (D_in, D_out), b (D_out,)  ->  y (N, D_out)
    """
    return x @ W + b


def dense_backward(dout, x, W, need_dx=True):
    """Gradients of y = x W + b, given G = dout = dL/dy (N, D_out):

        dL/dW = x^T G     (D_in, D_out)   W[i, j] links input i to output j in every example
        dL/db = sum_n G   (D_out,)
        dL/dx = G W^T     (N, D_in)       each input feeds every output through W

    Returns (dx, dW, db); dx is None when ``need_dx`` is false (the first layer).
    """
    dW = x.T @ dout
    db = dout.sum(axis=0)
    dx = dout @ W.T if need_dx else None
    return dx, dW, db


# -- relu -----------------------------------------------------------------------------------


def relu_forward(x):
    """y = max(x, 0), entry by entry. Any shape."""
    return np.maximum(x, 0)


def relu_backward(dout, y):
    """dL/dx = dL/dy * [x > 0]. Takes the forward's output y as the mask, since
    [y > 0] == [x > 0], so training keeps no extra array. Any shape."""
    return dout * (y > 0)


# -- softmax cross-entropy ------------------------------------------------------------------


def softmax_cross_entropy_forward(logits, labels):
    """Mean cross-entropy of logits z (N, K) against integer labels t (N,):

        p[n, k] = exp(z[n, k]) / sum_j exp(z[n, j])           (softmax, rows sum to 1)
        L = mean_n -log p[n, t_n]

    Subtracting each row's max first changes neither p nor L but keeps exp() from
    overflowing. Returns (L as a float, p).
    """
    shifted = logits - logits.max(axis=1, keepdims=True)
    logp = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    loss = -float(logp[np.arange(len(labels)), labels].mean())
    return loss, np.exp(logp)


def softmax_cross_entropy_backward(p, labels):
    """dL/dz = (p - onehot(t)) / N: the probabilities minus the truth, over the batch.
    p (N, K) from the forward, labels (N,)  ->  dlogits (N, K)."""
    d = p.copy()
    d[np.arange(len(labels)), labels] -= 1
    return d / len(labels)


# -- optimizer updates (in place) -----------------------------------------------------------


def sgd_update(w, g, v, lr, momentum=0.0, weight_decay=0.0, nesterov=False):
    """One SGD step on w in place, with velocity v (same shape as w):

        g <- g + weight_decay * w
        v <- momentum * v + g
        w <- w - lr * v                 (nesterov: w <- w - lr * (g + momentum * v))
    """
    if weight_decay:
        g = g + weight_decay * w
    if momentum:
        v *= momentum
        v += g
        g = g + momentum * v if nesterov else v
    w -= w.dtype.type(lr) * g


def adam_update(w, g, m, v, t, lr, b1, b2, eps, weight_decay=0.0):
    """One Adam(W) step on w in place at step t = 1, 2, ...; m, v are its running moments:

        m <- b1 m + (1 - b1) g                   v <- b2 v + (1 - b2) g^2
        m_hat = m / (1 - b1^t)                   v_hat = v / (1 - b2^t)
        w <- w - lr * (m_hat / (sqrt(v_hat) + eps) + weight_decay * w)
    """
    g = g.reshape(w.shape)
    m *= b1
    m += (1 - b1) * g
    v *= b2
    v += (1 - b2) * g * g
    m_hat = m / (1 - b1 ** t)
    v_hat = v / (1 - b2 ** t)
    w -= (lr * (m_hat / (np.sqrt(v_hat) + eps) + weight_decay * w)).astype(w.dtype)


# -- convolution ----------------------------------------------------------------------------


def im2col(x, kh, kw, stride, pad):
    """Copy what each filter tap sees at each output position into a matrix:

        cols[n, k, p] = xp[n, c, oh*stride + i, ow*stride + j]

    with xp = x zero-padded by ``pad``, tap k = (c, i, j) and position p = (oh, ow).
    x (N, C, H, W)  ->  cols (N, C*kh*kw, OH*OW).
    """
    N, C, H, W = x.shape
    OH, OW = conv_output_size(H, kh, stride, pad), conv_output_size(W, kw, stride, pad)
    xp = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    cols = np.empty((N, C, kh, kw, OH, OW), dtype=x.dtype)
    for i in range(kh):
        for j in range(kw):        # tap (i, j) at every output position: one strided slice
            cols[:, :, i, j] = xp[:, :, i:i + stride * OH:stride, j:j + stride * OW:stride]
    return cols.reshape(N, C * kh * kw, OH * OW)


def col2im(dcols, x_shape, kh, kw, stride, pad):
    """The adjoint of im2col: add each dcols[n, k, p] back to the input pixel it was copied
    from (a pixel seen by several taps gets the sum; gradients of the padding are dropped).
    dcols (N, C*kh*kw, OH*OW)  ->  dx of shape x_shape = (N, C, H, W).
    """
    N, C, H, W = x_shape
    OH, OW = conv_output_size(H, kh, stride, pad), conv_output_size(W, kw, stride, pad)
    d = dcols.reshape(N, C, kh, kw, OH, OW)
    dxp = np.zeros((N, C, H + 2 * pad, W + 2 * pad), dtype=dcols.dtype)
    for i in range(kh):
        for j in range(kw):
            dxp[:, :, i:i + stride * OH:stride, j:j + stride * OW:stride] += d[:, :, i, j]
    return dxp[:, :, pad:pad + H, pad:pad + W]


def conv2d_forward(x, W, b, stride, pad, relu=False, pool=False, saved=None,
                   channels_last=False):
    """y[n, f, oh, ow] = b[f] + sum_{c,i,j} W[f, c, i, j] * xp[n, c, oh*stride+i, ow*stride+j]

    x (N, C, H, W), W (F, C, kh, kw), b (F,)  ->  y (N, F, OH, OW).
    As matrices: y[n] = Wm @ cols[n] + b, with Wm = W reshaped (F, K), cols[n] (K, P) from
    im2col, K = C*kh*kw, P = OH*OW; the (F, P) result is already NCHW.
    ``relu``: return max(y, 0) instead, a following ReLU applied in the same op (the fast
    backend does it while y is still in cache); ``pool``: then a 2x2, stride-2 max-pool too
    (see ``pool_fused``).
    ``saved``: a dict (training), where a backend may keep intermediate results for
    conv2d_backward, which gets the same dict; this backend keeps only where each pooled
    maximum was, and recomputes the rest.
    ``channels_last``: a hint that y goes straight into a convolution that reads such an
    input faster (``conv2d_reads_channels_last``): a backend may then lay y's values out
    channels last in memory (still the same (N, F, OH, OW) array to anyone reading it);
    this backend ignores it.
    """
    F, C, kh, kw = W.shape
    N, _, H, Wd = x.shape
    OH, OW = conv_output_size(H, kh, stride, pad), conv_output_size(Wd, kw, stride, pad)
    cols = im2col(x, kh, kw, stride, pad)                     # (N, K, P)
    y = W.reshape(F, -1) @ cols + b[:, None]                   # (F, K) @ (N, K, P) -> (N, F, P)
    y = y.reshape(N, F, OH, OW)
    y = np.maximum(y, 0) if relu else y
    return pool_fused(y, saved) if pool else y


def conv2d_reads_channels_last(W, stride, pad):
    """Whether ``conv2d_forward`` with these filters reads an input laid out channels last in
    memory faster than one in NCHW order, so that the convolution before it should write
    its output so (its ``channels_last``). This backend reads every layout alike: never."""
    return False


def pool_fused(y, saved, maxpool=None):
    """The 2x2, stride-2 max-pool a convolution ends with when ``pool=True``. In training
    (``saved`` a dict) the argmax goes into saved["pool"] for ``unpool_fused``; the unpooled
    y is not kept: the backward needs only where each maximum was. ``maxpool``: the
    max-pool op (this module's by default; the fast backend passes its own)."""
    out, arg = (maxpool or maxpool_forward)(y, 2, 2, 2, need_arg=saved is not None)
    if saved is not None:
        saved["pool"] = (arg, y.shape)
    return out


def unpool_fused(dout, relu_out, saved, relu_grad=None, maxpool_grad=None):
    """dL/dy of a convolution whose forward ended in ``pool_fused``, from the pooled output's
    gradient dout: first the fused ReLU's gate, on the pooled values (each is the ReLU's
    output at its window's maximum, the one input that gets a gradient), then the pool's
    routing to the maxima (maxpool_backward). ``relu_grad``, ``maxpool_grad``: those two
    ops, as for ``pool_fused``."""
    if relu_out is not None:
        dout = (relu_grad or relu_backward)(dout, relu_out)
    arg, shape = saved.pop("pool")
    return (maxpool_grad or maxpool_backward)(dout, arg, shape)


def conv2d_backward(dout, x, W, stride, pad, need_dx=True, relu_out=None, saved=None):
    """Gradients of conv2d_forward, given G = dout (N, F, OH, OW) viewed as (N, F, P):
    the Dense formulas on each image's cols matrix, then col2im back to the pixels:

        dL/dWm = sum_n G[n] @ cols[n]^T   (F, K), reshaped to W's (F, C, kh, kw)
        dL/db  = sum_{n, p} G[n, :, p]     (F,)
        dL/dx  = col2im(Wm^T @ G[n])       (N, C, H, W)

    ``relu_out``: the output of a forward with ``relu=True``; dout is then the gradient of
    max(y, 0), and G = dout * [relu_out > 0] (relu_backward) comes first. ``saved``: the
    forward's (see conv2d_forward); after a forward with ``pool=True``, dout and relu_out
    are the pooled ones, and ``unpool_fused`` takes them back to y's shape first.
    Returns (dx, dW, db); dx is None when ``need_dx`` is false.
    """
    if saved and "pool" in saved:
        dout, relu_out = unpool_fused(dout, relu_out, saved), None
    if relu_out is not None:
        dout = relu_backward(dout, relu_out)
    F, C, kh, kw = W.shape
    G = dout.reshape(dout.shape[0], F, -1)                      # (N, F, P)
    cols = im2col(x, kh, kw, stride, pad)                        # (N, K, P)
    dW = (G @ cols.transpose(0, 2, 1)).sum(axis=0).reshape(W.shape)
    db = G.sum(axis=(0, 2))
    dx = col2im(W.reshape(F, -1).T @ G, x.shape, kh, kw, stride, pad) if need_dx else None
    return dx, dW, db


# -- 3x3 convolution by Winograd's minimal filtering, F(4x4, 3x3) ---------------------------
#
# Four outputs of a 3-tap correlation, y_i = d_i g0 + d_(i+1) g1 + d_(i+2) g2 for i < 4, take
# 6 multiplications instead of 12 as y = A^T [(G g) * (B^T d)], with the matrices below
# (the interpolation points 0, 1, -1, 2, -2 and infinity); nested over rows and columns, a 4x4
# output tile from a 6x6 input tile d takes 36 multiplications instead of 144. Tiles start
# every 4 pixels, so neighbouring input tiles overlap by 2.

WINOGRAD_BT = np.array([[4, 0, -5, 0, 1, 0],
                        [0, -4, -4, 1, 1, 0],
                        [0, 4, -4, -1, 1, 0],
                        [0, -2, -1, 2, 1, 0],
                        [0, 2, -1, -2, 1, 0],
                        [0, 4, 0, -5, 0, 1]], np.float64)
WINOGRAD_G = np.array([[1 / 4, 0, 0],
                       [-1 / 6, -1 / 6, -1 / 6],
                       [-1 / 6, 1 / 6, -1 / 6],
                       [1 / 24, 1 / 12, 1 / 6],
                       [1 / 24, -1 / 12, 1 / 6],
                       [0, 0, 1]], np.float64)
WINOGRAD_AT = np.array([[1, 1, 1, 1, 1, 0],
                        [0, 1, -1, 2, -2, 0],
                        [0, 1, 1, 4, 4, 0],
                        [0, 1, -1, 8, -8, 1]], np.float64)


def winograd_tiles(x, pad):
    """The 6x6 input tiles of a 3x3, stride-1 convolution: d (N, C, TH, TW, 6, 6), a view of
    x zero-padded by ``pad`` (and on the bottom/right up to whole tiles), TH = ceil(OH/4)."""
    N, C, H, W = x.shape
    TH, TW = -(-(H + 2 * pad - 2) // 4), -(-(W + 2 * pad - 2) // 4)
    xp = np.pad(x, ((0, 0), (0, 0), (pad, 4 * TH + 2 - H - pad), (pad, 4 * TW + 2 - W - pad)))
    return np.lib.stride_tricks.sliding_window_view(xp, (6, 6), axis=(2, 3))[:, :, ::4, ::4]


def conv2d_winograd_forward(x, W, b, pad, relu=False, pool=False, saved=None):
    """conv2d_forward(x, W, b, 1, pad) for 3x3 filters W (F, C, 3, 3), tile by tile:

        U[f, c] = G W[f, c] G^T                  filters in the Winograd domain   (6, 6)
        V[n, c, t] = B^T d[n, c, t] B            input tile t                     (6, 6)
        M[n, f, t] = sum_c U[f, c] * V[n, c, t]  (entry by entry: 36 products)    (6, 6)
        Y[n, f, t] = A^T M[n, f, t] A            output tile t                    (4, 4)

    The sum over c is 36 matrix products (F, C) @ (C, tiles), one per entry of the 6x6.
    ``relu``, ``pool`` and ``saved`` as in conv2d_forward (the fast backend keeps V there).
    """
    N, F, (H, Wd) = x.shape[0], W.shape[0], x.shape[2:]
    BT, G, AT = (m.astype(x.dtype) for m in (WINOGRAD_BT, WINOGRAD_G, WINOGRAD_AT))
    V = BT @ winograd_tiles(x, pad) @ BT.T                       # (N, C, TH, TW, 6, 6)
    U = G @ W @ G.T                                               # (F, C, 6, 6)
    M = np.einsum("fcij,nchwij->nfhwij", U, V)                   # (N, F, TH, TW, 6, 6)
    Y = AT @ M @ AT.T                                             # (N, F, TH, TW, 4, 4)
    TH, TW = Y.shape[2:4]
    y = Y.transpose(0, 1, 2, 4, 3, 5).reshape(N, F, 4 * TH, 4 * TW)
    y = y[:, :, :H + 2 * pad - 2, :Wd + 2 * pad - 2] + b[:, None, None]
    y = np.maximum(y, 0) if relu else y
    return pool_fused(y, saved) if pool else y


def conv2d_winograd_backward(dout, x, W, pad, need_dx=True, relu_out=None, saved=None):
    """Gradients of conv2d_winograd_forward, each step's adjoint in reverse order:

        dM = A dY A^T              (dY: dout's 4x4 tile; outputs past the edge count as 0)
        dU[f, c] = sum_{n,t} dM[n, f, t] * V[n, c, t]      dW[f, c] = G^T dU[f, c] G
        dV[n, c, t] = sum_f U[f, c] * dM[n, f, t]          dd = B dV B^T
        dL/dx = every tile's dd added back where the tile was read (tiles overlap)
        dL/db = sum dout

    ``relu_out`` and ``saved`` as in conv2d_backward. Returns (dx, dW, db); dx is None when
    ``need_dx`` is false.
    """
    if saved and "pool" in saved:
        dout, relu_out = unpool_fused(dout, relu_out, saved), None
    if relu_out is not None:
        dout = relu_backward(dout, relu_out)
    N, C, H, Wd = x.shape
    BT, G, AT = (m.astype(x.dtype) for m in (WINOGRAD_BT, WINOGRAD_G, WINOGRAD_AT))
    d = winograd_tiles(x, pad)
    TH, TW = d.shape[2:4]
    F, OH, OW = dout.shape[1:]
    dY = np.zeros((N, F, 4 * TH, 4 * TW), dtype=x.dtype)
    dY[:, :, :OH, :OW] = dout
    dY = dY.reshape(N, F, TH, 4, TW, 4).transpose(0, 1, 2, 4, 3, 5)    # (N, F, TH, TW, 4, 4)
    dM = AT.T @ dY @ AT                                                 # (N, F, TH, TW, 6, 6)
    dU = np.einsum("nfhwij,nchwij->fcij", dM, BT @ d @ BT.T)
    dW, db = G.T @ dU @ G, dout.sum(axis=(0, 2, 3))
    if not need_dx:
        return None, dW, db
    dd = BT.T @ np.einsum("fcij,nfhwij->nchwij", G @ W @ G.T, dM) @ BT  # (N, C, TH, TW, 6, 6)
    dxp = np.zeros((N, C, 4 * TH + 2, 4 * TW + 2), dtype=x.dtype)
    for i in range(6):
        for j in range(6):
            dxp[:, :, i:i + 4 * TH:4, j:j + 4 * TW:4] += dd[..., i, j]
    return dxp[:, :, pad:pad + H, pad:pad + Wd], dW, db


# -- max pooling ----------------------------------------------------------------------------


def maxpool_forward(x, ph, pw, stride, need_arg=True):
    """y[n, c, oh, ow] = max_{i < ph, j < pw} x[n, c, oh*stride + i, ow*stride + j]

    x (N, C, H, W)  ->  y (N, C, OH, OW), and arg (same shape, int32): where each maximum
    was, as the flat index h*W + w into its H x W plane (ties go to the first), which only
    the backward pass needs (``need_arg=False``: arg is None, and finding it is skipped).
    """
    N, C, H, W = x.shape
    OH, OW = pool_output_size(H, ph, stride), pool_output_size(W, pw, stride)
    # one strided view per window offset (i, j), stacked: (ph*pw, N, C, OH, OW)
    stack = np.stack([x[:, :, i:i + stride * OH:stride, j:j + stride * OW:stride]
                      for i in range(ph) for j in range(pw)])
    if not need_arg:
        return stack.max(axis=0), None
    k = stack.argmax(axis=0)                                   # offset i*pw + j of the max
    y = np.take_along_axis(stack, k[None], axis=0)[0]
    i, j = np.divmod(k, pw)
    oh, ow = np.arange(OH)[:, None], np.arange(OW)[None, :]
    arg = ((oh * stride + i) * W + ow * stride + j).astype(np.int32)
    return y, arg


def maxpool_backward(dout, arg, x_shape):
    """dL/dx[n, c, h, w] = sum of dout[n, c, oh, ow] over the windows whose max is at (h, w):
    y depends on one input per window, with slope 1. dout, arg (N, C, OH, OW) -> dx x_shape.
    ``np.add.at`` adds an index that wins several (overlapping) windows more than once.
    """
    N, C, H, W = x_shape
    dx = np.zeros((N, C, H * W), dtype=dout.dtype)
    n, c = np.arange(N)[:, None, None], np.arange(C)[None, :, None]
    np.add.at(dx, (n, c, arg.reshape(N, C, -1)), dout.reshape(N, C, -1))
    return dx.reshape(x_shape)


# -- batch normalisation --------------------------------------------------------------------


def batchnorm_moments(x):
    """Per-feature mean and (biased) variance over the batch, accumulated in float64:

        mu = mean(x)      var = mean((x - mu)^2)

    over the N values of each column of x (N, D), or the N*H*W values of each channel of
    x (N, C, H, W). Returns (mu, var), each (D,) or (C,), in x's dtype.
    """
    axes, _ = _feature_axes(x)
    x64 = x.astype(np.float64)
    return x64.mean(axis=axes).astype(x.dtype), x64.var(axis=axes).astype(x.dtype)


def batchnorm_forward(x, gamma, beta, mean, var, eps, relu=False):
    """y = gamma * xhat + beta, with xhat = (x - mean) / sqrt(var + eps), per feature.

    x (N, D) or (N, C, H, W); gamma, beta, mean, var (D,) or (C,)  ->  y, shape of x.
    Training passes the batch's moments, inference the running averages.
    ``relu``: return max(y, 0) instead, a following ReLU applied in the same op (the fast
    backend does it while y is still in registers).
    """
    _, shape = _feature_axes(x)
    xhat = (x - mean.reshape(shape)) / np.sqrt(var.reshape(shape) + eps)
    y = gamma.reshape(shape) * xhat + beta.reshape(shape)
    return np.maximum(y, 0) if relu else y


def batchnorm_backward(dout, x, gamma, beta, mean, var, eps, batch_stats, need_dx=True,
                       relu=False):
    """Gradients of batchnorm_forward, given G = dout (shape of x); means over each feature:

        dL/dbeta  = sum(G)             dL/dgamma = sum(G * xhat)
        dL/dx     = gamma / sqrt(var + eps) * (G - mean(G) - xhat * mean(G * xhat))

    when mean and var were the batch's own (``batch_stats``: they depend on x too), else
    dL/dx = gamma / sqrt(var + eps) * G. Returns (dx, dgamma, dbeta).
    ``relu``: the forward was fused with a ReLU and dout is the gradient after it; G is then
    dout where gamma * xhat + beta > 0, else 0 (the ReLU's backward, its mask recomputed
    from x instead of kept from the forward).
    """
    axes, shape = _feature_axes(x)
    if relu:
        dout = relu_backward(dout, batchnorm_forward(x, gamma, beta, mean, var, eps, True))
    inv_std = 1 / np.sqrt(var.reshape(shape) + eps)
    xhat = (x - mean.reshape(shape)) * inv_std
    dbeta, dgamma = dout.sum(axis=axes), (dout * xhat).sum(axis=axes)
    if not need_dx:
        return None, dgamma, dbeta
    if batch_stats:
        dout = (dout - dout.mean(axis=axes, keepdims=True)
                - xhat * (dout * xhat).mean(axis=axes, keepdims=True))
    return gamma.reshape(shape) * inv_std * dout, dgamma, dbeta


def batchnorm_relu_pool_forward(x, gamma, beta, mean, var, eps):
    """maxpool(relu(batchnorm(x)), 2x2, stride 2), for training: x (N, C, H, W) -> the pooled
    (N, C, H//2, W//2) and arg, where each maximum was (as maxpool_forward gives them). The
    fast backend computes it in one pass and never writes the full-size output."""
    return maxpool_forward(batchnorm_forward(x, gamma, beta, mean, var, eps, relu=True), 2, 2, 2)


def batchnorm_relu_pool_backward(dout, arg, x, gamma, beta, mean, var, eps, batch_stats,
                                 need_dx=True):
    """Gradients of batchnorm_relu_pool_forward: the max-pool routes dout to the maxima
    (``arg``), then batchnorm_backward with its ReLU. Returns (dx, dgamma, dbeta)."""
    g = maxpool_backward(dout, arg, x.shape)
    return batchnorm_backward(g, x, gamma, beta, mean, var, eps, batch_stats, need_dx, True)


# -- dropout --------------------------------------------------------------------------------


# SplitMix64's constants: its step (2^64 / golden ratio) and its two mixing multipliers.
SPLITMIX_STEP, SPLITMIX_M1, SPLITMIX_M2 = (np.uint64(0x9E3779B97F4A7C15),
                                            np.uint64(0xBF58476D1CE4E5B9),
                                            np.uint64(0x94D049BB133111EB))


def counter_uniform(key, start, n):
    """Draws start, ..., start + n - 1 of a stream of floats uniform in [0, 1), 24 bits each.

    Draw i is SplitMix64's output for counter key + (i + 1) * step: a hash of (key, i), so any
    slice of the stream can be computed on its own, by any thread, in any order, and the
    result is the same. ``key`` (an unsigned 64-bit integer) comes from the caller's Generator,
    so a seed reproduces the stream. The top 24 bits give the float, as a float32 draw has.
    """
    counter = np.arange(start, start + n, dtype=np.uint64) + np.uint64(1)
    z = np.uint64(key) + counter * SPLITMIX_STEP               # wraps around mod 2^64
    z = (z ^ (z >> np.uint64(30))) * SPLITMIX_M1
    z = (z ^ (z >> np.uint64(27))) * SPLITMIX_M2
    z = z ^ (z >> np.uint64(31))
    return (z >> np.uint64(40)).astype(np.float32) * np.float32(2.0 ** -24)


def dropout_forward(x, p, rng):
    """y = x * m, with m = [u < 1 - p] / (1 - p) and u ~ U[0, 1), one draw per entry from
    ``counter_uniform`` with a key drawn from ``rng``. Dividing by 1 - p keeps E[y] = x.
    Any shape. Returns (y, m); the backward needs the same mask m.
    """
    keep = 1.0 - p
    key = rng.integers(0, 2 ** 64, dtype=np.uint64)
    u = counter_uniform(key, 0, x.size).reshape(x.shape)
    m = (u < np.float32(keep)) * x.dtype.type(1 / keep)
    return x * m, m


def dropout_backward(dout, m):
    """dL/dx = dL/dy * m, with the forward's mask m (already scaled by 1 / (1 - p))."""
    return dout * m


# -- augmentation: bilinear warps of (N, H, W) image batches --------------------------------


def warp_bilinear(images, theta, flow, out):
    """Resample images (N, H, W) into out (N, H, W): output pixel (y, x) of image n reads
    the input at (ys, xs), by bilinear interpolation, where with u = x - cx, v = y - cy
    (cx, cy: the image centre) and a = theta[n] (2, 3):

        xs = a[0,0] u + a[0,1] v + a[0,2] + cx + flow[n, 0, y, x]
        ys = a[1,0] u + a[1,1] v + a[1,2] + cy + flow[n, 1, y, x]

    flow (N, 2, H, W), or length 0 along its first axis for none. Pixels outside the input
    count as 0; the result is clipped to [0, 1]. Returns out.
    """
    N, H, W = images.shape
    y, x = np.meshgrid(np.arange(H) - (H - 1) / 2, np.arange(W) - (W - 1) / 2, indexing="ij")
    t = theta.astype(np.float64)[:, :, :, None, None]
    xs = t[:, 0, 0] * x + t[:, 0, 1] * y + t[:, 0, 2] + (W - 1) / 2      # (N, H, W)
    ys = t[:, 1, 0] * x + t[:, 1, 1] * y + t[:, 1, 2] + (H - 1) / 2
    if flow.shape[0] > 0:
        xs, ys = xs + flow[:, 0], ys + flow[:, 1]
    x0, y0 = np.floor(xs).astype(np.int64), np.floor(ys).astype(np.int64)
    fx, fy = xs - x0, ys - y0
    n = np.arange(N)[:, None, None]

    def pixel(yy, xx):                         # the input at integer (yy, xx); 0 outside
        inside = (yy >= 0) & (yy < H) & (xx >= 0) & (xx < W)
        return np.where(inside, images[n, yy.clip(0, H - 1), xx.clip(0, W - 1)], 0.0)

    out[...] = np.clip((1 - fy) * ((1 - fx) * pixel(y0, x0) + fx * pixel(y0, x0 + 1))
                       + fy * ((1 - fx) * pixel(y0 + 1, x0) + fx * pixel(y0 + 1, x0 + 1)),
                       0.0, 1.0)
    return out


def blur_planes(planes, taps, out):
    """Separable blur of each plane of planes (M, H, W) by the odd-length 1-D kernel taps,
    along rows then columns, repeating the edge pixel at the borders. Returns out (M, H, W).

        out = sum_k taps[k] * shift(sum_k taps[k] * shift(planes, k, x), k, y)
    """
    M, H, W = planes.shape
    r = len(taps) // 2
    p = np.pad(planes, ((0, 0), (0, 0), (r, r)), mode="edge")
    rows = sum(taps[k] * p[:, :, k:k + W] for k in range(len(taps)))
    p = np.pad(rows, ((0, 0), (r, r), (0, 0)), mode="edge")
    out[...] = sum(taps[k] * p[:, k:k + H, :] for k in range(len(taps)))
    return out


# -- augmentation: the pen's width and broken strokes ----------------------------------------


def pen_width(images, amount, out):
    """Make the strokes of each image (N, H, W) thicker or thinner by a fraction of a pixel
    ring: with a = amount[n] in [-1, 1],

        a >= 0:  out = x + a (dilate(x) - x),  dilate(x)[y, x] = max of the 3x3 square around
        a <  0:  out = x - a (erode(x) - x),   erode(x)[y, x]  = min of the 5-pixel cross

    (pixels outside the image count as 0). a = 1 adds a one-pixel ring of ink around every
    stroke, a = -1 peels one off; values between blend, so the width varies continuously
    from a fine pen to a marker. Returns out.
    """
    N, H, W = images.shape
    p = np.pad(images, ((0, 0), (1, 1), (1, 1)))
    square = np.stack([p[:, dy:dy + H, dx:dx + W] for dy in range(3) for dx in range(3)])
    cross = np.stack([p[:, 1:H + 1, 1:W + 1], p[:, 0:H, 1:W + 1], p[:, 2:H + 2, 1:W + 1],
                      p[:, 1:H + 1, 0:W], p[:, 1:H + 1, 2:W + 2]])
    a = amount.astype(np.float32)[:, None, None]
    target = np.where(a >= 0, square.max(axis=0), cross.min(axis=0))
    out[...] = images + np.abs(a) * (target - images)
    return out


def break_strokes(images, picks, radius, out):
    """Cut gaps into the strokes of each image (N, H, W), as a pen that skips leaves them.

    picks (N, G): for each of G possible gaps a number u in [0, 1), or a negative number for
    no gap. The gap's centre is ink pixel number floor(u * count) (in row-major order) of
    the ``count`` pixels brighter than 0.5 in the input; every pixel within ``radius`` of
    that centre is set to 0. Returns out.
    """
    out[...] = images
    N, H, W = images.shape
    yy, xx = np.mgrid[0:H, 0:W]
    for n in range(N):
        ys, xs = np.nonzero(images[n] > 0.5)
        for u in picks[n]:
            if u < 0 or len(ys) == 0:
                continue
            k = min(int(u * len(ys)), len(ys) - 1)
            near = (yy - ys[k]) ** 2 + (xx - xs[k]) ** 2 <= radius * radius
            out[n][near] = 0.0
    return out


def thin(masks, out):
    """Thin the shapes of each binary image (N, H, W) uint8 to lines one pixel wide, keeping
    their connections (Zhang and Suen, 1984): the pen's path, whatever the pen's width.

    With p2..p9 the 8 neighbours of a pixel clockwise from the one above (p2 up, p4 right,
    p6 down, p8 left), B = p2 + ... + p9 and A = the number of 0 -> 1 steps around the ring
    p2, p3, ..., p9, p2, a pixel of the shape is removed when 2 <= B <= 6 (not an end, not
    inside), A = 1 (removing it cuts nothing) and

        first pass:   p2 p4 p6 = 0 and p4 p6 p8 = 0   (a right or lower edge pixel)
        second pass:  p2 p4 p8 = 0 and p2 p6 p8 = 0   (a left or upper edge pixel)

    Each pass decides every pixel from the image as the pass began; the two alternate until
    a round removes nothing. Pixels outside the image count as 0. Returns out (0 or 1).
    """
    out[...] = masks != 0
    H, W = masks.shape[1:]
    while True:
        removed = False
        for first in (True, False):
            p = np.pad(out, ((0, 0), (1, 1), (1, 1)))
            ring = [p[:, y:y + H, x:x + W].astype(np.int32)          # p2 .. p9, clockwise
                    for y, x in ((0, 1), (0, 2), (1, 2), (2, 2), (2, 1), (2, 0), (1, 0), (0, 0))]
            p2, _, p4, _, p6, _, p8, _ = ring
            b = sum(ring)
            a = sum((ring[k] == 0) & (ring[(k + 1) % 8] == 1) for k in range(8))
            if first:
                edge = (p2 * p4 * p6 == 0) & (p4 * p6 * p8 == 0)
            else:
                edge = (p2 * p4 * p8 == 0) & (p2 * p6 * p8 == 0)
            gone = (out == 1) & (b >= 2) & (b <= 6) & (a == 1) & edge
            if gone.any():
                out[gone] = 0
                removed = True
        if not removed:
            return out
