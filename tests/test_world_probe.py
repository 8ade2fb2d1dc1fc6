"""research/world_probe.py: its pure helpers by hand (care, the kind of a wrong answer)."""

import importlib.util
from pathlib import Path

import pytest

Q = "61044 +34966 -28188 +10000 -12345 +00001"  # true chain 61044 =96010 =67822 =77822 =65477 =65478


def _probe():
    path = Path(__file__).resolve().parent.parent / "research" / "world_probe.py"
    spec = importlib.util.spec_from_file_location("world_probe", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_care_outcome_conditions_on_the_value_before_the_step():
    care = _probe().care_outcome
    right = "61044 =96010 =67822 =77822 =65477 =65478 \\boxed{65478}"
    assert care(Q, right, 0) is True and care(Q, right, 2) is True
    assert care(Q, "61044 =96010 =67823 =77822", 2) is None  # the value before step 2 is wrong
    assert care(Q, "61044 =96010 =67822 =77823", 2) is False
    assert care(Q, "61044 =96010 =67822", 2) is False  # stopped before writing step 2
    assert care(Q, "61045 =96010", 0) is None  # the start value itself is miswritten
    assert care(Q, "61044 =96011", 0) is False


def test_slip_kind_tells_a_designed_slip_from_other_errors():
    probe = _probe()
    import random

    from soar.world.arithmetic import diverse_slip_op, make_problem, parse_question, values

    rng = random.Random(0)
    p = make_problem("mix", 1, rng, min_run=2, max_run=2)
    i = probe.hard_index(p.meta["runs"])
    v, (_, ops) = values(p.question), parse_question(p.question)
    op, b = ops[i]
    slipped = diverse_slip_op(v[i], op, b, 4)
    answer = (int(p.answer) + slipped - v[i + 1]) % 10**5  # the slip carried to the end
    assert probe.slip_kind(p.question, answer, i) == "designed"
    assert probe.slip_kind(p.question, (int(p.answer) - (slipped - v[i + 1])) % 10**5, i) == "other"  # sign
    assert probe.slip_kind(p.question, (int(p.answer) + 10**4) % 10**5, i) == "other"
    with pytest.raises(ValueError):
        probe.hard_index([0, 2, 3, 0, 1])


def test_first_error_says_where_and_how_a_chain_first_goes_wrong():
    probe = _probe()
    import random

    from soar.world.arithmetic import _longest_run, diverse_slip_op, fmt, make_problem, parse_question, values

    p = make_problem("mix", 1, random.Random(3), min_run=2, max_run=2)
    i = probe.hard_index(p.meta["runs"])
    v, (_, ops) = values(p.question), parse_question(p.question)
    _, start = _longest_run(v[i], *ops[i])

    def chain(j, value):  # the true chain up to step j, whose value is replaced
        return " =".join([fmt(v[0])] + [fmt(x) for x in v[1 : j + 1]] + [fmt(value % 10**5)])

    assert probe.first_error(p.question, chain(len(v) - 2, v[-1]), i) is None  # every value right
    slipped = diverse_slip_op(v[i], *ops[i], 3)
    assert probe.first_error(p.question, chain(i, slipped), i) == ("hard", "designed")
    top = v[i + 1] + 10 ** (start + 2)  # an extra carry two columns above the run's bottom
    assert probe.first_error(p.question, chain(i, top), i) == ("hard", f"+10^(start+{2})")
    assert probe.first_error(p.question, chain(i, v[i + 1] - 10 ** (start + 1)), i) == ("hard", "-10^(start+1)")
    assert probe.first_error(p.question, chain(i, v[i + 1] + 37), i) == ("hard", "other")
    if i > 0:
        assert probe.first_error(p.question, chain(0, v[1] + 10**4), i) == ("before", f"+10^(start+{4 - start})")
    assert probe.first_error(p.question, chain(i + 1, v[i + 2] + 1), i)[0] == "after"
    assert probe.first_error("not a question", "61044", 0) is None


def test_ratio_interval_resamples_stones():
    interval = _probe().ratio_interval
    assert interval([(2, 4)] * 10) == (2.0, 2.0)  # every stone alike: no spread
    lo, hi = interval([(1, 1), (1, 5), (2, 2), (1, 3)] * 5)  # point estimate 11 / 5 = 2.2
    assert lo < 2.2 < hi and lo >= 1.0 and hi <= 5.0
    assert interval([(0, 3), (0, 1)]) is None  # never reproduced: no ratio
    assert interval([(1, 3), (0, 1)], draws=200) is None  # a resample without reproductions


def test_world_probe_and_probe_sets_run_end_to_end_on_a_tiny_model(tiny_dir, tmp_path):
    import json

    probe = _probe()
    r = probe.main(
        ["--model", str(tiny_dir), "--stones", "3", "--k-students", "2", "--care-n", "2", "--care-k", "2"]
        + ["--l5-n", "2", "--l5-k", "2", "--out", str(tmp_path / "p.json")]
    )
    assert json.loads((tmp_path / "p.json").read_text())["teacher"]["stones"] == 3 == r["teacher"]["stones"]
    assert set(r["care"]) == {"L2", "L3", "L4"} and r["level5"]["problems"] == 2

    path = Path(__file__).resolve().parent.parent / "research" / "probe_sets.py"
    spec = importlib.util.spec_from_file_location("probe_sets", path)
    sets = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(sets)
    out = sets.main(["--model", str(tiny_dir), "--out-dir", str(tmp_path / "sets"), "--n", "3"])
    assert set(out["sets"]) == {"good", "good_true", "unanswerable", "mul"}
    from soar.core.problems import load_problems

    assert len(load_problems(tmp_path / "sets" / "good.jsonl")) == 3


def test_with_right_picks_the_first_right_and_wrong_answers_in_pool_order():
    path = Path(__file__).resolve().parent.parent / "research" / "probe_sets.py"
    spec = importlib.util.spec_from_file_location("probe_sets", path)
    sets = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(sets)
    right = [False, True, False, True, True, False]
    assert sets.with_right(right, 4, 2) == [0, 1, 2, 3]  # right 1 and 3, wrong 0 and 2
    assert sets.with_right(right, 3, 3) == [1, 3, 4]
    with pytest.raises(ValueError, match="holds 3 right answers"):
        sets.with_right(right, 4, 4)


def test_probe_sets_answer_in_the_answer_key_prompt(tmp_path):
    """--answer-prompt key: the same questions, answered as the loop's teacher with answer_prompt=key would."""
    from soar.core.problems import load_problems
    from soar.engine.evaluate import own_answers
    from soar.engine.model import DEFAULT_MODEL, load_policy
    from soar.world import ARITHMETIC

    path = Path(__file__).resolve().parent.parent / "research" / "probe_sets.py"
    spec = importlib.util.spec_from_file_location("probe_sets", path)
    sets = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(sets)
    for prompt in ("student", "key"):
        out = str(tmp_path / prompt)
        sets.main(["--model", str(DEFAULT_MODEL), "--out-dir", out, "--n", "6", "--answer-prompt", prompt])
    student, key = (load_problems(tmp_path / d / "good.jsonl") for d in ("student", "key"))
    assert [p.question for p in student] == [p.question for p in key]
    model, tok = load_policy(DEFAULT_MODEL)
    want = own_answers(model, tok, ARITHMETIC, key, 50, 64, prompt_of=ARITHMETIC.answer_prompt("key"))
    assert [p.answer for p in key] == [p.answer for p in want]
    assert all(ARITHMETIC.answer_parses(p.answer) for p in key)  # the shipped model boxes there too


def test_hard_step_slip_classifies_a_wrong_hard_step_value():
    probe = _probe()
    import random

    from soar.world.arithmetic import diverse_slip_op, fmt, make_problem, parse_question, values

    p = make_problem("mix", 1, random.Random(5), min_run=3, max_run=3)
    i = probe.hard_index(p.meta["runs"])
    v, (_, ops) = values(p.question), parse_question(p.question)

    def upto(value):  # the true chain before step i, then `value` at step i
        return " =".join([fmt(x) for x in v[: i + 1]] + [fmt(value % 10**5)])

    assert probe.hard_step_slip(p.question, upto(v[i + 1]), i) is None  # right
    assert probe.hard_step_slip(p.question, upto(diverse_slip_op(v[i], *ops[i], 7)), i) == "designed"
    assert probe.hard_step_slip(p.question, upto(v[i + 1] + 37), i) == "other"
    assert probe.hard_step_slip(p.question, " =".join(fmt(x) for x in v[: i + 1]), i) is None  # not written


def test_estimate_summary_gives_the_mean_and_median_log10():
    assert _probe().estimate_summary([1e-2, 1e-4, 0.0]) == (0.00337, -4.0)
