"""benchmarks/gpu_check.py at tiny sizes on the CPU: it runs and reports the figures docs/PERFORMANCE.md needs."""

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_gpu_check_runs_at_tiny_sizes(tmp_path):
    out = tmp_path / "gpu.json"
    cmd = [sys.executable, str(ROOT / "benchmarks" / "gpu_check.py"), "--shape", "tiny", "--batch", "4",
           "--prompt-len", "8", "--new-tokens", "8", "--train-steps", "1", "--outer-steps", "1",
           "--soar-sizes", "tiny", "--peak-tflops", "1", "--lora-students", "3", "--lora-rows", "2",
           "--lora-new-tokens", "4", "--lora-r", "2", "--out", str(out)]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    subprocess.run(cmd, check=True, capture_output=True, text=True, env=env, cwd=ROOT, timeout=600)
    r = json.loads(out.read_text())
    assert r["sample_tok_s"] > 0 and r["train_tok_s"] > 0
    assert 0 < r["mfu_sample"] and 0 < r["mfu_train"]  # against the 1 TFLOP/s peak given
    assert r["soar_outer_steps"] == 1 and len(r["soar_step_seconds"]) == 1
    assert r["device"] and r["dtype"] == "float32"
    assert r["lora_students"] == 3 and r["lora_lockstep_tok_s"] > 0 and r["lora_one_at_a_time_tok_s_hf"] > 0
    assert r["lora_trainable_parameters"] > 0
