"""benchmarks/gpu_check.py runs end to end: its --cpu mode, the same code on a tiny input."""

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_gpu_check_runs_on_the_cpu(tmp_path):
    out = tmp_path / "check.json"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "gpu_check.py"), "--cpu", "--trials", "2",
                           "--out", str(out)], capture_output=True, text=True, timeout=300, cwd=tmp_path, env=env)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    report = json.loads(out.read_text())
    assert report["mode"] == "cpu" and any("CPU" in d for d in report["devices"])
    # The same device against itself: float32 must agree exactly within the tolerance.
    assert report["exact"]["passed"] and report["exact"]["max_relative_difference"] <= 1e-5
    assert set(report["precisions"]) == {"float32", "tf32", "bfloat16"}
    assert report["precisions"]["bfloat16"]["max_relative_difference"] > 0, "bfloat16 should round the logits"
    assert report["evaluation"]["images_per_s"] > 0 and report["evaluation"]["matmul_gmacs"] > 0
    assert report["sweep"]["sweep_over_floor"] > 0 and 0 <= report["sweep"]["host_share_of_a_dense_1_trial"] <= 1
    assert report["streams"]["same_counts"] is True
