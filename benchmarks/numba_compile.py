"""How long examples/mnist.py spends compiling Numba kernels: cold, then cached.

Runs ``examples/mnist.py --load weights/mnist.npz`` twice in fresh processes that share an
empty Numba cache folder. Numba reports every compilation as a "numba:compile" event; a
kernel loaded from the cache (``cache=True``) is not compiled and reports none.

    python benchmarks/numba_compile.py
"""

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

CHILD = """
import runpy, sys, time
from numba.core import event

total = {"seconds": 0.0, "kernels": 0}

class CompileTimer(event.Listener):
    def on_start(self, ev):
        self.start = time.perf_counter()

    def on_end(self, ev):
        total["seconds"] += time.perf_counter() - self.start
        total["kernels"] += 1

event.register("numba:compile", CompileTimer())
start = time.perf_counter()
sys.argv = ["examples/mnist.py", "--load", "weights/mnist.npz", "--no-show",
            "--figure", sys.argv[1]]
try:
    runpy.run_path("examples/mnist.py", run_name="__main__")
except SystemExit:
    pass
total["run_seconds"] = time.perf_counter() - start
print("RESULT", __import__("json").dumps(total))
"""


def run_once(cache, figure):
    env = {**os.environ, "NUMBA_CACHE_DIR": cache, "MPLBACKEND": "Agg"}
    out = subprocess.run([sys.executable, "-c", CHILD, figure], cwd=ROOT, env=env,
                         capture_output=True, text=True, check=True).stdout
    line = next(x for x in out.splitlines() if x.startswith("RESULT "))
    return json.loads(line[len("RESULT "):])


def main():
    with tempfile.TemporaryDirectory() as cache:
        figure = os.path.join(cache, "predictions.png")
        cold = run_once(cache, figure)
        cached = run_once(cache, figure)
    for name, r in (("first run (empty cache)", cold), ("second run (cached)", cached)):
        print(f"{name:24s} {r['kernels']:3d} kernels compiled in {r['seconds']:.2f} s; "
              f"whole run {r['run_seconds']:.2f} s")
    print(json.dumps({"compile_cold_s": cold["seconds"], "compile_cached_s": cached["seconds"],
                      "run_cold_s": cold["run_seconds"], "run_cached_s": cached["run_seconds"]}))


if __name__ == "__main__":
    main()
