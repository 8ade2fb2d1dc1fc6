"""The arithmetic world: grammar, exact solving, look-ahead, generator levels, the careless solver."""

import random

import pytest

from soar.world.arithmetic import (
    FAMILIES,
    LEVELS,
    STEPS,
    apply_op,
    buggy_op,
    classify,
    extra_carry_op,
    format_question,
    is_equal,
    lookahead,
    make_problem,
    noisy_answer,
    noisy_values,
    parse_int,
    parse_question,
    solve,
    step_runs,
    values,
    worked_solution,
)

Q = "61044 +34966 -28188 +10000 -12345 +00001"


def test_solve_by_hand():
    # 61044+34966 = 96010; -28188 = 67822; +10000 = 77822; -12345 = 65477; +1 = 65478
    assert solve(Q) == 65478
    assert solve("99999 +00001 +00000 +00000 +00000 +00000") == 0  # modulo 10^5
    assert solve("00003 -00005 +00000 +00000 +00000 +00000") == 99998
    assert solve("12345 *00009 *00001 *00001 *00001 *00001") == 11105  # 111105 mod 10^5


@pytest.mark.parametrize(
    "q",
    [
        "61044 +34966",  # too few operations
        Q + " +00001",  # too many
        "6104 +34966 -28188 +10000 -12345 +00001",  # a 4-digit number
        "61044 +34966 -28188 +10000 -12345 /00001",
        "61044 + 34966 -28188 +10000 -12345 +00001",
        "__import__('os').system('ls')",
        "",
        "١٢٣٤٥ +34966 -28188 +10000 -12345 +00001",  # non-ASCII digits
    ],
)
def test_grammar_rejects(q):
    assert parse_question(q) is None and solve(q) is None and classify(q) is None


def test_format_and_parse_roundtrip():
    ops = [("+", 34966), ("-", 28188), ("+", 10000), ("-", 12345), ("+", 1)]
    assert format_question(61044, ops) == Q
    assert parse_question(Q) == (61044, ops)


def test_worked_solution_format():
    assert worked_solution(Q) == "61044 =96010 =67822 =77822 =65477 =65478 \\boxed{65478}"
    assert worked_solution("garbage") is None


@pytest.mark.parametrize(
    "a,op,b,run",
    [
        (12345, "+", 87654, 4),  # every lower column sums to 9
        (10000, "+", 10000, 0),
        (12340, "+", 10060, 0),  # columns 0+0, 4+6, 3+0, 2+0: none sums to exactly 9
        (24291, "+", 14308, 2),  # 1+8=9, 9+0=9, then 2+3=5
        (55555, "-", 11155, 2),  # units and tens equal
        (54321, "-", 12345, 1),  # only the hundreds column (3, 3) is equal
        (54321, "-", 13579, 0),
        (12345, "*", 9, 0),
    ],
)
def test_lookahead(a, op, b, run):
    assert lookahead(a, op, b) == run


def test_step_runs_and_classify():
    # values 24291, 38599, 49710, 60821, 71932, 83043
    assert step_runs("24291 +14308 +11111 +11111 +11111 +11111") == [2, 1, 0, 1, 0]  # 8+1=9 in column 3
    assert classify("24291 +14308 +11111 +11111 +11111 +11111") == ("add", 1)
    # adding 0 to a value ending in 99 is a look-ahead of 2 too: the columns sum to 9 (no carry comes)
    assert step_runs("38599 +00000 +11111 +11111 +11111 +11111")[0] == 2
    assert classify(Q)[0] == "mix"
    assert classify("12345 *00009 *00002 *00007 *00001 *00001") == ("mul", 2)  # multipliers >= 6 are hard


@pytest.mark.parametrize("family", FAMILIES)
def test_generator_hits_every_level_and_is_exact(family):
    rng = random.Random(0)
    for level in LEVELS[family]:
        for _ in range(20):
            p = make_problem(family, level, rng)
            assert (p.family, p.level) == (family, level)
            assert int(p.answer) == solve(p.question)
            assert len(p.answer) == 5


@pytest.mark.parametrize("lo,hi", [(2, 2), (3, 3), (3, 4), (4, 4)])
def test_min_run_max_run_bound_the_hard_steps_lookahead(lo, hi):
    rng = random.Random(3)
    for _ in range(30):
        p = make_problem("mix", 3, rng, min_run=lo, max_run=hi)
        assert p.level == 3 and int(p.answer) == solve(p.question)
        runs = p.meta["runs"]
        assert sorted(r for r in runs if r >= 2) == sorted(r for r in runs if lo <= r <= hi)
        assert sum(lo <= r <= hi for r in runs) == 3


@pytest.mark.parametrize("lo,hi", [(1, 3), (3, 2), (2, 5)])
def test_bad_run_range_is_refused(lo, hi):
    with pytest.raises(ValueError, match="min_run"):
        make_problem("mix", 1, random.Random(0), min_run=lo, max_run=hi)


def test_natural_problems_are_mostly_easy():
    rng = random.Random(0)
    levels = [make_problem("mix", None, rng, natural=True).level for _ in range(2000)]
    assert levels.count(0) > 1600 and max(levels) <= 3  # hard steps are a rare tail


def test_generator_is_seeded():
    a = [make_problem("mix", 4, random.Random(7)).question for _ in range(3)]
    b = [make_problem("mix", 4, random.Random(7)).question for _ in range(3)]
    assert a == b


def test_unknown_family_and_level():
    with pytest.raises(ValueError, match="valid: add, sub, mix, mul"):
        make_problem("div", 1, random.Random(0))
    with pytest.raises(ValueError, match="not valid for add"):
        make_problem("add", STEPS + 1, random.Random(0))


def test_buggy_op_slips_only_on_propagated_carries():
    assert buggy_op(12345, "+", 23411) == 35756  # no 9-run: the slip changes nothing
    assert buggy_op(12345, "+", 23456) == 35701  # tens 4+5=9 passes the units carry on: lost
    assert buggy_op(12345, "+", 87655) == 99900  # true 0 (100000 mod 10^5)
    assert buggy_op(50000, "-", 10001) == 40099  # true 39999: the borrow through equal digits is lost
    q = "12345 +87655 +00000 +00000 +00000 +00000"
    assert noisy_answer(q, random.Random(0), 0.0) == 0
    assert noisy_answer(q, random.Random(0), 1.0) == 99900


def test_extra_carry_op_by_hand():
    assert extra_carry_op(11, "+", 88) == 100  # true 99: a carry is assumed to come up through the 9s
    assert extra_carry_op(49990, "+", 10010) == 60100  # true 60000: the carry that came is counted twice
    assert extra_carry_op(50000, "-", 10001) == 40009  # true 39999: the borrow through equal digits dropped
    assert extra_carry_op(12345, "+", 23411) == 35756  # no look-ahead: nothing to slip, the true value
    assert extra_carry_op(12345, "*", 7) == 86415  # * has no carry run


def test_extra_carry_slips_are_always_wrong_and_never_cancel():
    rng = random.Random(1)
    for _ in range(5000):
        x, b, op = rng.randrange(10**5), rng.randrange(10**5), rng.choice("+-")
        if lookahead(x, op, b) == 0:
            continue
        assert (extra_carry_op(x, op, b) - apply_op(x, op, b)) % 10**5 in {1, 10, 100, 1000}
    # a chain of slips only ever adds: every hard step slipping leaves a level-5 answer wrong
    for _ in range(200):
        p = make_problem("mix", 5, rng)
        assert noisy_values(p.question, rng, 1.0, hard_only=True)[-1] != int(p.answer)


def test_careless_student_slips_only_on_hard_steps():
    rng = random.Random(2)
    for level in range(STEPS + 1):
        for _ in range(20):
            p = make_problem("mix", level, rng)
            v = noisy_values(p.question, rng, 1.0, hard_only=True)
            right = values(p.question)
            assert (v[-1] == right[-1]) == (level == 0)  # every hard step slips, so any level > 0 ends wrong
            first_hard = next((i for i, r in enumerate(p.meta["runs"]) if r >= 2), STEPS)
            assert v[: first_hard + 1] == right[: first_hard + 1]  # easy steps before the first hard one are right
            assert noisy_values(p.question, rng, 0.0, hard_only=True) == right


def test_careless_corpus_success_compounds_as_one_minus_slip_to_the_level():
    from soar.world.corpus import CorpusConfig, pretraining_document

    rng = random.Random(4)
    cfg = CorpusConfig(teacher_fraction=0.0, student_slip=0.5, hard_fraction=1.0, family_weights=(0, 0, 1, 0))
    right: dict[int, list[bool]] = {}
    for _ in range(3000):
        prompt, target = pretraining_document(rng, cfg)
        q = prompt.removeprefix("User: ").removesuffix(" Assistant: ")
        right.setdefault(classify(q)[1], []).append(target == worked_solution(q))
    for level, hits in right.items():
        assert abs(sum(hits) / len(hits) - 0.5**level) < 0.08, level


@pytest.mark.parametrize(
    "gold,pred,ok",
    [
        ("35801", "35801", True),
        ("35801", " 35,801 ", True),
        ("35801", "+35801", True),
        ("00042", "42", True),
        ("35801", "35800", False),
        ("35801", "3.5801e4", False),
        ("35801", None, False),
        ("35801", "", False),
        ("35801", "x" * 10_000, False),
    ],
)
def test_is_equal(gold, pred, ok):
    assert is_equal(gold, pred) is ok


def test_parse_int_never_raises():
    for junk in ["", "--1", "1-", "١٢", "0x10", "1" * 13, "nan", "{}"]:
        assert parse_int(junk) is None


def test_step_credit_counts_steps_before_the_first_mistake():
    from soar.world.arithmetic import step_credit

    q = "61044 +34966 -28188 +10000 -12345 +00001"
    assert step_credit(q, "61044 =96010 =67822 =77822 =65477 =65478 \\boxed{65478}") == 1.0
    assert step_credit(q, "61044 =96010 =67822 =77821 =65477 =65478 \\boxed{65478}") == 0.4
    assert step_credit(q, "61044 =96011 =67822") == 0.0
    assert step_credit(q, "") == 0.0 and step_credit("not a question", "=96010") == 0.0
    assert step_credit(q, "=96010 =67822 junk =77822") == 0.6  # values are read in order, text between ignored


def test_corpus_teacher_documents_parse_and_carry_the_chosen_reasoning():
    from soar.world.corpus import CorpusConfig, pretraining_document
    from soar.world.formats import TEACHER_PROMPT_ARITH, parse_teacher_output

    for mode, marker in (("none", None), ("scratchpad", " ="), ("transcript", "User: ")):
        rng = random.Random(0)
        prompt, doc = pretraining_document(rng, CorpusConfig(teacher_fraction=1.0, teacher_reasoning=mode))
        assert prompt == TEACHER_PROMPT_ARITH
        pair = parse_teacher_output(doc)
        assert pair is not None and pair.question in doc
        between = doc[doc.index("</question>") + len("</question>") : doc.index("<answer>")]
        assert (marker in between) if marker else between == ""


def test_pretraining_corpus_is_reproducible():
    from soar.world.corpus import CorpusConfig, pretraining_document

    a = [pretraining_document(random.Random(3), CorpusConfig()) for _ in range(5)]
    b = [pretraining_document(random.Random(3), CorpusConfig()) for _ in range(5)]
    assert a == b
