"""The side-by-side benchmark keeps working: its tinynet-only smoke mode runs in seconds."""

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

def test_compare_torch_smoke():
    script = ROOT / "benchmarks" / "compare_torch.py"
    code = ("import runpy, sys\n"
            f"sys.argv = [{str(script)!r}, '--smoke']\n"
            f"runpy.run_path({str(script)!r}, run_name='__main__')\n"
            "assert 'torch' not in sys.modules, 'smoke mode imported torch'\n")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=120, cwd=ROOT)
    assert res.returncode == 0, res.stderr[-3000:]
    last = json.loads(res.stdout.strip().splitlines()[-1])
    for key in ("mlp_train_s_per_epoch", "cnn_train_s_per_epoch", "cnn_infer_images_per_s",
                "cnn_latency_ms", "cnn_train_gflops"):
        assert last[key] > 0, key
    assert last["mode"] == "smoke" and last["torch"] is None
