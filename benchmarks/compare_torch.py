"""tinynet beside PyTorch CPU: the same networks, batch sizes and thread budget, in one run.

    python benchmarks/compare_torch.py            # full (about 10 minutes)
    python benchmarks/compare_torch.py --quick    # fewer steps (under 5 minutes)
    python benchmarks/compare_torch.py --smoke    # tinynet only, a handful of steps (tests)

What is measured (issue 3, item 6):

* training time per epoch of (a) the original MLP (tinynet.networks.mlp, Adam, batch 32) and
  (b) PyTorch's examples/mnist network (tinynet.networks.torch_example_cnn, rebuilt layer for
  layer with torch.nn; Adam, batch 64), from a fixed number of steps extrapolated to the
  60,000 training images;
* inference images/s of that CNN over the 10,000 test images at several batch sizes, and
  single-image latency;
* Numba compile time, cold (a fresh, empty NUMBA_CACHE_DIR in a subprocess) and cached (a
  second subprocess on the same cache);
* the GFLOP/s that tinynet's CNN training reaches, FLOPs counted analytically (2 per
  multiply-add of every convolution and dense product), against the 166 GFLOP/s fp32 peak
  of the 2 Zen 3 cores of the reference machine.

Fairness: PyTorch runs with torch.set_num_threads(2); tinynet with 2 threads (its fast ops
split each batch over 2 worker threads, each on a 1-thread BLAS, see
tinynet/ops/fast/scheduler.py). The MLP recipe runs tinynet on 1 thread (its recipe's
``threads=1``), tinynet's own choice within the same 2-core budget. Other jobs may share
the cores, so the two tools alternate (A, B, A, B, ...) in the same process and the ratios
use each one's median round.

The last line of output is JSON with at least mlp_train_ratio, cnn_train_ratio and
cnn_infer_ratio (tinynet time / PyTorch time for the same work: below 1 means tinynet is
faster; for inference, time per image at each tool's best batch size).

PyTorch is optional: ``pip install -e ".[bench]"`` (the bench extra pins torch==2.13.0).
Without it the script measures tinynet alone and says so.
"""

import argparse
import json
import math
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tinynet import networks, ops  # noqa: E402
from tinynet.losses import softmax_cross_entropy  # noqa: E402
from tinynet.optim import Adam  # noqa: E402

PEAK_GFLOPS = 166.0          # fp32 peak of the 2 cores of the reference machine
TRAIN_SIZE = 60000
THREADS = 2

MODES = {
    # budget: seconds per tool per training round at most; rounds of mlp_steps / cnn_steps;
    # inference over infer_n test images, infer_reps times per batch size; latency calls
    "full": dict(budget=20.0, rounds=5, mlp_steps=400, cnn_steps=40, infer_n=10000, infer_reps=3,
                 latency=200, batches=(64, 100, 256, 1000)),
    "quick": dict(budget=8.0, rounds=3, mlp_steps=150, cnn_steps=12, infer_n=2000, infer_reps=2,
                  latency=50, batches=(100, 1000)),
    "smoke": dict(budget=5.0, rounds=1, mlp_steps=3, cnn_steps=2, infer_n=64, infer_reps=1,
                  latency=3, batches=(32,)),
}


# -- data -------------------------------------------------------------------------------

def load_data(random_only=False):
    """(x_train, y_train, x_test, y_test) as float32 NCHW in [0, 1] and int64 labels."""
    if not random_only:
        try:
            from tinynet import data
            x, y, xt, yt = data.load_mnist(download=False)
            return (data.to_float(x), y.astype(np.int64), data.to_float(xt),
                    yt.astype(np.int64), "MNIST")
        except Exception as exc:     # no MNIST here: time on random images instead
            print(f"(MNIST not found: {exc}; timing on random images)")
    rng = np.random.default_rng(0)
    x = rng.random((TRAIN_SIZE, 1, 28, 28), dtype=np.float32)
    xt = rng.random((10000, 1, 28, 28), dtype=np.float32)
    return (x, rng.integers(0, 10, TRAIN_SIZE), xt, rng.integers(0, 10, 10000),
            "random images")


# -- the two tools --------------------------------------------------------------------------

class Tinynet:
    name = "tinynet"

    def __init__(self, builder, threads=THREADS):
        self.model = networks.BUILDERS[builder](np.random.default_rng(0))
        self.opt = Adam(self.model.parameters(), lr=1e-3)
        self.threads = threads

    def train(self, x, y, order, batch, steps, start, budget=math.inf):
        """Run up to ``steps`` steps (fewer once ``budget`` seconds have passed);
        returns the number of steps run."""
        t0 = time.perf_counter()
        with ops.threads(self.threads):
            for b in range(start, start + steps):
                idx = order[(b * batch) % len(order):][:batch]
                logits = self.model.forward(x[idx], training=True)
                _, d = softmax_cross_entropy(logits, y[idx])
                self.model.backward(d)
                self.opt.step()
                if time.perf_counter() - t0 > budget:
                    return b - start + 1
        return steps

    def infer(self, x, batch):
        # as model.predict runs: the ops' default threads, no block around the calls
        for s in range(0, len(x), batch):
            self.model.forward(x[s:s + batch], training=False)


class Torch:
    name = "PyTorch"

    def __init__(self, torch, builder, reference, threads=THREADS):
        nn = torch.nn
        self.torch = torch
        self.threads = threads
        if threads != THREADS:
            self.name = f"PyTorch {threads} thread"
        if builder == "mlp":
            self.model = nn.Sequential(nn.Flatten(), nn.Linear(784, 128), nn.ReLU(),
                                       nn.Linear(128, 128), nn.ReLU(), nn.Linear(128, 10))
        else:   # PyTorch's examples/mnist network
            self.model = nn.Sequential(
                nn.Conv2d(1, 32, 3), nn.ReLU(), nn.Conv2d(32, 64, 3), nn.ReLU(),
                nn.MaxPool2d(2), nn.Dropout(0.25), nn.Flatten(), nn.Linear(9216, 128),
                nn.ReLU(), nn.Dropout(0.5), nn.Linear(128, 10))
        self._copy_weights(reference)
        self.opt = torch.optim.Adam(self.model.parameters(), lr=1e-3)

    def _copy_weights(self, reference):
        """Start from tinynet's initial weights (Dense W is (in, out) in tinynet)."""
        mine = [m for m in self.model if hasattr(m, "weight")]
        theirs = [layer for layer in reference.model.layers if "W" in layer.params]
        with self.torch.no_grad():
            for m, layer in zip(mine, theirs):
                W = layer.params["W"]
                m.weight.copy_(self.torch.from_numpy(W.T.copy() if W.ndim == 2 else W))
                m.bias.copy_(self.torch.from_numpy(layer.params["b"]))

    def train(self, x, y, order, batch, steps, start, budget=math.inf):
        torch = self.torch
        torch.set_num_threads(self.threads)
        try:
            return self._train(x, y, order, batch, steps, start, budget)
        finally:
            torch.set_num_threads(THREADS)

    def _train(self, x, y, order, batch, steps, start, budget):
        torch = self.torch
        self.model.train()
        t0 = time.perf_counter()
        for b in range(start, start + steps):
            idx = order[(b * batch) % len(order):][:batch]
            xb, yb = torch.from_numpy(x[idx]), torch.from_numpy(y[idx])
            self.opt.zero_grad()
            loss = torch.nn.functional.cross_entropy(self.model(xb), yb)
            loss.backward()
            self.opt.step()
            if time.perf_counter() - t0 > budget:
                return b - start + 1
        return steps

    def infer(self, x, batch):
        torch = self.torch
        self.model.eval()
        with torch.inference_mode():
            for s in range(0, len(x), batch):
                self.model(torch.from_numpy(x[s:s + batch]))


# -- measurements ---------------------------------------------------------------------------

def interleaved(tools, fn, rounds):
    """Run fn(tool) for each tool in turn, ``rounds`` times; median seconds per tool."""
    times = {t.name: [] for t in tools}
    for _ in range(rounds):
        for t in tools:
            t0 = time.perf_counter()
            fn(t)
            times[t.name].append(time.perf_counter() - t0)
    return {k: float(np.median(v)) for k, v in times.items()}, times


def train_times(tools, x, y, batch, steps, rounds, budget):
    """Seconds per training step for each tool: the median over ``rounds`` alternating
    rounds of ``steps`` steps each (a round stops early after ``budget`` seconds, so a tool
    slowed down by a busy machine cannot stretch the run without bound)."""
    order = np.random.default_rng(1).permutation(len(x))
    for t in tools:                                  # warm-up (and Numba cache load)
        t.train(x, y, order, batch, 3, 0)
    start = 3
    per_step = {t.name: [] for t in tools}
    for _ in range(rounds):
        for t in tools:
            t0 = time.perf_counter()
            done = t.train(x, y, order, batch, steps, start, budget)
            per_step[t.name].append((time.perf_counter() - t0) / done)
        start += steps
    return {k: float(np.median(v)) for k, v in per_step.items()}


def cnn_step_flops(batch):
    """Multiply-adds x 2 of one training step of torch_example_cnn (forward + backward)."""
    conv1 = batch * 32 * (1 * 9) * 26 * 26        # no input gradient: fwd + dW
    conv2 = batch * 64 * (32 * 9) * 24 * 24        # fwd + dW + dx
    fc1 = batch * 9216 * 128
    fc2 = batch * 128 * 10
    return 2 * (2 * conv1 + 3 * conv2 + 3 * fc1 + 3 * fc2)


COMPILE_SNIPPET = r"""
import sys, time
t0 = time.perf_counter()
sys.path.insert(0, sys.argv[1])
import numpy as np
from tinynet import networks
from tinynet.augment import augment
from tinynet.losses import softmax_cross_entropy
from tinynet.optim import Adam
t_import = time.perf_counter() - t0
rng = np.random.default_rng(0)
def work():
    for name in ("torch_example_cnn", "cnn", "mlp"):
        m = networks.BUILDERS[name](0)
        opt = Adam(m.parameters())
        x = rng.random((8, 1, 28, 28), dtype=np.float32)
        x = augment(x, rng, max_shift=2.0, max_rotation=10.0, scale=(0.9, 1.1))
        logits = m.forward(x, training=True)
        _, d = softmax_cross_entropy(logits, rng.integers(0, 10, 8))
        m.backward(d)
        opt.step()
        m.forward(x, training=False)
t1 = time.perf_counter(); work(); first = time.perf_counter() - t1
t1 = time.perf_counter(); work(); second = time.perf_counter() - t1
print(t_import, first, second)
"""


def compile_times():
    """(cold, cached) seconds of Numba compilation: the first pass over every kernel
    (three networks, one training step and one inference each, plus augmentation) minus the
    same pass repeated, in a subprocess whose NUMBA_CACHE_DIR starts empty; then again in a
    second subprocess on the now-filled cache. Import time (which loads cached kernels
    lazily) is added to the cached figure."""
    with tempfile.TemporaryDirectory() as cache:
        env = dict(os.environ, NUMBA_CACHE_DIR=cache)
        out = []
        for _ in range(2):
            res = subprocess.run([sys.executable, "-c", COMPILE_SNIPPET, str(ROOT)], env=env,
                                 capture_output=True, text=True, timeout=600)
            if res.returncode != 0:
                raise RuntimeError(res.stderr[-2000:])
            t_import, first, second = map(float, res.stdout.split()[-3:])
            out.append((first - second, t_import))
    return out[0][0], out[1][0]


def cpu_busy():
    """(seconds all cores were busy, seconds of CPU this process and its children used),
    from /proc/stat and os.times(); None where /proc/stat does not exist."""
    try:
        with open("/proc/stat") as f:
            fields = [int(v) for v in f.readline().split()[1:]]
    except OSError:
        return None
    busy = (sum(fields) - fields[3] - fields[4]) / os.sysconf("SC_CLK_TCK")  # minus idle, iowait
    t = os.times()
    return busy, t.user + t.system + t.children_user + t.children_system


def other_cpu(start, wall):
    """Average number of cores that other processes kept busy since ``start``."""
    end = cpu_busy()
    if start is None or end is None or wall <= 0:
        return None
    return max(0.0, ((end[0] - start[0]) - (end[1] - start[1])) / wall)


# -- main -----------------------------------------------------------------------------------

def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    group = ap.add_mutually_exclusive_group()
    group.add_argument("--quick", action="store_true", help="fewer steps (under 5 minutes)")
    group.add_argument("--smoke", action="store_true",
                       help="tinynet only, a handful of steps on random data (for the tests)")
    ap.add_argument("--no-torch", action="store_true", help="measure tinynet alone")
    ap.add_argument("--no-compile", action="store_true", help="skip the compile-time runs")
    args = ap.parse_args()
    mode = "smoke" if args.smoke else "quick" if args.quick else "full"
    cfg = MODES[mode]
    t_start = time.perf_counter()
    busy_start = cpu_busy()

    torch = None
    if not (args.smoke or args.no_torch):
        try:
            import torch
        except ImportError:
            print('PyTorch is not installed: measuring tinynet alone. For the side-by-side, '
                  'install the bench extra:  pip install -e ".[bench]"  (torch==2.13.0)')
    if torch is not None:
        torch.set_num_threads(THREADS)

    x, y, xt, yt, source = load_data(random_only=args.smoke)
    print(f"tinynet vs PyTorch, {mode} mode, {time.strftime('%Y-%m-%d')}, "
          f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, data: {source}")
    print(f"threads: PyTorch torch.set_num_threads({THREADS}) "
          f"{'(torch ' + torch.__version__ + ')' if torch else '(not installed)'}; "
          f"tinynet ops backend {ops.backend()!r}, {THREADS} threads; "
          "the MLP recipe runs tinynet on 1 thread (tinynet's own choice within "
          "the same 2-core budget)")
    results = {"mode": mode, "data": source, "torch": torch.__version__ if torch else None}
    rows = []

    def row(what, tn, pt, unit, ratio=None):
        if pt is None:
            rows.append(f"{what:<44}{tn:>12.4g} {unit:<10}{'-':>12}")
        else:
            r = tn / pt if ratio is None else ratio
            rows.append(f"{what:<44}{tn:>12.4g} {unit:<10}{pt:>12.4g} {unit:<10}{r:>7.2f}")
        print(rows[-1], flush=True)

    print(f"\n{'':<44}{'tinynet':>12} {'':<10}{'PyTorch':>12} {'':<10}{'ratio':>7}")

    # (a) the MLP, batch 32, Adam; (b) the examples/mnist CNN, batch 64, Adam
    for key, builder, batch, steps, n_threads in (("mlp", "mlp", 32, cfg["mlp_steps"], 1),
                                                  ("cnn", "torch_example_cnn", 64,
                                                   cfg["cnn_steps"], THREADS)):
        tn = Tinynet(builder, n_threads)
        tools = [tn] + ([Torch(torch, builder, tn)] if torch else [])
        if torch and key == "mlp":
            # a reference only: PyTorch on one thread, as tinynet's MLP recipe chooses
            tools.append(Torch(torch, builder, tn, threads=1))
        per_step = train_times(tools, x, y, batch, steps, cfg["rounds"], cfg["budget"])
        epoch_steps = math.ceil(TRAIN_SIZE / batch)
        t_tn = per_step["tinynet"] * epoch_steps
        t_pt = per_step["PyTorch"] * epoch_steps if torch else None
        row(f"{key.upper()} train s/epoch (batch {batch}, Adam)", t_tn, t_pt, "s")
        results[f"{key}_train_s_per_epoch"] = t_tn
        if torch:
            results[f"{key}_train_s_per_epoch_torch"] = t_pt
            results[f"{key}_train_ratio"] = t_tn / t_pt
        if torch and key == "mlp":
            t_pt1 = per_step["PyTorch 1 thread"] * epoch_steps
            row("  (reference: PyTorch with 1 thread)", t_tn, t_pt1, "s")
            results["mlp_train_s_per_epoch_torch_1thread"] = t_pt1
            results["mlp_train_ratio_vs_torch_1thread"] = t_tn / t_pt1
        if key == "cnn":
            flops = cnn_step_flops(batch)
            g_tn = flops / per_step["tinynet"] / 1e9
            results["cnn_train_gflops"] = g_tn
            results["cnn_train_peak_fraction"] = g_tn / PEAK_GFLOPS
            g_pt = flops / per_step["PyTorch"] / 1e9 if torch else None
            row(f"CNN train GFLOP/s (peak {PEAK_GFLOPS:.0f})", g_tn, g_pt, "GFLOP/s",
                ratio=(g_pt / g_tn) if torch else None)
            cnn = tools

    # inference of the CNN over the test images, and single-image latency
    xi = np.ascontiguousarray(xt[:cfg["infer_n"]])
    best = {}
    for batch in cfg["batches"]:
        for t in cnn:
            t.infer(xi[:batch], batch)           # warm-up
        med, allt = interleaved(cnn, lambda t, b=batch: t.infer(xi, b), cfg["infer_reps"])
        ips = {k: len(xi) / min(v) for k, v in allt.items()}
        for k, v in ips.items():
            best[k] = max(best.get(k, (0, 0)), (v, batch))
        row(f"CNN inference images/s, batch {batch}", ips["tinynet"], ips.get("PyTorch"),
            "img/s", ratio=ips["PyTorch"] / ips["tinynet"] if torch else None)
    row("CNN inference images/s, each at best batch", best["tinynet"][0],
        best["PyTorch"][0] if torch else None, "img/s",
        ratio=best["PyTorch"][0] / best["tinynet"][0] if torch else None)
    results["cnn_infer_images_per_s"] = best["tinynet"][0]
    results["cnn_infer_best_batch"] = best["tinynet"][1]
    if torch:
        results["cnn_infer_images_per_s_torch"] = best["PyTorch"][0]
        results["cnn_infer_best_batch_torch"] = best["PyTorch"][1]
        results["cnn_infer_ratio"] = best["PyTorch"][0] / best["tinynet"][0]

    one = xi[:1]
    lat = {t.name: [] for t in cnn}
    for _ in range(cfg["latency"]):
        for t in cnn:
            t0 = time.perf_counter()
            t.infer(one, 1)
            lat[t.name].append(time.perf_counter() - t0)
    lat = {k: float(np.median(v)) * 1e3 for k, v in lat.items()}
    row("CNN single-image latency", lat["tinynet"], lat.get("PyTorch"), "ms")
    results["cnn_latency_ms"] = lat["tinynet"]
    if torch:
        results["cnn_latency_ms_torch"] = lat["PyTorch"]
        results["cnn_latency_ratio"] = lat["tinynet"] / lat["PyTorch"]

    if not (args.smoke or args.no_compile):
        cold, cached = compile_times()
        rows.append(f"{'Numba compile time, cold / cached':<44}{cold:>12.3g} s / {cached:.3g} s")
        print(rows[-1])
        results["numba_compile_cold_s"] = cold
        results["numba_compile_cached_s"] = cached

    results["seconds"] = time.perf_counter() - t_start
    others = other_cpu(busy_start, time.perf_counter() - t_start)
    if others is not None:
        results["other_processes_cores"] = others
        print(f"other processes used {others:.2f} of the {os.cpu_count()} cores on average "
              "during this run")
        if others > 0.25:
            print("WARNING: the machine was shared: both tools' times are inflated, and a "
                  "tool whose threads spin-wait for each other suffers more than one that "
                  "sleeps; rerun on a quiet machine for clean ratios.")
    print("\nratios are tinynet time / PyTorch time for the same work (below 1: tinynet "
          "faster; for images/s and GFLOP/s the ratio is PyTorch's rate / tinynet's)")
    print(f"total {results['seconds']:.0f} s")
    print(json.dumps(results))


if __name__ == "__main__":
    main()
