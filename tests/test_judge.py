"""`soar judge`: the judge prompt, the verdict parser on hand-written replies (malformed ones too), the
summary numbers on fixed replies, and the real CLI end to end on a tiny random model."""

import json
import random
import subprocess
import sys
from pathlib import Path

import pytest

from soar.cli import main
from soar.core.problems import Problem, save_problems
from soar.engine.model import build_char_tokenizer
from soar.engine.sampling import Sample
from soar.jobs.judge import (
    DEFAULT_TEMPLATE,
    ERROR_KINDS,
    JudgeConfig,
    judge_prompt,
    parse_set_spec,
    parse_verdict,
    read_sets,
    run_judge,
    wrap_prompt,
)
from soar.world.arithmetic import make_problem


def test_judge_prompt_fills_both_fields_once():
    assert judge_prompt("Q: {question} A: {answer}", "1 + 1", "2") == "Q: 1 + 1 A: 2"
    # Other braces stay (\boxed{}), and a question that contains "{answer}" is not filled in again.
    assert judge_prompt("{question} -> \\boxed{{answer}}", "x {answer}", "7") == "x {answer} -> \\boxed{7}"
    text = judge_prompt(DEFAULT_TEMPLATE, "What is 2+3?", "5")
    assert "Problem: What is 2+3?\nProposed answer: 5\n" in text
    assert text.endswith("wrong_answer: well-posed but the answer is wrong)")
    assert all(k in text for k in ERROR_KINDS)


def test_wrap_prompt_uses_the_chat_template_only_when_asked():
    tok = build_char_tokenizer()
    assert wrap_prompt("hi", tok, True, "1 Jan 2024") == "User: hi Assistant: "  # no template: plain
    tok.chat_template = "{% for m in messages %}<{{ m.role }}>{{ m.content }}{% endfor %}<assistant>"
    assert wrap_prompt("hi", tok, True, "1 Jan 2024") == "<user>hi<assistant>"
    assert wrap_prompt("hi", tok, False, "1 Jan 2024") == "User: hi Assistant: "


@pytest.mark.parametrize(
    "reply, verdict",
    [
        ("WELL-POSED: yes\nANSWER: correct\nERROR: none", (True, True, "none")),
        ("Let me check. 2+3=5.\nWELL-POSED: yes\nANSWER: wrong\nERROR: wrong_answer", (True, False, "wrong_answer")),
        # markdown, case, spaced kinds, trailing punctuation and words, numbered lines
        (
            "**Well-posed:** no\n**Answer:** wrong\n**Error:** missing information.",
            (False, False, "missing_information"),
        ),
        ("ERROR: None\nwell posed: Yes.\nAnswer: Correct!", (True, True, "none")),
        ("1. WELL_POSED: no\n2. ANSWER: incorrect\n3. ERROR: not a problem", (False, False, "not_a_problem")),
        (
            "WELL-POSED: yes\nANSWER: incorrect, the correct answer is 7\nERROR: wrong_answer",
            (True, False, "wrong_answer"),
        ),
        # a reasoning line with a label but no vocabulary word is not a verdict line
        (
            "Error: the width is never given\nWELL-POSED: no\nANSWER: wrong\nERROR: missing_information",
            (False, False, "missing_information"),
        ),
        (
            "Proposed answer: correct\nWELL-POSED: no\nANSWER: wrong\nERROR: contradictory",
            (False, False, "contradictory"),
        ),
        # unparsable: nothing, garbage, a missing line, the format echoed, two different values, unknown words
        ("", (None, None, None)),
        ("<question>220000000000009", (None, None, None)),
        ("WELL-POSED: yes\nANSWER: correct", (True, True, None)),
        ("WELL-POSED: yes or no\nANSWER: correct or wrong\nERROR: one of none, ambiguous", (None, None, None)),
        ("WELL-POSED: yes/no\nANSWER: correct | wrong\nERROR: none, ambiguous", (None, None, None)),
        ("WELL-POSED: yes\nANSWER: correct\nERROR: none\nWELL-POSED: no", (None, True, "none")),
        ("WELL-POSED: maybe\nANSWER: partly\nERROR: nonexistent", (None, None, None)),
        ("WELL-POSED: nope\nANSWER: correctish\nERROR: nonee", (None, None, None)),
        # contradictory lines: unparsable as a whole, never guessed
        ("WELL-POSED: no\nANSWER: wrong\nERROR: none", (None, None, None)),
        ("WELL-POSED: yes\nANSWER: correct\nERROR: wrong_answer", (None, None, None)),
        ("WELL-POSED: yes\nANSWER: wrong\nERROR: ambiguous", (None, None, None)),
        ("WELL-POSED: no\nANSWER: correct\nERROR: ambiguous", (None, None, None)),
    ],
)
def test_parse_verdict(reply, verdict):
    assert parse_verdict(reply) == verdict


def test_set_specs_and_their_names(tmp_path):
    assert parse_set_spec("pq=runs/teach/pq.jsonl") == ("pq", Path("runs/teach/pq.jsonl"))
    assert parse_set_spec("runs/a=b/x.jsonl")[0] is None  # not a plain name: part of the path
    rng = random.Random(0)
    folder = tmp_path / "questions"
    for name in ("base_t", "grounded_t"):
        save_problems(folder / f"{name}.jsonl", [make_problem("mix", 1, rng) for _ in range(3)])
    save_problems(tmp_path / "pq.jsonl", [make_problem("add", 1, rng) for _ in range(2)])
    sets = read_sets((str(folder), f"mine={tmp_path / 'pq.jsonl'}"), limit=2)
    assert {k: len(v) for k, v in sets.items()} == {"base_t": 2, "grounded_t": 2, "mine": 2}
    with pytest.raises(ValueError, match="two sets named 'base_t'"):
        read_sets((str(folder), str(folder / "base_t.jsonl")))
    with pytest.raises(ValueError, match="must contain \\{answer\\}"):
        JudgeConfig(template="only {question}")


def test_summary_numbers_on_fixed_replies(tiny_dir, tmp_path, monkeypatch):
    rng = random.Random(1)
    right = [make_problem("mix", 1, rng) for _ in range(4)]  # true answers
    wrong = [
        Problem(p.family, p.level, p.question, "00000" if p.answer != "00000" else "00001")
        for p in (make_problem("add", 1, rng) for _ in range(2))
    ]
    off_grammar = Problem("", 0, "what is love", "3")
    save_problems(tmp_path / "a.jsonl", right)
    save_problems(tmp_path / "b.jsonl", [*wrong, off_grammar])
    ok, bad_ans = "WELL-POSED: yes\nANSWER: correct\nERROR: none", "WELL-POSED: yes\nANSWER: wrong\nERROR: wrong_answer"
    replies = {
        right[0].question: ok,  # truly correct: the judge agrees
        right[1].question: bad_ans,  # truly correct: disagrees
        right[2].question: "I think it is fine.",  # unparsable: not compared
        right[3].question: "WELL-POSED: no\nANSWER: wrong\nERROR: ambiguous",  # disagrees
        wrong[0].question: bad_ans,  # truly wrong: agrees
        wrong[1].question: ok,  # disagrees
        off_grammar.question: "WELL-POSED: no\nANSWER: wrong\nERROR: not_a_problem",  # no true answer
    }

    def fake_sample(model, tokenizer, prompts, k=1, **kw):
        return [[Sample(next(r for q, r in replies.items() if f"[{q}]" in p), [], True)] for p in prompts]

    monkeypatch.setattr("soar.engine.sampling.sample", fake_sample)
    cfg = JudgeConfig(
        model=str(tiny_dir),
        questions=(str(tmp_path / "a.jsonl"), str(tmp_path / "b.jsonl")),
        out=str(tmp_path / "out"),
        template="[{question}] {answer}",
        batch_size=3,
        threads=1,
    )
    summary = run_judge(cfg)
    a, b = summary["a"], summary["b"]
    assert (a["n"], a["parsed"], a["unparsable"], a["unparsable_pct"]) == (4, 3, 1, 25.0)
    assert a["well_posed_pct"] == pytest.approx(200 / 3) and a["answer_correct_pct"] == pytest.approx(100 / 3)
    assert a["error_kinds"] == {k: int(k in ("none", "wrong_answer", "ambiguous")) for k in ERROR_KINDS}
    assert a["unparsable_fields"] == {"well_posed": 1, "answer_correct": 1, "error_kind": 1}
    assert a["truth"] == {
        "n": 4,
        "answer_correct_pct": 100.0,
        "compared": 3,
        "judge_agrees_pct": pytest.approx(100 / 3),
    }
    assert (b["n"], b["parsed"], b["well_posed_pct"], b["answer_correct_pct"]) == (
        3,
        3,
        pytest.approx(200 / 3),
        pytest.approx(100 / 3),
    )
    assert b["truth"] == {"n": 2, "answer_correct_pct": 0.0, "compared": 2, "judge_agrees_pct": 50.0}
    out = tmp_path / "out"
    rows = [json.loads(line) for line in (out / "judgments.jsonl").read_text().splitlines()]
    assert [r["set"] for r in rows] == ["a"] * 4 + ["b"] * 3
    assert rows[2]["reply"] == "I think it is fine." and rows[2]["well_posed"] is None
    assert rows[-1]["truth_correct"] is None and rows[-1]["error_kind"] == "not_a_problem"
    assert json.loads((out / "summary.json").read_text())["sets"] == json.loads(json.dumps(summary))
    md = (out / "judge.md").read_text()
    assert "| a | 4 | 25.0 | 66.7 | 33.3 | 1 | 0 | 0 | 1 | 0 | 1 | 100.0 | 33.3 |" in md
    assert "| b | 3 | 0.0 | 66.7 | 33.3 | 1 | 0 | 0 | 0 | 1 | 1 | 0.0 | 50.0 |" in md


def test_bad_input_is_one_line_and_exit_2(tmp_path, capsys):
    bad = tmp_path / "q.jsonl"
    bad.write_text('{"question": "1+2", "answer": "3"}\n{oops\n')
    assert main(["judge", "--set", f"questions={bad}"]) == 2
    assert "soar judge: " in (err := capsys.readouterr().err) and "q.jsonl:2:2: invalid JSON" in err
    assert main(["judge", "--set", f"questions={tmp_path / 'none.jsonl'}"]) == 2
    assert "none.jsonl: file not found" in capsys.readouterr().err
    assert main(["judge", "--set", "template=no fields"]) == 2
    assert "config error" in (err := capsys.readouterr().err) and "{question} and {answer}" in err
    assert "Traceback" not in err


def test_soar_judge_end_to_end(tiny_dir, tmp_path):
    rng = random.Random(2)
    folder = tmp_path / "questions"
    save_problems(folder / "base_t.jsonl", [make_problem("mix", 1, rng) for _ in range(3)])
    save_problems(folder / "grounded_t.jsonl", [make_problem("add", 2, rng) for _ in range(2)])
    save_problems(tmp_path / "run" / "pq.jsonl", [make_problem("sub", 1, rng) for _ in range(4)])
    out = tmp_path / "out"
    args = [f"model={tiny_dir}", f"questions={folder},pq={tmp_path / 'run' / 'pq.jsonl'}", f"out={out}"]
    args += ["limit=3", "max_new_tokens=8", "batch_size=2", "threads=1"]
    cmd = [sys.executable, "-m", "soar.cli", "judge", *(x for a in args for x in ("--set", a))]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    rows = [json.loads(line) for line in (out / "judgments.jsonl").read_text().splitlines()]
    sets = json.loads((out / "summary.json").read_text())["sets"]
    assert {k: s["n"] for k, s in sets.items()} == {"base_t": 3, "grounded_t": 2, "pq": 3}  # limit=3
    assert len(rows) == 8 and all(
        set(r) >= {"question", "answer", "reply", "well_posed", "truth_correct"} for r in rows
    )
    for name, s in sets.items():
        mine = [r for r in rows if r["set"] == name]
        assert s["parsed"] + s["unparsable"] == s["n"] == len(mine)
        assert sum(s["error_kinds"].values()) == s["parsed"]
        assert s["truth"]["n"] == s["n"] and s["truth"]["answer_correct_pct"] == 100.0  # generated: true answers
        assert f"| {name} | {s['n']} |" in (out / "judge.md").read_text()
