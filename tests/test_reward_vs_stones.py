"""research/reward_vs_stones.py: per-dataset stone counts of a teacher run, and R's correlation with them."""

import json
import random

import pytest
from conftest import load_probe

from soar.world.arithmetic import make_problem, question_kind


def _probe():
    return load_probe("reward_vs_stones")


def _rows(tmp_path):
    """Three datasets of 4 questions: 0, 1 and 2 right look-ahead-2 stones (the rest easy), with R rising."""
    rng = random.Random(0)
    stones = [make_problem("mix", 1, rng, min_run=2, max_run=2) for _ in range(6)]
    easy = [make_problem("add", 0, rng) for _ in range(12)]
    assert {question_kind(p.question) for p in stones} == {"stone L2"}
    assert {question_kind(p.question) for p in easy} == {"easy"}
    rows = []
    for d, right in enumerate([0, 1, 2]):
        qs = stones[2 * d : 2 * d + 2] + easy[4 * d : 4 * d + 2]
        for i, p in enumerate(qs):
            correct = i < right if i < 2 else True
            rows.append({"step": 0, "dataset": d, "index": i, "question": p.question, "answer": p.answer,
                         "reward": 0.01 * right, "answer_correct": correct})  # fmt: skip
    run = tmp_path / "soar"
    run.mkdir()
    (run / "questions.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return run


def test_counts_stones_and_their_right_answers_per_dataset(tmp_path):
    run = _rows(tmp_path)
    r = _probe().main([str(run)])[str(run)]
    assert r["datasets"] == 3 and r["mean_kind"] == 2 and r["mean_kind_right"] == 1
    assert r["corr_R_kind"] is None  # every dataset holds two stones: no spread to correlate with
    assert r["corr_R_kind_right"] == pytest.approx(1.0)
    assert [(s["dataset"], s["kind_right"]) for s in r["top"]] == [(2, 2), (1, 1), (0, 0)]


def test_another_kind_and_a_folder_without_questions(tmp_path):
    run = _rows(tmp_path)
    r = _probe().main([str(run), "--kind", "easy"])[str(run)]
    assert r["mean_kind"] == 2 and r["mean_kind_right"] == 2
    with pytest.raises(SystemExit, match="no questions.jsonl"):
        _probe().main([str(tmp_path)])
