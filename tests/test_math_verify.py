"""math-verify answer checking: a table of equivalent, non-equivalent, malformed and pathological answers,
the hard timeout, the shaped reward on math text, and the math world's prompts."""

import subprocess
import sys
import threading
import time

import math_verify  # noqa: F401,E402  (a dev dependency: a missing install fails here, never skips)
import pytest

from soar.method.teacher import valid_pair
from soar.world import WORLDS, make_world
from soar.world.base import PromptSettings
from soar.world.formats import parse_teacher_output
from soar.world.math import MATH, chat_prompt
from soar.world.verifiers import _WORKER, RewardShaping, extract_boxed, math_equal, math_equal_or_none, shaped_reward

EQUIVALENT = [
    ("42", "42"),
    ("42", "42.0"),
    ("-3", "-3"),
    ("\\frac{1}{2}", "0.5"),
    ("\\frac{1}{2}", "1/2"),
    ("\\frac12", "\\dfrac{1}{2}"),
    ("\\frac{\\sqrt{2}}{2}", "\\frac{1}{\\sqrt{2}}"),
    ("2\\pi", "2 \\pi"),
    ("\\pi/2", "\\frac{\\pi}{2}"),
    ("x^2+2x+1", "(x+1)^2"),
    ("(1, 2)", "(1,2)"),
    ("\\{1, 2, 3\\}", "\\{3, 2, 1\\}"),
    ("3\\sqrt{3}", "\\sqrt{27}"),
    ("x = 5", "5"),
    ("10\\%", "10"),
    ("1000", "1,000"),
]

NOT_EQUIVALENT = [
    ("42", "43"),
    ("\\frac{1}{2}", "\\frac{1}{3}"),
    ("2\\pi", "2"),
    ("x^2+1", "(x+1)^2"),
    ("(1, 2)", "(2, 1)"),
    ("\\sqrt{2}", "1.41"),
    ("5", "-5"),
]

MALFORMED = ["", "   ", "\\frac{1}{", "}}{{", "\\boxed{", "$$", "\\left(", "???", "\\sqrt"]


@pytest.mark.parametrize("gold,pred", EQUIVALENT)
def test_equivalent_answers_are_equal(gold, pred):
    assert math_equal(gold, pred) is True


@pytest.mark.parametrize("gold,pred", NOT_EQUIVALENT)
def test_different_answers_are_not_equal(gold, pred):
    assert math_equal(gold, pred) is False


@pytest.mark.parametrize("pred", MALFORMED)
def test_malformed_answers_are_not_equal_and_do_not_raise(pred):
    assert math_equal("42", pred) is False
    assert math_equal(pred, "42") is False


def test_pathological_answer_returns_quickly():
    """A power tower that sympy would try to evaluate: math-verify's own alarm or the hard timeout ends it."""
    t0 = time.time()
    assert math_equal_or_none("9^{9^{9^{9}}}", "10^{10^{10^{10}}}", 1, 8.0) in (False, None)
    assert time.time() - t0 < 12


def test_hard_timeout_kills_a_stuck_worker_and_the_next_check_works():
    t0 = time.time()
    assert _WORKER.call("sleep", (60,), timeout=1.0) is None  # a call that would hang: killed
    assert time.time() - t0 < 5
    assert math_equal("\\frac{3}{4}", "0.75") is True  # a fresh worker answers


def test_extract_then_check_a_nested_box():
    text = "so the answer is \\boxed{\\frac{\\sqrt{3}}{2}} and not \\boxed{\\frac{1}{\\sqrt{2}}"  # last unclosed
    assert extract_boxed(text) == "\\frac{\\sqrt{3}}{2}"
    assert math_equal("\\frac{\\sqrt3}{2}", extract_boxed(text)) is True


def test_shaped_reward_with_math_equal():
    S = RewardShaping()
    assert shaped_reward("... \\boxed{0.5}", "\\frac{1}{2}", MATH.is_equal) == S.correct
    assert shaped_reward("... \\boxed{x = 12}", "12", MATH.is_equal) == S.correct
    assert shaped_reward("... \\boxed{12 or 13}", "12", MATH.is_equal) in (S.correct, S.contains)
    assert shaped_reward("... \\boxed{7}", "12", MATH.is_equal) == S.boxed
    assert shaped_reward("the answer is 12", "12", MATH.is_equal) == S.no_box


def test_teacher_pairs_need_an_answer_math_verify_parses():
    good = "<question>What is 1/2 + 1/4?</question> easy <answer>\\boxed{\\frac{3}{4}}</answer>"
    assert valid_pair(MATH, good).answer == "\\frac{3}{4}"
    bad = "<question>What?</question><answer>\\boxed{???}</answer>"
    assert parse_teacher_output(bad) is not None and valid_pair(MATH, bad) is None


def test_math_world_prompts_plain_and_chat(tiny):
    _, tok = tiny
    plain = MATH.student_prompt("What is 2+2?")
    assert plain.startswith("User: What is 2+2?") and "\\boxed{}" in plain and plain.endswith("Assistant: ")
    assert "<question>" in MATH.teacher_prompt and "Number Theory" in MATH.teacher_prompt
    assert make_world("math", tok).student_prompt("q") == MATH.student_prompt("q")  # no template: plain
    tok.chat_template = "{% for m in messages %}<|{{ m.role }}|>{{ m.content }}{% endfor %}<|assistant|>"
    w = make_world("math", tok)
    assert w.student_prompt("q").startswith("<|user|>q\n") and w.student_prompt("q").endswith("<|assistant|>")
    assert chat_prompt(tok, "hi") == "<|user|>hi<|assistant|>"
    assert make_world("arithmetic", tok).student_prompt("1 +2") == "User: 1 +2 Assistant: "  # unchanged


LLAMA3_DATE = (  # the date logic of Llama 3.x chat templates: today's date unless date_string is given
    "{%- if not date_string is defined %}{%- if strftime_now is defined %}"
    '{%- set date_string = strftime_now("%d %b %Y") %}'
    '{%- else %}{%- set date_string = "26 Jul 2024" %}{%- endif %}{%- endif %}'
    "<|system|>Today Date: {{ date_string }}{% for m in messages %}<|{{ m.role }}|>{{ m.content }}{% endfor %}"
    "<|assistant|>"
)


def test_chat_prompts_are_the_same_on_every_date(tiny, monkeypatch):
    """A template that prints today's date gets the fixed date_string: two runs on different days build
    byte-identical prompts; the paper's plain prompts are one setting away."""
    import datetime as dt

    import transformers.utils.chat_template_utils as ctu

    _, tok = tiny
    tok.chat_template = LLAMA3_DATE
    prompts = []
    for day in (dt.datetime(2026, 12, 1), dt.datetime(2027, 3, 15)):

        class Frozen(dt.datetime):
            @classmethod
            def now(cls, tz=None, day=day):
                return day

        monkeypatch.setattr(ctu, "datetime", Frozen)
        raw = tok.apply_chat_template([{"role": "user", "content": "x"}], tokenize=False)
        assert day.strftime("%d %b %Y") in raw  # the template alone follows the clock
        w = make_world("math", tok)
        prompts.append((w.student_prompt("q"), w.teacher_prompt))
    assert prompts[0] == prompts[1]
    assert "Today Date: 26 Jul 2024" in prompts[0][0]
    fixed = make_world("math", tok, PromptSettings(date_string="01 Jan 2025")).student_prompt("q")
    assert "Today Date: 01 Jan 2025" in fixed
    assert make_world("math", tok, PromptSettings(chat_template=False)).student_prompt("q") == MATH.student_prompt("q")


def test_unknown_world_lists_the_valid_ones():
    with pytest.raises(ValueError, match="valid worlds: arithmetic, math"):
        make_world("chess")
    assert WORLDS == ("arithmetic", "math")


SCRIPT = "from soar.world.verifiers import math_equal\nprint(math_equal('\\\\frac{1}{2}', '0.5'))\n"
"""the issue's two-line script: a top-level call, no `if __name__ == "__main__":` guard"""


def test_math_equal_works_from_a_plain_script_and_from_standard_input(tmp_path):
    script = tmp_path / "check.py"
    script.write_text(SCRIPT)
    for args, stdin in (([str(script)], None), (["-"], SCRIPT)):
        r = subprocess.run([sys.executable, *args], input=stdin, capture_output=True, text=True, timeout=120)
        assert r.returncode == 0 and r.stdout.strip() == "True", r.stderr[-2000:]


def test_math_equal_works_from_threads():
    results = []
    threads = [threading.Thread(target=lambda: results.append(math_equal("2x+1", "1+2x"))) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert results == [True, True, True]


def test_a_checker_that_cannot_start_is_unscorable_not_an_error(monkeypatch):
    from soar.world import verifiers

    monkeypatch.setattr(verifiers.sys, "executable", "/nonexistent/python")
    assert verifiers._Worker().call("verify", ("x", "x", 1), 5.0, startup_timeout=5.0) is None
