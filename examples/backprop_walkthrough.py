"""Backpropagation, one step at a time, on a tiny tinynet network.

    python examples/backprop_walkthrough.py              # 8 MNIST images (synthetic if absent)
    python examples/backprop_walkthrough.py --synthetic  # always synthetic images

The network has the layers of the shipped MLP (``tinynet.networks.mlp``), only narrower:

    Flatten -> Dense(784, 16) -> ReLU -> Dense(16, 10) -> softmax cross-entropy

The script
  1. runs the forward pass layer by layer, printing every intermediate shape;
  2. runs the backward pass layer by layer, in reverse, printing every gradient's shape;
  3. derives the gradient of ONE weight of the first Dense layer by hand, printing each
     factor of the chain rule, and checks it against the library and a finite difference;
  4. takes an SGD step and shows the loss fall;
  5. (short) does the same check for one weight of a convolution.

Read it next to docs/how-tinynet-learns.md and tinynet/ops/reference.py: every layer's
forward and backward below calls one op of that file (the script switches tinynet to its
reference backend, so the code you read is the code that runs). It runs in a few seconds.
"""

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from a checkout

import tinynet  # noqa: E402
from tinynet.errors import DataError  # noqa: E402
from tinynet.gradcheck import numeric_gradient, relative_error  # noqa: E402
from tinynet.layers import Conv2D, Dense, Flatten, MaxPool2D, ReLU  # noqa: E402
from tinynet.losses import softmax, softmax_cross_entropy  # noqa: E402
from tinynet.model import Sequential  # noqa: E402
from tinynet.ops.reference import im2col  # noqa: E402
from tinynet.optim import SGD  # noqa: E402

N = 8            # images in the batch
HIDDEN = 16      # width of the hidden layer
EPS = 1e-6       # finite-difference step
TOLERANCE = 1e-6  # hand-derived and numeric gradients must agree to this relative error
LR = 0.1         # SGD learning rate


def show(name, a, k=3):
    """One line: the array's name, shape, range and first k values."""
    values = ", ".join(f"{v:+.4f}" for v in np.ravel(a)[:k])
    print(f"  {name:<28} {str(a.shape):<15} in [{a.min():+.4f}, {a.max():+.4f}]  "
          f"first [{values}, ...]")


def section(title):
    print(f"\n== {title} " + "=" * max(0, 78 - len(title)))


def get_images(synthetic):
    """N images (N, 1, 28, 28) in [0, 1] and their labels, from MNIST when possible."""
    if not synthetic:
        try:
            x_train, y_train, _, _ = tinynet.data.load_mnist(download=False)
            print(f"data: the first {N} MNIST training images")
            return tinynet.data.to_float(x_train[:N]).astype(np.float64), y_train[:N].astype(int)
        except DataError as exc:
            print(f"(MNIST not found: {str(exc).split('.')[0]})")
    print(f"data: {N} SYNTHETIC images (random strokes), not MNIST; every number below is "
          "computed the same way")
    rng = np.random.default_rng(0)
    x = np.zeros((N, 1, 28, 28))
    labels = np.arange(N) % 10
    for n, label in enumerate(labels):       # a bar whose position depends on the label
        row = 4 + 2 * label
        x[n, 0, row:row + 3, 6:22] = 1.0
        x[n, 0, 2:26, 2:26] += 0.1 * rng.random((24, 24))   # noise; the border stays black
    return np.clip(x, 0, 1), labels


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--synthetic", action="store_true", help="do not look for MNIST")
    args = parser.parse_args(argv)
    np.set_printoptions(precision=4, suppress=True, linewidth=100)
    tinynet.ops.use("reference")
    print("ops: the reference backend (tinynet/ops/reference.py), plain NumPy")

    x, labels = get_images(args.synthetic)
    print(f"labels: {labels.tolist()}")

    rng = np.random.default_rng(0)
    model = Sequential([Flatten(), Dense(784, HIDDEN, rng=rng), ReLU(),
                        Dense(HIDDEN, 10, init="glorot", rng=rng)])
    # Training runs in float32; here we use float64 so that the finite differences below are
    # accurate to about 1e-10 and the comparison is sharp (the gradient checks do the same).
    for layer in model.layers:
        layer.astype(np.float64)
    flatten, dense1, relu, dense2 = model.layers
    W1, W2 = dense1.params["W"], dense2.params["W"]
    print(model.summary())

    # ------------------------------------------------------------------------------------
    section("1. Forward pass, left to right")
    print("Each layer computes its output and (training=True) keeps what backward needs.")
    show("x       images", x)
    print("    (the first values are 0: the border pixels are black)")
    a0 = flatten.forward(x, training=True)
    show("a0 = Flatten(x)", a0)
    z1 = dense1.forward(a0, training=True)
    show("z1 = a0 W1 + b1", z1)
    h = relu.forward(z1, training=True)
    show("h  = max(z1, 0)", h)
    z2 = dense2.forward(h, training=True)
    show("z2 = h W2 + b2   (logits)", z2)
    p = softmax(z2)
    show("p  = softmax(z2)", p)
    loss, dz2 = softmax_cross_entropy(z2, labels)
    print(f"  L  = mean_n -log p[n, label_n]    = {loss:.6f}")
    print(f"  (a guess of 1/10 for every class would give -log(0.1) = {np.log(10):.6f})")

    # ------------------------------------------------------------------------------------
    section("2. Backward pass, right to left")
    print("Each backward takes dL/d(its output) and returns dL/d(its input), storing")
    print("dL/d(its parameters) in layer.grads on the way. This is Sequential.backward.")
    show("dL/dz2 = (p - onehot) / N", dz2)
    dh = dense2.backward(dz2)
    show("dL/dW2 = h^T dL/dz2", dense2.grads["W"])
    show("dL/db2 = sum_n dL/dz2", dense2.grads["b"])
    show("dL/dh  = dL/dz2 W2^T", dh)
    dz1 = relu.backward(dh)
    show("dL/dz1 = dL/dh * [z1 > 0]", dz1)
    da0 = dense1.backward(dz1)
    show("dL/dW1 = a0^T dL/dz1", dense1.grads["W"])
    print("    (rows of always-black pixels are 0: a weight on an input that is 0 gets no "
          "gradient)")
    show("dL/db1 = sum_n dL/dz1", dense1.grads["b"])
    show("dL/da0 = dL/dz1 W1^T", da0)
    dx = flatten.backward(da0)
    show("dL/dx  = reshape(dL/da0)", dx)
    print("    (the gradient for the pixels themselves: training does not use it, and")
    print("     Sequential lets its first layer skip computing it)")

    # ------------------------------------------------------------------------------------
    section("3. One weight by hand: the chain rule, factor by factor")
    # j: a hidden unit that is active for some images and not others (so the ReLU factor
    # shows both 0 and 1); i: the pixel whose weight into unit j has the largest gradient
    # (a gradient near 0 would be swamped by the finite difference's rounding error).
    active = (z1 > 0).sum(axis=0)
    mixed = np.flatnonzero((active > 0) & (active < N))
    j = int(mixed[0]) if len(mixed) else int(np.argmax(active))
    i = int(np.argmax(np.abs(dense1.grads["W"][:, j])))
    print(f"The weight W1[{i}, {j}] connects pixel {i} (row {i // 28}, column {i % 28}) to "
          f"hidden unit {j}.")
    print(f"It enters the loss only through z1[n, {j}] of each image n:")
    print(f"  z1[n,{j}] = sum_i a0[n,i] W1[i,{j}] + b1[{j}]   ->  dz1[n,{j}]/dW1[{i},{j}] "
          f"= a0[n,{i}]")
    print(f"  h[n,{j}]  = max(z1[n,{j}], 0)                 ->  dh/dz1 = 1 if z1 > 0 else 0")
    print(f"  z2[n,k] = sum_j h[n,j] W2[j,k] + b2[k]      ->  dz2[n,k]/dh[n,{j}] = W2[{j},k]")
    print("  L = mean_n -log softmax(z2[n])[label_n]     ->  dL/dz2[n,k] = (p[n,k] - [k == "
          "label_n]) / N")
    print(f"so  dL/dW1[{i},{j}] = sum_n ( sum_k dL/dz2[n,k] W2[{j},k] ) * [z1[n,{j}] > 0] * "
          f"a0[n,{i}]")

    n0 = 0
    g = (p[n0] - np.eye(10)[labels[n0]]) / N              # dL/dz2[0, :], from the formula
    terms = g * W2[j]
    print(f"\nImage 0 (label {labels[n0]}), the inner sum over the 10 classes k:")
    print(f"  dL/dz2[0,k]          = {g}")
    print(f"  W2[{j},k]              = {W2[j]}")
    print(f"  product              = {terms}")
    print(f"  sum = dL/dh[0,{j}]    = {terms.sum():+.6e}")

    print("\nEvery image, each factor:")
    print(f"  {'n':>2} {'dL/dh[n,j]':>13} {'[z1[n,j]>0]':>12} {'a0[n,i]':>9} {'product':>13}")
    hand = 0.0
    for n in range(N):
        dl_dh = ((p[n] - np.eye(10)[labels[n]]) / N) @ W2[j]
        gate = float(z1[n, j] > 0)
        pixel = a0[n, i]
        product = dl_dh * gate * pixel
        hand += product
        print(f"  {n:>2} {dl_dh:>+13.6e} {gate:>12.0f} {pixel:>9.4f} {product:>+13.6e}")
    print(f"  sum over n: dL/dW1[{i},{j}] by hand          = {hand:+.10e}")

    library = dense1.grads["W"][i, j]
    print(f"  the library's backward (dense1.grads['W'])  = {library:+.10e}")

    def batch_loss():
        return softmax_cross_entropy(model.forward(x), labels)[0]

    saved = W1[i, j]
    W1[i, j] = saved + EPS
    plus = batch_loss()
    W1[i, j] = saved - EPS
    minus = batch_loss()
    W1[i, j] = saved
    numeric = (plus - minus) / (2 * EPS)
    print(f"  finite difference (L(w+eps) - L(w-eps)) / (2 eps), eps = {EPS:g}:")
    print(f"      ({plus:.12f} - {minus:.12f}) / {2 * EPS:g} = {numeric:+.10e}")
    rel = abs(hand - numeric) / max(abs(hand) + abs(numeric), 1e-12)
    rel_lib = abs(library - numeric) / max(abs(library) + abs(numeric), 1e-12)
    verdict = "MATCH" if max(rel, rel_lib) < TOLERANCE else "MISMATCH"
    print(f"hand vs numeric relative error: {rel:.2e} (tolerance {TOLERANCE:g}): {verdict}")
    print(f"library vs numeric relative error: {rel_lib:.2e}")

    err_W2 = relative_error(dense2.grads["W"],
                            numeric_gradient(batch_loss, dense2.params["W"], EPS))
    print(f"All {W2.size} entries of W2 at once (tinynet.gradcheck.numeric_gradient): "
          f"relative error {err_W2:.2e}")

    # ------------------------------------------------------------------------------------
    section("4. An optimizer step: every weight moves against its gradient")
    optimizer = SGD(model.parameters(), lr=LR)
    before = loss
    optimizer.step()                                   # w <- w - lr * dL/dw, in place
    print(f"  W1[{i},{j}]: {saved:+.6f} - {LR} * {library:+.6e} = {W1[i, j]:+.6f}")
    after = batch_loss()
    print(f"loss before step: {before:.6f}")
    print(f"loss after step:  {after:.6f}   ({'fell' if after < before else 'DID NOT FALL'})")
    print("  a few more steps on the same batch (forward, loss, backward, step):")
    for step in range(2, 6):
        _, d = softmax_cross_entropy(model.forward(x, training=True), labels)
        model.backward(d)
        optimizer.step()
        print(f"    after step {step}: loss {batch_loss():.6f}")

    # ------------------------------------------------------------------------------------
    section("5. The same check for a convolution weight (optional reading)")
    conv_net = Sequential([Conv2D(1, 4, 3, rng=rng), ReLU(), MaxPool2D(2), Flatten(),
                           Dense(4 * 13 * 13, 10, init="glorot", rng=rng)])
    for layer in conv_net.layers:
        layer.astype(np.float64)
    conv = conv_net.layers[0]
    a = x
    for layer in conv_net.layers:
        a = layer.forward(a, training=True)
        show(f"after {type(layer).__name__}", a)
    _, d = softmax_cross_entropy(a, labels)
    for layer in reversed(conv_net.layers[1:]):       # Dense, Flatten, MaxPool2D, ReLU
        d = layer.backward(d)
    G = d.reshape(N, 4, -1)                            # dL/d(conv output), (N, F, P)
    conv.backward(d)
    # im2col (tinynet/ops/reference.py) makes cols[n, k, p]: the pixel that tap k = (c, di, dj)
    # of the 3x3 filter sees at output position p. The convolution is then Dense-like, one
    # matrix product per image, and each filter weight's gradient is
    # dL/dW[f, k] = sum_n sum_p G[n, f, p] cols[n, k, p].
    f, di, dj = 2, 1, 1
    k = (0 * 3 + di) * 3 + dj
    cols = im2col(x, 3, 3, 1, 0)
    print(f"G = dL/d(conv output) reshaped: {G.shape} = (N, F, 26*26); "
          f"cols = im2col(x): {cols.shape} = (N, C*3*3, 26*26)")
    chand = float(np.sum(G[:, f, :] * cols[:, k, :]))
    print(f"by hand: dL/dW[{f},0,{di},{dj}] = sum_n,p G[n,{f},p] cols[n,{k},p] = {chand:+.10e}")
    Wc = conv.params["W"]
    saved = Wc[f, 0, di, dj]
    Wc[f, 0, di, dj] = saved + EPS
    plus = softmax_cross_entropy(conv_net.forward(x), labels)[0]
    Wc[f, 0, di, dj] = saved - EPS
    minus = softmax_cross_entropy(conv_net.forward(x), labels)[0]
    Wc[f, 0, di, dj] = saved
    cnum = (plus - minus) / (2 * EPS)
    clib = conv.grads["W"][f, 0, di, dj]
    crel = max(abs(c - cnum) / max(abs(c) + abs(cnum), 1e-12) for c in (chand, clib))
    print(f"the library's backward = {clib:+.10e}, finite difference = {cnum:+.10e}")
    print(f"conv vs numeric relative error: {crel:.2e} (tolerance {TOLERANCE:g}): "
          f"{'MATCH' if crel < TOLERANCE else 'MISMATCH'}")
    return 0 if verdict == "MATCH" and after < before and crel < TOLERANCE else 1


if __name__ == "__main__":
    sys.exit(main())
