"""tinynet beside PyTorch and TensorFlow/Keras on CPU: the same networks, batch sizes and
thread budget, the tools alternating in one run.

    python benchmarks/compare_torch.py            # full (about 20 minutes)
    python benchmarks/compare_torch.py --quick    # fewer steps, no cold-process rows
    python benchmarks/compare_torch.py --smoke    # tinynet only, a handful of steps (tests)
    python benchmarks/compare_torch.py --no-keras / --no-torch   # leave a peer out

Rows (issue 12):

* training time per epoch, from a fixed number of steps extrapolated to the 60,000 training
  images, of (a) the original MLP (tinynet.networks.mlp, Adam, batch 32), (b) PyTorch's
  examples/mnist network (tinynet.networks.torch_example_cnn, Adam, batch 64) and (c) the
  shipped CNN (tinynet.networks.cnn, with batch norm, Adam, batch 128), each rebuilt layer
  for layer in torch.nn and keras.layers and started from tinynet's initial weights;
* inference images/s of the examples CNN over the test images at several batch sizes (each
  tool at its best), and single-image latency;
* peak resident memory of a fresh process that imports the tool and trains the examples CNN
  (batch 64) for a few dozen steps;
* (full mode) time to 99% test accuracy from a cold process (benchmarks/time_to_accuracy.py:
  same network and recipe for every tool; tinynet with an empty Numba cache), and Numba
  compile time, cold and cached;
* the GFLOP/s of the examples CNN's training, FLOPs counted analytically (2 per multiply-add
  of the direct convolution and dense products, whatever algorithm a tool uses);
* first, what a second core adds on this machine right now: NumPy copy bandwidth and
  OpenBLAS sgemm GFLOP/s on 1 and 2 threads (``machine`` in the JSON). On the idle
  development machine (2 vCPUs) both about double (copies 21 -> 40 GB/s, sgemm 100-110 ->
  175-200 GFLOP/s); when other tenants load the host they do not (one run gave 21 GB/s on
  one thread and 18 on two), and then no tool's 2-thread figure in the same run means much.

Fairness: PyTorch runs with torch.set_num_threads(2) and OMP_WAIT_POLICY=PASSIVE (its
threads sleep when idle, as tinynet's do; spinning ones were 3x slower on a shared machine;
``--torch-spin`` keeps the default); TensorFlow with 2 intra-op threads and
1 inter-op thread (ops one at a time, each on the 2 cores); tinynet with 2 worker threads
(tinynet/ops/fast/scheduler.py). The MLP recipe runs tinynet on 1 thread (its recipe's
``threads=1``, tinynet's own choice within the same 2-core budget). Other jobs may share the
cores, so the tools alternate (A, B, C, A, B, C, ...) and each row uses each tool's median
round.

Ratios are tinynet's time over the peer's for the same work (below 1: tinynet is faster;
for rates, the peer's rate over tinynet's). The last line of output is JSON: mlp_train_ratio,
cnn_train_ratio, cnn_infer_ratio (against PyTorch, as before), the same with ``_keras``
(against Keras) and ``_vs_best`` (against the faster peer), and the raw figures.

The peers are optional: ``pip install -e ".[bench]"`` installs both (torch==2.13.0,
tensorflow-cpu==2.21.0). Without one the script measures the others and says so.
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

PEAK_GFLOPS = 358.0          # fp32 peak of the 2 cores: 2.8 GHz x 2 AVX-512 FMA units x 32
TRAIN_SIZE = 60000
THREADS = 2

MODES = {
    # budget: seconds per tool per training round at most; rounds of *_steps each;
    # inference over infer_n test images, infer_reps times per batch size; latency calls
    "full": dict(budget=20.0, rounds=5, mlp_steps=400, cnn_steps=40, shipped_steps=20,
                 infer_n=10000, infer_reps=3, latency=200, batches=(64, 100, 256, 1000),
                 rss_steps=50),
    "quick": dict(budget=8.0, rounds=3, mlp_steps=150, cnn_steps=12, shipped_steps=6,
                  infer_n=2000, infer_reps=2, latency=50, batches=(100, 1000), rss_steps=20),
    "smoke": dict(budget=5.0, rounds=1, mlp_steps=3, cnn_steps=2, shipped_steps=2, infer_n=64,
                  infer_reps=1, latency=3, batches=(32,), rss_steps=2),
}
PEERS = ("PyTorch", "Keras")


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


# -- the tools ------------------------------------------------------------------------------

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


def _weighted(reference):
    """tinynet's layers that have weights, in order: (W, b) of each Conv2D and Dense."""
    return [(layer.params["W"], layer.params["b"]) for layer in reference.model.layers
            if "W" in layer.params]


class Torch:
    name = "PyTorch"

    def __init__(self, torch, builder, reference):
        nn = torch.nn
        self.torch = torch
        if builder == "mlp":
            layers = [nn.Flatten(), nn.Linear(784, 128), nn.ReLU(), nn.Linear(128, 128),
                      nn.ReLU(), nn.Linear(128, 10)]
        elif builder == "torch_example_cnn":       # PyTorch's examples/mnist network
            layers = [nn.Conv2d(1, 32, 3), nn.ReLU(), nn.Conv2d(32, 64, 3), nn.ReLU(),
                      nn.MaxPool2d(2), nn.Dropout(0.25), nn.Flatten(), nn.Linear(9216, 128),
                      nn.ReLU(), nn.Dropout(0.5), nn.Linear(128, 10)]
        else:                                      # the shipped CNN (tinynet.networks.cnn)
            def block(c_in, c_out):
                return [nn.Conv2d(c_in, c_out, 3), nn.BatchNorm2d(c_out), nn.ReLU()]
            layers = [*block(1, 32), *block(32, 32), nn.MaxPool2d(2), *block(32, 64),
                      *block(64, 64), nn.MaxPool2d(2), nn.Flatten(), nn.Linear(1024, 128),
                      nn.BatchNorm1d(128), nn.ReLU(), nn.Dropout(0.3), nn.Linear(128, 10)]
        self.model = nn.Sequential(*layers)
        mine = [m for m in self.model if isinstance(m, (nn.Conv2d, nn.Linear))]
        with torch.no_grad():               # tinynet's Dense W is (in, out): transpose
            for m, (W, b) in zip(mine, _weighted(reference)):
                m.weight.copy_(torch.from_numpy(W.T.copy() if W.ndim == 2 else W))
                m.bias.copy_(torch.from_numpy(b))
        self.opt = torch.optim.Adam(self.model.parameters(), lr=1e-3)

    def train(self, x, y, order, batch, steps, start, budget=math.inf):
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


class Keras:
    """The same networks in Keras 3 on TensorFlow, channels-last (Keras's default layout and
    the one oneDNN prefers): the images are transposed to NHWC once, outside the timing."""
    name = "Keras"

    def __init__(self, keras, builder, reference):
        L = keras.layers
        self.keras = keras
        if builder == "mlp":
            layers = [L.Flatten(), L.Dense(128, activation="relu"),
                      L.Dense(128, activation="relu"), L.Dense(10)]
        elif builder == "torch_example_cnn":
            layers = [L.Conv2D(32, 3, activation="relu"), L.Conv2D(64, 3, activation="relu"),
                      L.MaxPooling2D(2), L.Dropout(0.25), L.Flatten(),
                      L.Dense(128, activation="relu"), L.Dropout(0.5), L.Dense(10)]
        else:
            def bn():
                return L.BatchNormalization(momentum=0.9, epsilon=1e-5)

            def block(c_out):
                return [L.Conv2D(c_out, 3), bn(), L.ReLU()]
            layers = [*block(32), *block(32), L.MaxPooling2D(2), *block(64), *block(64),
                      L.MaxPooling2D(2), L.Flatten(), L.Dense(128), bn(), L.ReLU(),
                      L.Dropout(0.3), L.Dense(10)]
        self.model = keras.Sequential([keras.Input((28, 28, 1)), *layers])
        self._copy_weights(reference)
        self.model.compile(optimizer=keras.optimizers.Adam(1e-3),
                           loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))

    def _copy_weights(self, reference):
        mine = [m for m in self.model.layers if m.__class__.__name__ in ("Conv2D", "Dense")]
        after_flatten = None
        for m, (W, b) in zip(mine, _weighted(reference)):
            if W.ndim == 4:                               # (F, C, kh, kw) -> (kh, kw, C, F)
                m.set_weights([W.transpose(2, 3, 1, 0), b])
                after_flatten = W.shape[0]
            else:
                if after_flatten:   # tinynet flattens (c, h, w), Keras (h, w, c)
                    C = after_flatten
                    hw = W.shape[0] // C
                    W = W.reshape(C, hw, -1).transpose(1, 0, 2).reshape(W.shape)
                    after_flatten = None
                m.set_weights([W, b])

    @staticmethod
    def nhwc(x):
        return np.ascontiguousarray(x.transpose(0, 2, 3, 1))

    def train(self, x, y, order, batch, steps, start, budget=math.inf):
        t0 = time.perf_counter()
        for b in range(start, start + steps):
            idx = order[(b * batch) % len(order):][:batch]
            self.model.train_on_batch(x[idx], y[idx])
            if time.perf_counter() - t0 > budget:
                return b - start + 1
        return steps

    def infer(self, x, batch):
        for s in range(0, len(x), batch):
            self.model.predict_on_batch(x[s:s + batch])


def import_peers(want_torch, want_keras):
    """(torch or None, keras or None), each set to the 2-thread budget."""
    torch = keras = None
    if want_torch:
        # PyTorch's OpenMP threads spin while they wait for work; on a machine shared with
        # other jobs a spinning thread keeps its partner from the core (measured: the
        # examples CNN step 3x slower under load). Sleeping instead, as tinynet's worker
        # threads do, is PyTorch's best setting here; --torch-spin keeps its default.
        if not os.environ.get("TINYNET_BENCH_TORCH_SPIN"):
            os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
        try:
            import torch
            torch.set_num_threads(THREADS)
        except ImportError:
            print("PyTorch is not installed: leaving it out. For the side-by-side, install "
                  'the bench extra:  pip install -e ".[bench]"')
    if want_keras:
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        try:
            import tensorflow as tf
            tf.config.threading.set_intra_op_parallelism_threads(THREADS)
            tf.config.threading.set_inter_op_parallelism_threads(1)
            import keras
        except ImportError:
            print("TensorFlow/Keras is not installed: leaving it out. For the side-by-side, "
                  'install the bench extra:  pip install -e ".[bench]"')
    return torch, keras


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


def train_times(tools, data, batch, steps, rounds, budget):
    """Seconds per training step for each tool: the median over ``rounds`` alternating
    rounds of ``steps`` steps each (a round stops early after ``budget`` seconds, so a tool
    slowed down by a busy machine cannot stretch the run without bound)."""
    order = np.random.default_rng(1).permutation(len(data["tinynet"][0]))
    for t in tools:                                  # warm-up (and Numba cache load)
        t.train(*data[t.name], order, batch, 3, 0)
    start = 3
    per_step = {t.name: [] for t in tools}
    for _ in range(rounds):
        for t in tools:
            t0 = time.perf_counter()
            done = t.train(*data[t.name], order, batch, steps, start, budget)
            per_step[t.name].append((time.perf_counter() - t0) / done)
        start += steps
    return {k: float(np.median(v)) for k, v in per_step.items()}


def cnn_step_flops(batch):
    """Multiply-adds x 2 of one training step of torch_example_cnn (forward + backward),
    counted for the direct convolution."""
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
    second subprocess on the now-filled cache."""
    with tempfile.TemporaryDirectory() as cache:
        env = dict(os.environ, NUMBA_CACHE_DIR=cache)
        out = []
        for _ in range(2):
            res = subprocess.run([sys.executable, "-c", COMPILE_SNIPPET, str(ROOT)], env=env,
                                 capture_output=True, text=True, timeout=600)
            if res.returncode != 0:
                raise RuntimeError(res.stderr[-2000:])
            t_import, first, second = map(float, res.stdout.split()[-3:])
            out.append(first - second)
    return out[0], out[1]


def rss_worker(tool, steps):
    """In a fresh process: import ``tool``, train the examples CNN for ``steps`` steps of
    batch 64 on 6,400 random images, print the peak resident memory in MB (VmHWM: unlike
    getrusage's ru_maxrss, which Linux carries over from the parent across fork and exec,
    it starts afresh with the new program)."""
    rng = np.random.default_rng(0)
    x = rng.random((6400, 1, 28, 28), dtype=np.float32)
    y = rng.integers(0, 10, 6400)
    ref = Tinynet("torch_example_cnn")
    if tool == "tinynet":
        t = ref
    else:
        torch, keras = import_peers(tool == "PyTorch", tool == "Keras")
        t = Torch(torch, "torch_example_cnn", ref) if tool == "PyTorch" else \
            Keras(keras, "torch_example_cnn", ref)
        if tool == "Keras":
            x = Keras.nhwc(x)
    t.train(x, y, np.arange(len(x)), 64, steps, 0)
    with open("/proc/self/status") as f:
        kb = next(int(line.split()[1]) for line in f if line.startswith("VmHWM:"))
    print(kb / 1024)


def peak_rss(tool, steps):
    res = subprocess.run([sys.executable, __file__, "--rss-worker", tool, "--rss-steps",
                          str(steps)], capture_output=True, text=True, timeout=600)
    if res.returncode != 0:
        raise RuntimeError(res.stderr[-2000:])
    return float(res.stdout.split()[-1])


def machine_scaling(copy_mb=64, gemm=2048, reps=5):
    """What a second core adds on this machine now: (copy GB/s, sgemm GFLOP/s) on 1 and on
    2 threads, best of ``reps``. The copies are NumPy's, one array per thread; the sgemm is
    OpenBLAS's on a square product. A second thread that adds little here means the host is
    busy: read the 2-thread rows of the same run with that in mind."""
    import threading

    from tinynet.ops.fast import scheduler

    n = copy_mb << 18                        # float32 values in copy_mb MB
    arrays = [(np.ones(n, np.float32), np.empty(n, np.float32)) for _ in range(2)]
    a = np.ones((gemm, gemm), np.float32)

    def copy_rate(threads):
        best = 0.0
        for _ in range(reps):
            workers = [threading.Thread(target=np.copyto, args=(dst, src))
                       for src, dst in arrays[:threads]]
            t = time.perf_counter()
            for w in workers:
                w.start()
            for w in workers:
                w.join()
            best = max(best, threads * 2 * n * 4 / (time.perf_counter() - t) / 1e9)
        return best

    def gemm_rate(threads):
        with scheduler.blas_threads(threads) as known:
            if not known:                    # not OpenBLAS: its threads cannot be set
                return float("nan")
            a @ a
            seconds = []
            for _ in range(reps):
                t = time.perf_counter()
                a @ a
                seconds.append(time.perf_counter() - t)
        return 2 * gemm ** 3 / min(seconds) / 1e9

    return {"copy_gbps": [round(copy_rate(1), 1), round(copy_rate(2), 1)],
            "sgemm_gflops": [round(gemm_rate(1), 1), round(gemm_rate(2), 1)]}


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

class Table:
    """Rows of tinynet beside each peer, with tinynet's ratio to each and to the best."""

    def __init__(self, peers, results):
        self.peers, self.results = peers, results
        head = f"{'':<46}{'tinynet':>14}" + "".join(f"{p:>14}" for p in peers)
        head += "".join(f"{'vs ' + p:>12}" for p in peers) + (f"{'vs best':>9}" if peers else "")
        print("\n" + head)

    def row(self, what, key, values, unit, rate=False):
        """``values``: {tool: figure}; ``rate``: higher is better (ratios are inverted so
        that below 1 always means tinynet is ahead)."""
        fmt = (lambda v: f"{v:,.0f} {unit}") if abs(values["tinynet"]) >= 100 else \
              (lambda v: f"{v:.3g} {unit}")
        line = f"{what:<46}{fmt(values['tinynet']):>14}"
        line += "".join(f"{fmt(values[p]) if p in values else '-':>14}" for p in self.peers)
        ratios = {}
        for p in self.peers:
            if values.get(p) is not None and values[p] > 0:
                ratios[p] = values[p] / values["tinynet"] if rate else values["tinynet"] / values[p]
        line += "".join(f"{ratios[p]:>12.2f}" if p in ratios else f"{'-':>12}"
                        for p in self.peers)
        if ratios:
            line += f"{max(ratios.values()):>9.2f}"
        print(line, flush=True)
        self.results[key] = values["tinynet"]
        for p in values:
            if p != "tinynet":
                self.results[f"{key}_{p.lower()}"] = values[p]
        for p, r in ratios.items():
            self.results[f"{key}_ratio_{p.lower()}"] = r
        if ratios:
            self.results[f"{key}_ratio_vs_best"] = max(ratios.values())
        return ratios


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    group = ap.add_mutually_exclusive_group()
    group.add_argument("--quick", action="store_true", help="fewer steps, no cold-process rows")
    group.add_argument("--smoke", action="store_true",
                       help="tinynet only, a handful of steps on random data (for the tests)")
    ap.add_argument("--no-torch", action="store_true", help="leave PyTorch out")
    ap.add_argument("--no-keras", action="store_true", help="leave TensorFlow/Keras out")
    ap.add_argument("--no-compile", action="store_true", help="skip the compile-time runs")
    ap.add_argument("--torch-spin", action="store_true",
                    help="leave PyTorch's OpenMP threads spinning while idle (its default)")
    ap.add_argument("--rss-worker", help=argparse.SUPPRESS)
    ap.add_argument("--rss-steps", type=int, default=50, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.torch_spin:
        os.environ["TINYNET_BENCH_TORCH_SPIN"] = "1"     # also for the subprocesses
    if args.rss_worker:
        return rss_worker(args.rss_worker, args.rss_steps)
    mode = "smoke" if args.smoke else "quick" if args.quick else "full"
    cfg = MODES[mode]
    t_start = time.perf_counter()
    busy_start = cpu_busy()

    torch, keras = (None, None) if args.smoke else import_peers(not args.no_torch,
                                                                not args.no_keras)
    peers = [p for p, m in zip(PEERS, (torch, keras)) if m is not None]

    x, y, xt, yt, source = load_data(random_only=args.smoke)
    data = {"tinynet": (x, y), "PyTorch": (x, y)}
    if keras is not None:
        data["Keras"] = (Keras.nhwc(x), y)
    print(f"tinynet beside {', '.join(peers) or 'no peer'}, {mode} mode, "
          f"{time.strftime('%Y-%m-%d %H:%M')}, {platform.processor() or platform.machine()}, "
          f"{os.cpu_count()} cores, data: {source}")
    versions = {"PyTorch": torch.__version__ if torch else None,
                "Keras": f"{keras.__version__} (TensorFlow "
                         f"{__import__('tensorflow').__version__})" if keras else None}
    print(f"threads: tinynet ops backend {ops.backend()!r}, {THREADS} worker threads (the MLP "
          f"recipe: 1); PyTorch {versions['PyTorch']}: torch.set_num_threads({THREADS}), "
          f"OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY', 'default')}; "
          f"Keras {versions['Keras']}: {THREADS} intra-op threads, 1 inter-op")
    results = {"mode": mode, "data": source, "torch": versions["PyTorch"],
               "keras": versions["Keras"]}
    scaling = (machine_scaling(copy_mb=8, gemm=512, reps=2) if args.smoke else machine_scaling())
    results["machine"] = scaling
    print(f"machine: memory copy {scaling['copy_gbps'][0]} GB/s on 1 thread, "
          f"{scaling['copy_gbps'][1]} on 2; OpenBLAS sgemm {scaling['sgemm_gflops'][0]} "
          f"GFLOP/s on 1 thread, {scaling['sgemm_gflops'][1]} on 2")
    table = Table(peers, results)

    def make(builder, n_threads=THREADS):
        tn = Tinynet(builder, n_threads)
        tools = [tn]
        if torch:
            tools.append(Torch(torch, builder, tn))
        if keras:
            tools.append(Keras(keras, builder, tn))
        return tools

    rows = (("mlp", "mlp", 32, cfg["mlp_steps"], 1, "MLP train s/epoch (batch 32, Adam)"),
            ("cnn", "torch_example_cnn", 64, cfg["cnn_steps"], THREADS,
             "examples CNN train s/epoch (batch 64, Adam)"),
            ("shipped_cnn", "cnn", 128, cfg["shipped_steps"], THREADS,
             "shipped CNN train s/epoch (batch 128, Adam)"))
    for key, builder, batch, steps, n_threads, what in rows:
        tools = make(builder, n_threads)
        per_step = train_times(tools, data, batch, steps, cfg["rounds"], cfg["budget"])
        epoch = {k: v * math.ceil(TRAIN_SIZE / batch) for k, v in per_step.items()}
        table.row(what, f"{key}_train_s_per_epoch", epoch, "s")
        if key == "cnn":
            cnn = tools
            gflops = {k: cnn_step_flops(batch) / v / 1e9 for k, v in per_step.items()}
            table.row(f"examples CNN train GFLOP/s (peak {PEAK_GFLOPS:.0f})", "cnn_train_gflops",
                      gflops, "GF/s", rate=True)
            results["cnn_train_peak_fraction"] = gflops["tinynet"] / PEAK_GFLOPS

    # inference of the examples CNN over the test images, and single-image latency
    xi = np.ascontiguousarray(xt[:cfg["infer_n"]])
    xin = {"tinynet": xi, "PyTorch": xi, "Keras": Keras.nhwc(xi)}
    best = {}
    for batch in cfg["batches"]:
        for t in cnn:
            t.infer(xin[t.name][:batch], batch)           # warm-up
        _, allt = interleaved(cnn, lambda t, b=batch: t.infer(xin[t.name], b), cfg["infer_reps"])
        ips = {k: len(xi) / min(v) for k, v in allt.items()}
        for k, v in ips.items():
            best[k] = max(best.get(k, (0, 0)), (v, batch))
        table.row(f"examples CNN inference img/s, batch {batch}", f"cnn_infer_b{batch}", ips,
                  "/s", rate=True)
    table.row("  ... each tool at its best batch", "cnn_infer_images_per_s",
              {k: v[0] for k, v in best.items()}, "/s", rate=True)
    for k, v in best.items():
        results[f"cnn_infer_best_batch{'' if k == 'tinynet' else '_' + k.lower()}"] = v[1]

    lat = {t.name: [] for t in cnn}
    for _ in range(cfg["latency"]):
        for t in cnn:
            one = xin[t.name][:1]
            t0 = time.perf_counter()
            t.infer(one, 1)
            lat[t.name].append(time.perf_counter() - t0)
    table.row("examples CNN single-image latency", "cnn_latency_ms",
              {k: float(np.median(v)) * 1e3 for k, v in lat.items()}, "ms")

    if os.path.exists("/proc/self/status"):
        rss = {"tinynet": peak_rss("tinynet", cfg["rss_steps"])}
        for p in peers:
            rss[p] = peak_rss(p, cfg["rss_steps"])
        table.row("peak RSS, training the examples CNN", "cnn_train_peak_rss_mb", rss, "MB")

    if mode == "full":
        import time_to_accuracy as tta
        reached = {}
        for tool, name in (("tinynet", "tinynet"), ("torch", "PyTorch"), ("keras", "Keras")):
            if name == "tinynet" or name in peers:
                reached[name], _ = tta.time_run(tool, 0.99, warm=False)
        if reached["tinynet"] is not None:
            table.row("time to 99% from a cold process", "seconds_to_99",
                      {k: v for k, v in reached.items() if v is not None}, "s")
        else:
            print("time to 99% from a cold process: tinynet did not reach 99%")

    if not (args.smoke or args.no_compile):
        cold, cached = compile_times()
        print(f"{'Numba compile time, cold / cached':<46}{cold:>12.3g} s / {cached:.3g} s")
        results["numba_compile_cold_s"] = cold
        results["numba_compile_cached_s"] = cached

    # the keys of earlier versions of this benchmark (ratios against PyTorch), and the
    # ratios against the fastest peer
    for short, key in (("mlp_train", "mlp_train_s_per_epoch"),
                       ("cnn_train", "cnn_train_s_per_epoch"),
                       ("shipped_cnn_train", "shipped_cnn_train_s_per_epoch"),
                       ("cnn_infer", "cnn_infer_images_per_s"),
                       ("cnn_latency", "cnn_latency_ms")):
        for p in peers:
            suffix = "" if p == "PyTorch" else "_" + p.lower()
            results[f"{short}_ratio{suffix}"] = results[f"{key}_ratio_{p.lower()}"]
        if peers:
            results[f"{short}_ratio_vs_best"] = results[f"{key}_ratio_vs_best"]
    results["mlp_train_s_per_epoch"] = results["mlp_train_s_per_epoch"]
    results["cnn_latency_ms"] = results["cnn_latency_ms"]

    results["seconds"] = time.perf_counter() - t_start
    others = other_cpu(busy_start, time.perf_counter() - t_start)
    if others is not None:
        results["other_processes_cores"] = others
        print(f"other processes used {others:.2f} of the {os.cpu_count()} cores on average "
              "during this run")
        if others > 0.25:
            print("WARNING: the machine was shared: every tool's times are inflated, and a "
                  "tool whose threads spin-wait for each other suffers more than one that "
                  "sleeps; rerun on a quiet machine for clean ratios.")
    print("\nratios: tinynet's time / the peer's for the same work (below 1: tinynet "
          "faster; for img/s and GFLOP/s, the peer's rate / tinynet's); vs best: against "
          "the faster peer")
    print(f"total {results['seconds']:.0f} s")
    print(json.dumps(results))


if __name__ == "__main__":
    main()
