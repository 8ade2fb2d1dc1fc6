"""benchmarks/gpu_check.py at tiny sizes on the CPU: it runs and reports the figures docs/PERFORMANCE.md needs."""

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TINY = ["--smoke", "--peak-tflops", "1", "--lora-students", "3"]  # a flag overrides the smoke preset


def test_gpu_check_runs_at_tiny_sizes(tmp_path):
    out = tmp_path / "gpu.json"
    cmd = [sys.executable, str(ROOT / "benchmarks" / "gpu_check.py"), *TINY, "--out", str(out)]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    subprocess.run(cmd, check=True, capture_output=True, text=True, env=env, cwd=ROOT, timeout=600)
    r = json.loads(out.read_text())
    assert not [k for k in r if k.endswith("_error")], r  # every section ran
    assert r["sample_tok_s"] > 0 and r["train_tok_s"] > 0
    assert r["generate_tok_s"] > 0 and r["sample_fused_vs_generate"] > 0
    assert r["generate_static_tok_s"] > 0 and r["generate_static_vs_generate"] > 0
    assert 0 < r["mfu_sample"] and 0 < r["mfu_train"]  # against the 1 TFLOP/s peak given
    assert r["soar_outer_steps"] == 1 and len(r["soar_step_seconds"]) == 1
    assert r["device"] and r["dtype"] == "float32"
    assert r["lora_students"] == 3 and r["lora_lockstep_tok_s"] > 0 and r["lora_one_at_a_time_tok_s_hf"] > 0
    assert r["lora_trainable_parameters"] > 0


def test_a_failing_section_is_recorded_and_the_others_are_kept(tmp_path, monkeypatch):
    spec = importlib.util.spec_from_file_location("gpu_check", ROOT / "benchmarks" / "gpu_check.py")
    gpu_check = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(gpu_check)

    def broken(args, device, dtype):
        raise RuntimeError("no such peft API")

    monkeypatch.setattr(gpu_check, "lora_students", broken)
    out = tmp_path / "gpu.json"
    monkeypatch.setattr(sys, "argv", ["gpu_check.py", *TINY, "--outer-steps", "0", "--out", str(out)])
    gpu_check.main()
    r = json.loads(out.read_text())
    assert r["lora_error"] == "RuntimeError: no such peft API"
    assert r["sample_tok_s"] > 0 and "throughput_error" not in r  # the section before it is kept
    assert "soar_error" not in r and "soar_seconds" in r  # and the one after it still ran


def test_as_device_image_makes_the_packages_that_image_lacks_unimportable(tmp_path):
    script = tmp_path / "probe.py"
    script.write_text("import sys\nimport json\nprint(json.dumps(sys.argv[1:]))\nimport math_verify\n")
    cmd = [sys.executable, str(ROOT / "benchmarks" / "as_device_image.py"), str(script), "--flag", "1"]
    run = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert json.loads(run.stdout.splitlines()[0]) == ["--flag", "1"]  # the script ran, with its own arguments
    # math-verify is installed here, not there
    assert run.returncode != 0 and "ModuleNotFoundError: import of math_verify" in run.stderr
