"""The arithmetic world: grammar, exact solving, look-ahead, generator levels, the careless solver."""

import random

import pytest

from soar.world.arithmetic import (
    FAMILIES,
    LEVELS,
    buggy_op,
    classify,
    format_question,
    is_equal,
    lookahead,
    make_problem,
    noisy_answer,
    parse_int,
    parse_question,
    solve,
    step_runs,
    worked_solution,
)


@pytest.mark.parametrize(
    "q,expected",
    [
        ("12345 a+23456", 35801),
        ("50000 a-12345 b+100", 37755),
        ("1234 a*7", 8638),
        (" 12 a+3 ", 15),
        ("1 a+2 b*3", None),  # * only as the single operation: no precedence ambiguity
        ("1 b+2", None),  # labels must run a, b, c, ...
        ("1 a+2 a+3", None),
        ("1+2", None),  # unlabelled
        ("12", None),
        ("__import__('os')", None),
        ("1e5 a+1", None),
        ("", None),
        ("9" * 7 + " a+1", None),  # operands longer than 6 digits are outside the grammar
    ],
)
def test_solve(q, expected):
    assert solve(q) == expected


def test_parse_question():
    assert parse_question("12345 a+23456 b-111") == (12345, [("+", 23456), ("-", 111)])
    assert format_question(12345, [("+", 23456), ("-", 111)]) == "12345 a+23456 b-111"


@pytest.mark.parametrize(
    "a,op,b,run",
    [
        (12345, "+", 87654, 4),  # every lower column sums to 9
        (10000, "+", 10000, 0),
        (12340, "+", 10060, 0),  # columns 0+0, 4+6, 3+0, 2+0: none sums to exactly 9
        (55555, "-", 11155, 2),  # units and tens equal
        (54321, "-", 12345, 1),  # only the hundreds column (3, 3) is equal
        (54321, "-", 13579, 0),
    ],
)
def test_lookahead(a, op, b, run):
    assert lookahead(a, op, b) == run


def test_lookahead_by_hand_mixed():
    # columns (units first): 1+8=9, 9+0=9, 2+3=5, 4+4=8 -> a run of 2 at the bottom
    assert lookahead(24291, "+", 14308) == 2


@pytest.mark.parametrize("family", FAMILIES)
def test_generator_hits_every_level_and_is_exact(family):
    rng = random.Random(0)
    for level in LEVELS[family]:
        for _ in range(20):
            p = make_problem(family, level, rng)
            assert (p.family, p.level) == (family, level)
            assert int(p.answer) == solve(p.question)
            assert classify(p.question) == (family, level)
            nums = [p.question.split(" a*")[0]] if family == "mul" else None
            if family != "mul":
                values = [parse_question(p.question)[0]]
                for op, b in parse_question(p.question)[1]:
                    assert 10000 <= b <= 99999
                    values.append(values[-1] + b if op == "+" else values[-1] - b)
                assert all(10000 <= v <= 99999 for v in values)  # every value stays 5 digits
            else:
                assert len(nums[0]) == level


def test_generator_is_seeded():
    a = [make_problem("chain", 5, random.Random(7), min_run=2).question for _ in range(3)]
    b = [make_problem("chain", 5, random.Random(7), min_run=2).question for _ in range(3)]
    assert a == b


def test_min_run_chains():
    rng = random.Random(1)
    for _ in range(20):
        p = make_problem("chain", 4, rng, min_run=2)
        assert all(r >= 2 for r in step_runs(p.question))


def test_unknown_family_and_level():
    with pytest.raises(ValueError, match="valid: add, sub, mul, chain"):
        make_problem("div", 1, random.Random(0))
    with pytest.raises(ValueError, match="not valid for add"):
        make_problem("add", 9, random.Random(0))


def test_worked_solution_format():
    assert worked_solution("12345 a+23456 b-11111") == "12345 a+23456=35801 b-11111=24690 \\boxed{24690}"
    assert worked_solution("garbage") is None


def test_buggy_op_slips_only_on_propagated_carries():
    assert buggy_op(12345, "+", 23411) == 35756  # no 9-run: the slip changes nothing
    assert buggy_op(12345, "+", 23456) == 35701  # tens 4+5=9 passes the units carry on: lost
    assert buggy_op(12345, "+", 87655) == 99900  # true 100000: the carry through the 9s is lost
    assert buggy_op(50000, "-", 10001) == 40099  # true 39999: the borrow through equal digits is lost
    rng = random.Random(0)
    assert noisy_answer("12345 a+87655", rng, 0.0) == 100000
    assert noisy_answer("12345 a+87655", rng, 1.0) == 99900


@pytest.mark.parametrize(
    "gold,pred,ok",
    [("35801", "35801", True), ("35801", " 35,801 ", True), ("35801", "+35801", True), ("-5", "-5", True),
     ("35801", "35800", False), ("35801", "3.5801e4", False), ("35801", None, False), ("35801", "", False),
     ("35801", "x" * 10_000, False)],
)
def test_is_equal(gold, pred, ok):
    assert is_equal(gold, pred) is ok


def test_parse_int_never_raises():
    for junk in ["", "--1", "1-", "١٢", "0x10", "1" * 13, "nan", "{}"]:
        assert parse_int(junk) is None
