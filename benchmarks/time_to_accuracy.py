"""Time to 99% MNIST test accuracy from a cold process, tinynet beside PyTorch and Keras.

Each tool runs in a fresh Python process; the clock starts before the process is launched,
so interpreter start-up, imports, data loading and (for tinynet) Numba compilation all
count. For tinynet the Numba cache is pointed at an empty folder, so every kernel compiles
from scratch ("cold"); ``--warm`` reuses the normal cache instead.

Every tool trains the same network (tinynet.networks.small_cnn, rebuilt layer for layer in
PyTorch and in Keras) with the same recipe (tinynet.recipes.RECIPES["fast"]: Adam, one-cycle
learning rate, batch 128) and the same thread budget (2), and tests after every epoch.

    python benchmarks/time_to_accuracy.py [--target 0.99] [--runs 1] [--warm]
    python benchmarks/time_to_accuracy.py --backends [--network cnn] [--epochs 1]

``--backends`` checks that the recipe reaches the same accuracy on tinynet's two ops backends
(``TINYNET_OPS=fast`` and ``reference``), optionally with another network of
tinynet.networks and fewer epochs (``cnn``: the 3x3 convolutions of the fast backend's
Winograd path).

The last line of output is JSON.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def worker_tinynet():
    sys.path.insert(0, str(ROOT))
    import math

    import numpy as np

    from tinynet import data, networks, recipes
    from tinynet.train import fit

    recipe = recipes.RECIPES["fast"]
    epochs = int(os.environ.get("TTA_EPOCHS", recipe.epochs))      # set by --backends
    x, y, xt, yt = data.load_mnist()
    x, xt = data.to_float(x), data.to_float(xt)
    y, yt = y.astype(np.int64), yt.astype(np.int64)
    rng = np.random.default_rng(0)
    model = networks.BUILDERS[os.environ.get("TTA_NETWORK", recipe.model)](rng)
    optimizer = recipe.make_optimizer(model)
    steps = epochs * math.ceil(len(x) / recipe.batch_size)

    class Report:
        def update(self, text, force=False):
            pass

        def done(self, text):
            # "epoch 1/2 loss ... val acc 0.9891"
            print("EPOCH", text.split()[1].split("/")[0], text.rsplit(" ", 1)[-1], flush=True)

    fit(model, optimizer, x, y, epochs=epochs, batch_size=recipe.batch_size, rng=rng,
        schedule=recipe.make_schedule(steps), validation=(xt, yt), progress=Report(),
        threads=recipe.threads)


def worker_torch():
    sys.path.insert(0, str(ROOT))
    import numpy as np
    import torch
    from torch import nn

    from tinynet import data, recipes

    torch.set_num_threads(2)
    torch.manual_seed(0)
    recipe = recipes.RECIPES["fast"]
    x, y, xt, yt = data.load_mnist()
    x = torch.from_numpy(data.to_float(x))
    xt = torch.from_numpy(data.to_float(xt))
    y, yt = torch.from_numpy(y.astype(np.int64)), torch.from_numpy(yt.astype(np.int64))
    model = nn.Sequential(
        nn.Conv2d(1, 16, 5), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(16, 32, 5), nn.MaxPool2d(2), nn.BatchNorm2d(32), nn.ReLU(),
        nn.Flatten(), nn.Linear(512, 128), nn.BatchNorm1d(128), nn.ReLU(), nn.Linear(128, 10),
    )
    optimizer = torch.optim.Adam(model.parameters(), lr=recipe.lr)
    steps_per_epoch = -(-len(x) // recipe.batch_size)
    schedule = torch.optim.lr_scheduler.OneCycleLR(
        optimizer, max_lr=recipe.lr, total_steps=recipe.epochs * steps_per_epoch,
        pct_start=0.25, div_factor=25.0, final_div_factor=1e4)
    loss_fn = nn.CrossEntropyLoss()
    for epoch in range(recipe.epochs):
        model.train()
        order = torch.randperm(len(x))
        for start in range(0, len(x), recipe.batch_size):
            index = order[start:start + recipe.batch_size]
            optimizer.zero_grad()
            loss_fn(model(x[index]), y[index]).backward()
            optimizer.step()
            schedule.step()
        model.eval()
        with torch.no_grad():
            correct = sum(int((model(xt[i:i + 1000]).argmax(1) == yt[i:i + 1000]).sum())
                          for i in range(0, len(xt), 1000))
        print("EPOCH", epoch + 1, correct / len(xt), flush=True)


def worker_keras():
    sys.path.insert(0, str(ROOT))
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import numpy as np
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(2)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    import keras

    from tinynet import data, optim, recipes

    keras.utils.set_random_seed(0)
    recipe = recipes.RECIPES["fast"]
    x, y, xt, yt = data.load_mnist()
    x = np.ascontiguousarray(data.to_float(x).transpose(0, 2, 3, 1))     # NHWC
    xt = np.ascontiguousarray(data.to_float(xt).transpose(0, 2, 3, 1))
    L = keras.layers

    def bn():
        return L.BatchNormalization(momentum=0.9, epsilon=1e-5)

    model = keras.Sequential([
        keras.Input((28, 28, 1)),
        L.Conv2D(16, 5), L.ReLU(), L.MaxPooling2D(2),
        L.Conv2D(32, 5), L.MaxPooling2D(2), bn(), L.ReLU(),
        L.Flatten(), L.Dense(128), bn(), L.ReLU(), L.Dense(10),
    ])
    steps = recipe.epochs * -(-len(x) // recipe.batch_size)
    one_cycle = optim.one_cycle(recipe.lr, steps)        # the same schedule, step by step
    table = np.array([one_cycle(i) for i in range(steps + 1)], dtype=np.float32)

    class Schedule(keras.optimizers.schedules.LearningRateSchedule):
        def __call__(self, step):
            return keras.ops.take(table, keras.ops.minimum(keras.ops.cast(step, "int32"),
                                                           steps))

    model.compile(optimizer=keras.optimizers.Adam(Schedule()), metrics=["accuracy"],
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    for epoch in range(recipe.epochs):
        model.fit(x, y, batch_size=recipe.batch_size, epochs=1, shuffle=True, verbose=0)
        _, acc = model.evaluate(xt, yt, batch_size=1000, verbose=0)
        print("EPOCH", epoch + 1, acc, flush=True)


def time_run(tool, target, warm, extra_env=None):
    env = dict(os.environ, **(extra_env or {}))
    with tempfile.TemporaryDirectory() as cache:
        if tool == "tinynet" and not warm:
            env["NUMBA_CACHE_DIR"] = cache
        if tool == "torch" and not env.get("TINYNET_BENCH_TORCH_SPIN"):
            env.setdefault("OMP_WAIT_POLICY", "PASSIVE")     # see benchmarks/compare_torch.py
        start = time.monotonic()
        proc = subprocess.Popen([sys.executable, __file__, "--worker", tool], env=env,
                                stdout=subprocess.PIPE, text=True)
        reached, log = None, []
        for line in proc.stdout:
            if line.startswith("EPOCH"):
                _, epoch, acc = line.split()
                elapsed = time.monotonic() - start
                log.append({"epoch": int(epoch), "accuracy": float(acc),
                            "seconds": round(elapsed, 1)})
                ops = env.get("TINYNET_OPS", "")
                print(f"  {tool:8s} {ops} epoch {epoch}: test accuracy {float(acc):.4f} "
                      f"at {elapsed:.1f} s", flush=True)
                if reached is None and float(acc) >= target:
                    reached = elapsed
        proc.wait()
        if proc.returncode:
            raise SystemExit(f"{tool} worker failed with status {proc.returncode}")
    return reached, log


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--target", type=float, default=0.99)
    p.add_argument("--runs", type=int, default=1)
    p.add_argument("--warm", action="store_true", help="keep Numba's compiled-kernel cache")
    p.add_argument("--no-torch", action="store_true")
    p.add_argument("--no-keras", action="store_true")
    p.add_argument("--backends", action="store_true",
                   help="tinynet only, on its fast and then its reference ops")
    p.add_argument("--network", help="with --backends: a network of tinynet.networks")
    p.add_argument("--epochs", type=int, help="with --backends: epochs of the recipe")
    p.add_argument("--worker", choices=["tinynet", "torch", "keras"], help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.backends:
        extra = {k: str(v) for k, v in (("TTA_NETWORK", args.network),
                                         ("TTA_EPOCHS", args.epochs)) if v}
        out = {}
        for name in ("fast", "reference"):
            _, log = time_run("tinynet", args.target, True, dict(extra, TINYNET_OPS=name))
            out[name] = [e["accuracy"] for e in log]
        print(json.dumps({"network": args.network or "recipe's", "accuracy_by_epoch": out}))
        return None
    if args.worker == "tinynet":
        return worker_tinynet()
    if args.worker == "torch":
        return worker_torch()
    if args.worker == "keras":
        return worker_keras()

    tools = ["tinynet"]
    if not args.no_torch:
        try:
            import torch  # noqa: F401

            tools.append("torch")
        except ImportError:
            print('PyTorch not installed (pip install -e ".[bench]"): leaving it out')
    if not args.no_keras:
        try:
            import tensorflow  # noqa: F401

            tools.append("keras")
        except ImportError:
            print('TensorFlow not installed (pip install -e ".[bench]"): leaving Keras out')
    results = {tool: [] for tool in tools}
    for _ in range(args.runs):
        for tool in tools:  # interleaved, so both see the same machine conditions
            reached, log = time_run(tool, args.target, args.warm)
            results[tool].append({"seconds_to_target": reached, "epochs": log})
    summary = {"target": args.target, "cold_numba_cache": not args.warm}
    for tool in tools:
        times = [r["seconds_to_target"] for r in results[tool]
                 if r["seconds_to_target"] is not None]
        summary[f"{tool}_seconds"] = min(times) if times else None
        summary[f"{tool}_final_accuracy"] = results[tool][-1]["epochs"][-1]["accuracy"]
        print(f"{tool}: best time to {100 * args.target:.1f}%: "
              f"{summary[f'{tool}_seconds'] if times else 'not reached'} s")
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
