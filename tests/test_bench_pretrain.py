"""benchmarks/bench_pretrain.py at tiny sizes: it times each variant and gives ratios against eager."""

import importlib.util
from pathlib import Path

import pytest

PATH = Path(__file__).resolve().parent.parent / "benchmarks" / "bench_pretrain.py"


def _bench():
    spec = importlib.util.spec_from_file_location("bench_pretrain", PATH)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_bench_pretrain_reports_steps_per_second_and_ratios():
    r = _bench().main(["--threads", "1", "--warm", "1", "--steps", "2", "--variants", "eager,bf16"])
    assert set(r["variants"]) == {"eager", "bf16"}
    assert r["variants"]["eager"]["vs_eager"] == 1.0 and r["variants"]["bf16"]["steps_per_s"] > 0


def test_bench_pretrain_names_the_valid_variants():
    with pytest.raises(SystemExit, match="fast not among eager, bf16, compile, compile_bf16"):
        _bench().main(["--variants", "fast", "--warm", "1", "--steps", "1"])
