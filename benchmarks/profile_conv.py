"""Time forward + backward of tinynet's conv/pool layers at batch 64 for the PyTorch
examples/mnist network (conv 1->32 3x3, conv 32->64 3x3, max-pool 2), and print ms per
batch and achieved GFLOP/s.

    python benchmarks/profile_conv.py [--repeat 30] [--batch 64] [--float64]

FLOPs counted as 2 * multiply-adds of the matrix products: forward N*F*P*K each, and in
backward the same again for dW and, when the layer needs an input gradient, for dx.
Reported time is the median (and best) over ``--repeat`` runs after a warm-up (which
also triggers Numba compilation or loads it from the cache).
"""

import argparse
import time

import numpy as np

from tinynet.layers.conv import Conv2D
from tinynet.layers.pool import MaxPool2D

PEAK_GFLOPS = 166.0   # fp32 peak of the 2 cores of the reference machine


def timeit(fn, repeat):
    fn()
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return float(np.median(times)), float(np.min(times))


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=30)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--float64", action="store_true")
    args = ap.parse_args()
    dtype = np.float64 if args.float64 else np.float32
    N = args.batch
    rng = np.random.default_rng(0)

    rows = []
    total = [0.0, 0.0]

    def report(name, fwd, bwd, flops_f, flops_b):
        for label, (med, best), fl in (("fwd", fwd, flops_f), ("bwd", bwd, flops_b)):
            g = fl / med / 1e9 if fl else float("nan")
            rows.append(f"{name:<28}{label:>4} {med * 1e3:8.2f} ms (best {best * 1e3:6.2f})"
                        f"  {g:7.1f} GFLOP/s")
        total[0] += fwd[0] + bwd[0]
        total[1] += flops_f + flops_b

    for name, C, F, H, first in (("conv1 1->32 3x3 28x28", 1, 32, 28, True),
                                 ("conv2 32->64 3x3 26x26", 32, 64, 26, False)):
        layer = Conv2D(C, F, 3, rng=rng).astype(dtype)
        layer.needs_input_grad = not first
        x = rng.random((N, C, H, H), dtype=dtype)
        y = layer.forward(x, training=True)
        dout = rng.standard_normal(y.shape).astype(dtype)
        K, P = C * 9, y.shape[2] * y.shape[3]
        mac = N * F * P * K
        fwd = timeit(lambda layer=layer, x=x: layer.forward(x, training=True), args.repeat)
        bwd = timeit(lambda layer=layer, dout=dout: layer.backward(dout), args.repeat)
        report(name + (" (no dx)" if first else ""), fwd, bwd, 2 * mac,
               2 * mac * (1 if first else 2))
        if not first:
            both = timeit(lambda layer=layer, x=x, dout=dout: (
                layer.forward(x, training=True), layer.backward(dout)), args.repeat)
            conv2_both = both

    pool = MaxPool2D(2)
    x = rng.standard_normal((N, 64, 24, 24)).astype(dtype)
    y = pool.forward(x, training=True)
    dout = rng.standard_normal(y.shape).astype(dtype)
    report("maxpool 2x2 on 64x24x24", timeit(lambda: pool.forward(x, training=True), args.repeat),
           timeit(lambda: pool.backward(dout), args.repeat), 0, 0)

    print(f"batch {N}, {np.dtype(dtype).name}, median of {args.repeat} runs")
    print("\n".join(rows))
    print(f"conv2 forward+backward together: {conv2_both[0] * 1e3:.2f} ms "
          f"(best {conv2_both[1] * 1e3:.2f})")
    print(f"all three layers fwd+bwd: {total[0] * 1e3:.2f} ms, "
          f"{total[1] / total[0] / 1e9:.1f} GFLOP/s "
          f"({100 * total[1] / total[0] / 1e9 / PEAK_GFLOPS:.0f}% of {PEAK_GFLOPS:.0f} peak)")


if __name__ == "__main__":
    main()
