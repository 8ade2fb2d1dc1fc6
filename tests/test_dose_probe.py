"""research/dose_probe.py at tiny sizes: the main job's PQ student on a question file, scored where it claims."""

import json
import random
from dataclasses import replace

import pytest
from conftest import load_probe

from soar.core.problems import save_problems
from soar.world.arithmetic import make_problem

TINY = ["--test-limit", "2", "--config-set", "student.rloo.steps=2", "--config-set", "student.rloo.batch_size=4",
        "--config-set", "student.rloo.group_size=2", "--config-set", "eval.n=2", "--config-set", "eval.ks=[1,2]",
        "--config-set", "student.mixed_questions=2"]  # fmt: skip


def _probe():
    return load_probe("dose_probe")


@pytest.fixture
def questions(tmp_path):
    """Four look-ahead-2 stones, the first two with their true answers, the last two off by one."""
    rng = random.Random(5)
    stones = [make_problem("mix", 1, rng, min_run=2, max_run=2) for _ in range(4)]
    stones[2:] = [replace(p, answer=str(int(p.answer) + 1)) for p in stones[2:]]
    path = tmp_path / "set.jsonl"
    save_problems(path, stones)
    return path


def test_a_fixed_share_student_reports_its_set_and_its_hard_rows(questions, tmp_path):
    out = tmp_path / "dose.json"
    r = _probe().main(["--set", f"s={questions}", "--seeds", "0,1", *TINY, "--out", str(out)])  # fmt: skip
    rows = r["sets"]["s"]
    assert [row["seed"] for row in rows] == [0, 1]
    for row in rows:
        assert row["questions"] == 4 and row["right"] == 2
        assert 0 <= row["pass@1"] <= row["pass@2"] <= 1
        assert 0 <= row["hard_success_steps"] <= 2  # the hard rows of 2 training steps
        assert 0 <= row["set_reward_last25"] <= 1
    assert json.loads(out.read_text()) == r and r["test"] == 2


def test_pooled_mixed_mode_has_no_hard_rows_to_count(questions):
    r = _probe().main(["--set", f"s={questions}", *TINY, "--config-set", "student.mixed_questions=0"])
    row = r["sets"]["s"][0]
    assert row["first_hard_success"] is None and row["hard_success_steps"] is None
    assert row["set_reward_last25"] is None


def test_table_prints_one_row_per_set_and_seed(questions, tmp_path, capsys):
    out = tmp_path / "dose.json"
    _probe().main(["--set", f"s={questions}", "--seeds", "3", *TINY, "--out", str(out)])
    capsys.readouterr()
    _probe().main(["--table", str(out)])
    rows = [line for line in capsys.readouterr().out.splitlines() if line.startswith("| s ")]
    assert [row.split(" | ")[1:4] for row in rows] == [["3", "4", "2"]]  # seed, questions, right


def test_bad_input_is_one_line_not_a_traceback(tmp_path):
    with pytest.raises(SystemExit, match="expected name=path"):
        _probe().main(["--set", "nofile"])
    with pytest.raises(SystemExit, match="no such file"):
        _probe().main(["--set", f"s={tmp_path / 'missing.jsonl'}"])
    with pytest.raises(SystemExit, match="at least one --set"):
        _probe().main([])
    (tmp_path / "q.jsonl").write_text("{}\n")
    with pytest.raises(SystemExit, match="unknown"):
        _probe().main(["--set", f"s={tmp_path / 'q.jsonl'}", "--config-set", "student.nope=1"])
