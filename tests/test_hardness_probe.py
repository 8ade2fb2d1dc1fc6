"""research/hardness_probe.py: the scratchpad bookkeeping by hand, and one tiny run on the shipped model."""

import json
from pathlib import Path

from conftest import load_probe

ROOT = Path(__file__).resolve().parent.parent
Q = "61044 +34966 -28188 +10000 -12345 +00001"  # true chain 61044 =96010 =67822 =77822 =65477 =65478


def _probe():
    return load_probe("hardness_probe")


def test_scratchpad_counts_tell_a_propagated_error_from_a_return_to_the_true_chain():
    counts = _probe().scratchpad_counts
    right = "61044 =96010 =67822 =77822 =65477 =65478 \\boxed{65478}"
    assert counts(Q, right) == {"after_wrong": 0, "continues_written": 0, "returns_to_true": 0}
    # 96010 miswritten as 96011; the next step continues from it (96011 - 28188 = 67823), then returns (77822)
    pad = "61044 =96011 =67823 =77822 =65477 =65478 \\boxed{65478}"
    assert counts(Q, pad) == {"after_wrong": 2, "continues_written": 1, "returns_to_true": 1}
    assert counts("not a question", pad)["after_wrong"] == 0
    assert counts(Q, "")["after_wrong"] == 0


def test_probe_runs_on_a_shipped_hard_set(capsys):
    _probe().main([str(ROOT / "data" / "hard" / "test.jsonl"), "--n", "2", "--k", "2", "--threads", "1"])
    row = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert row["problems"] == 2 and row["k"] == 2
    assert 0.0 <= row["sampled_pass1"] <= 1.0 and row["mean_estimate"] >= 0.0
    assert 0.0 < row["mean_solution_bound"] < 1.0
