"""research/answer_drift.py and research/answer_variants.py: what a teacher's updates changed, and the same
questions with other answers."""

import json
import random

import pytest
from conftest import load_probe

from soar.world.arithmetic import (
    buggy_op,
    extra_carry_op,
    fmt,
    make_problem,
    parse_question,
    question_kind,
    signed_error,
    solve,
    values,
)


def _drift():
    return load_probe("answer_drift")


def _variants():
    return load_probe("answer_variants")


def _stone():
    """A look-ahead-2 stone whose first step is the hard one (so a careless first step changes the answer)."""
    rng = random.Random(1)
    for _ in range(200):
        p = make_problem("add", 1, rng, min_run=2, max_run=2)
        v, (_, ops) = values(p.question), parse_question(p.question)
        if question_kind(p.question) == "stone L2" and buggy_op(v[0], *ops[0]) != v[1]:
            return p.question
    raise AssertionError("no stone drawn")


def test_answer_class_of_right_careless_one_column_and_other_answers():
    q = _stone()
    v, (_, ops) = values(q), parse_question(q)
    assert _drift().answer_class(q, fmt(v[-1])) == "right"
    y = extra_carry_op(v[0], *ops[0])
    for op, b in ops[1:]:
        y = (y + b if op == "+" else y - b) % 10**5
    assert _drift().answer_class(q, fmt(y)) == "one careless step"
    hundreds = (v[-1] // 100) % 10
    off = v[-1] + ((hundreds + 5) % 10 - hundreds) * 100
    assert _drift().answer_class(q, fmt(off)) == "one column off"
    assert _drift().answer_class(q, fmt((v[-1] + 12345) % 10**5)) == "other"
    assert _drift().answer_class(q, "?") == "unparsed"
    assert _drift().answer_class(q, "1234567") == "other"  # out of range: no column to compare


def test_spans_cut_a_teacher_run_by_outer_step_and_count_kinds(tmp_path):
    rng = random.Random(0)
    easy = [make_problem("add", 0, rng) for _ in range(8)]
    rows = [{"step": s, "dataset": 0, "question": p.question, "answer": p.answer if s < 2 else "?"}
            for s, p in zip([0, 0, 1, 1, 2, 2, 3, 3], easy, strict=True)]  # fmt: skip
    run = tmp_path / "soar"
    run.mkdir()
    (run / "questions.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    r = _drift().main([str(run), "--windows", "2"])[str(run)]
    assert list(r) == ["steps 0-1", "steps 2-3"]
    assert r["steps 0-1"]["easy"] == {"share": 1.0, "n": 4, "answers": {"right": 1.0}, "wrong_below": None}
    assert r["steps 2-3"]["easy"]["answers"] == {"unparsed": 1.0}
    rows[0]["answer"] = fmt((solve(rows[0]["question"]) - 20) % 10**5)  # one wrong answer, 20 below the truth
    rows[1]["answer"] = fmt((solve(rows[1]["question"]) + 3) % 10**5)  # and one 3 above
    rows[2]["answer"] = fmt((solve(rows[2]["question"]) - 1) % 10**5)
    (run / "questions.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    early = _drift().main([str(run), "--windows", "2"])[str(run)]["steps 0-1"]["easy"]
    assert early["wrong_below"] == 0.667 and early["answers"]["right"] == 0.25
    by_step = _drift().per_step(rows)
    assert [(s["step"], s["right"], s["below"]) for s in by_step] == [
        (0, 0.0, 0.5),
        (1, 0.5, 1.0),
        (2, 0.0, None),
        (3, 0.0, None),
    ]
    png = tmp_path / "drift.png"
    _drift().main([str(run), "--plot", str(png)])
    assert png.stat().st_size > 0
    flat = tmp_path / "set.jsonl"
    flat.write_text("".join(json.dumps({"question": p.question, "answer": p.answer}) + "\n" for p in easy))
    assert list(_drift().main([str(flat)])[str(flat)]) == ["all"]
    with pytest.raises(SystemExit, match="not a question file"):
        _drift().main([str(tmp_path / "nothing")])
    with pytest.raises(SystemExit, match="needs at least one teacher run"):
        _drift().main([str(flat), "--plot", str(tmp_path / "x.png")])
    with pytest.raises(SystemExit, match="at least 1"):
        _drift().main([str(flat), "--windows", "0"])


def test_signed_error_and_the_mirrored_and_true_variants(tmp_path):
    v = _variants()
    assert signed_error(105, 100) == 5 and signed_error(95, 100) == -5
    assert signed_error(2, 99_999) == 3  # across the modulus: 3 above
    q = _stone()
    t = solve(q)
    above = fmt((t + 30) % 10**5)
    mirrored = v.variant_answer(q, above, "mirrored")
    assert signed_error(int(mirrored), t) == -30
    assert v.variant_answer(q, fmt(t), "mirrored") == fmt(t)
    assert v.variant_answer(q, "?", "mirrored") == "?"
    assert v.variant_answer(q, above, "true") == fmt(t)
    assert signed_error(int(v.variant_answer(q, "?", "below", 2)), t) == -100
    assert signed_error(int(v.variant_answer(q, "?", "above", 0)), t) == 1
    with pytest.raises(ValueError, match="mirrored"):
        v.variant_answer(q, above, "flipped")
    src = tmp_path / "set.jsonl"
    src.write_text(json.dumps({"family": "add", "level": 1, "question": q, "answer": above}) + "\n")
    out = tmp_path / "out.jsonl"
    r = v.main([str(src), "--variant", "mirrored", "--out", str(out)])
    assert r["changed"] == 1 and json.loads(out.read_text())["answer"] == mirrored
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"question": "1"}\n')
    with pytest.raises(SystemExit, match="bad.jsonl"):
        v.main([str(bad), "--variant", "true", "--out", str(out)])
    with pytest.raises(SystemExit, match="needs a question and an answer"):
        _drift().main([str(bad)])
    bad.write_text('{"question": "1", "answer": "2"}\nnot json\n{"question": "1", "answer": "2"}\n')
    with pytest.raises(SystemExit, match="bad.jsonl"):
        _drift().main([str(bad)])
    with pytest.raises(SystemExit, match="no such question file"):
        v.main([str(tmp_path / "none.jsonl"), "--variant", "true", "--out", str(out)])
