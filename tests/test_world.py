"""The arithmetic world: grammar, exact solving, look-ahead, generator levels, the careless solver."""

import random

import pytest

from soar.engine.model import build_char_tokenizer
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
from soar.world.formats import student_prompt

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


def test_step_spans_cover_the_five_written_values():
    from soar.world.arithmetic import step_spans

    text, spans = step_spans(Q)
    assert text == worked_solution(Q)
    assert [text[a:b] for a, b in spans] == ["96010", "67822", "77822", "65477", "65478"]
    assert spans[0] == (7, 12)  # "61044 =" is seven characters
    assert step_spans("garbage") is None


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


# --------------------------------------------------------------------------------------------------------
# The configurable careless solver (slip by look-ahead, diverse slips). The shipped model's provenance
# depends on the default corpus being unchanged, so the old code path is kept here verbatim as a reference.
def _reference_noisy_values(question, rng, p_slip, *, hard_only=False):
    """`noisy_values` as it was before slip_by_lookahead / slip_kind (commit 5c0a81d)."""
    from soar.world.arithmetic import _digits, is_hard_step

    parsed = parse_question(question)
    if parsed is None:
        return None
    x, ops = parsed
    out = [x]
    for op, b in ops:
        slip = rng.random() < p_slip and (not hard_only or is_hard_step(x, op, b))
        if op == "*" and slip:
            right = apply_op(x, op, b)
            d = _digits(right)
            pos = rng.randrange(5)
            d[pos] = (d[pos] + rng.randint(1, 9)) % 10 if hard_only else rng.randint(0, 9)
            x = sum(v * 10**j for j, v in enumerate(d))
        elif slip:
            x = extra_carry_op(x, op, b) if hard_only else buggy_op(x, op, b)
        else:
            x = apply_op(x, op, b)
        out.append(x)
    return out


def _reference_document(rng, cfg):
    """`pretraining_document` as it was before slip_by_lookahead / slip_kind (commit 5c0a81d)."""
    from soar.world.arithmetic import fmt, solution_text
    from soar.world.formats import TEACHER_PROMPT_ARITH, student_prompt, teacher_document

    if rng.random() < cfg.teacher_fraction:
        family = rng.choice(FAMILIES)
        p = make_problem(family, rng.choice(LEVELS[family]), rng)
        v = _reference_noisy_values(p.question, rng, cfg.teacher_slip)
        scratch = fmt(v[0]) + "".join(f" ={fmt(x)}" for x in v[1:])
        reasoning = {"none": "", "scratchpad": scratch, "transcript": student_prompt(p.question) + scratch}[
            cfg.teacher_reasoning
        ]
        return TEACHER_PROMPT_ARITH, teacher_document(p.question, fmt(v[-1]), reasoning)
    family = rng.choices(FAMILIES, weights=cfg.family_weights)[0]
    if cfg.hard_fraction > 0 and rng.random() < cfg.hard_fraction:
        p = make_problem(family, None, rng)
    else:
        p = make_problem(family, None, rng, natural=True)
    if cfg.student_slip > 0:
        v = _reference_noisy_values(p.question, rng, cfg.student_slip, hard_only=True)
        return student_prompt(p.question), solution_text(v)
    return student_prompt(p.question), worked_solution(p.question)


@pytest.mark.parametrize(
    "kw",
    [
        {},  # stage 1 (m7)
        {"student_slip": 0.97, "hard_fraction": 0.5},  # the shipped model's careless stage
        {"student_slip": 0.9, "hard_fraction": 0.3, "teacher_fraction": 0.5, "teacher_reasoning": "transcript"},
    ],
)
def test_default_careless_options_leave_the_corpus_unchanged(kw):
    from soar.world.corpus import CorpusConfig, pretraining_document

    cfg = CorpusConfig(**kw)
    a, b = random.Random(11), random.Random(11)
    for _ in range(3000):
        assert pretraining_document(a, cfg) == _reference_document(b, cfg)


def test_diverse_slip_op_by_hand():
    from soar.world.arithmetic import diverse_slip_op

    assert diverse_slip_op(11, "+", 88, 1) == extra_carry_op(11, "+", 88) == 100  # d=1 is the extra carry
    assert diverse_slip_op(11, "+", 88, 7) == 99 + 7  # run of 9s in columns 0-1: start 0
    assert diverse_slip_op(49990, "+", 10010, 3) == 60000 + 300  # digit sums 9 in columns 2-3: start 2
    assert diverse_slip_op(50000, "-", 10001, 9) == 39999 + 90  # equal digits in columns 1-3: start 1
    assert diverse_slip_op(12345, "+", 23411, 5) == 35756  # no look-ahead: the true value
    assert diverse_slip_op(12345, "*", 7, 5) == 86415
    with pytest.raises(ValueError):
        diverse_slip_op(11, "+", 88, 0)


DIVERSE = {"slip_by_lookahead": (0.0, 0.0, 0.35, 0.98, 0.98), "mul_slip": 0.97, "slip_kind": "diverse"}


def test_diverse_slips_are_always_wrong_one_signed_and_never_cancel():
    from soar.world.arithmetic import diverse_slip_op

    rng = random.Random(5)
    for _ in range(5000):
        x, b, op = rng.randrange(10**5), rng.randrange(10**5), rng.choice("+-")
        if lookahead(x, op, b) == 0:
            continue
        d = rng.randint(1, 9)
        delta = (diverse_slip_op(x, op, b, d) - apply_op(x, op, b)) % 10**5
        assert delta in {d, 10 * d, 100 * d, 1000 * d}  # always +, at most 9000
    # every hard step slipping: the slips of a chain add up (at most 5 x 9000 < 10^5), so the end is wrong,
    # and the end is off by exactly the sum of the slips
    always = {"slip_by_lookahead": (0.0, 0.0, 1.0), "slip_kind": "diverse"}
    for level in range(1, STEPS + 1):
        for _ in range(100):
            p = make_problem("mix", level, rng, max_run=4)
            v = noisy_values(p.question, rng, 0.0, hard_only=True, **always)
            parsed = parse_question(p.question)
            slips = [(w - apply_op(u, op, b)) % 10**5 for u, w, (op, b) in zip(v, v[1:], parsed[1], strict=False)]
            assert sum(slips) < 10**5 and sum(slips) > 0
            assert (v[-1] - int(p.answer)) % 10**5 == sum(slips)


def test_configurable_slips_only_on_hard_steps():
    rng = random.Random(6)
    always = {"slip_by_lookahead": (0.0, 0.0, 1.0), "mul_slip": 1.0, "slip_kind": "diverse"}
    for family in ("mix", "add", "sub", "mul"):
        for level in range(STEPS + 1):
            for _ in range(20):
                p = make_problem(family, level, rng)
                v = noisy_values(p.question, rng, 0.0, hard_only=True, **always)
                parsed = parse_question(p.question)
                for u, w, (op, b) in zip(v, v[1:], parsed[1], strict=False):
                    from soar.world.arithmetic import is_hard_step

                    assert (w != apply_op(u, op, b)) == is_hard_step(u, op, b)
                never = {**always, "slip_by_lookahead": (0.0,), "mul_slip": 0.0}
                assert noisy_values(p.question, rng, 0.5, hard_only=True, **never) == values(p.question)
    with pytest.raises(ValueError):
        noisy_values(Q, rng, 0.5, slip_kind="diverse")  # teacher documents: buggy_op only
    with pytest.raises(ValueError):
        noisy_values(Q, rng, 0.5, hard_only=True, slip_kind="flip")


KEY_SLIPS = (0.0, 0.0, 0.05, 0.6, 0.9)


@pytest.mark.parametrize("answer_key", [False, True])
def test_slip_rate_by_lookahead_matches_the_config(answer_key):
    """Solved documents slip at slip_by_lookahead; answer-key documents (key_fraction=1) at key_slip_by_lookahead,
    in the answer-key prompt."""
    from soar.world.arithmetic import is_hard_step
    from soar.world.corpus import CorpusConfig, pretraining_document

    extra = {"key_fraction": 1.0, "key_slip_by_lookahead": KEY_SLIPS} if answer_key else {}
    cfg = CorpusConfig(teacher_fraction=0.0, hard_fraction=1.0, hard_max_run=4, **DIVERSE, **extra)
    want = {2: 0.05, 3: 0.6, 4: 0.9, "mul": 0.97} if answer_key else {2: 0.35, 3: 0.98, 4: 0.98, "mul": 0.97}
    n: dict = dict.fromkeys(want, 0)
    slips: dict = dict.fromkeys(want, 0)
    rng = random.Random(7)
    for _ in range(4000):
        prompt, target = pretraining_document(rng, cfg)
        if answer_key:
            assert prompt.startswith("<question>") and prompt.endswith("</question>")
            q = prompt.removeprefix("<question>").removesuffix("</question>")
        else:
            q = prompt.removeprefix("User: ").removesuffix(" Assistant: ")
            assert student_prompt(q) == prompt
        parsed = parse_question(q)
        written = [parsed[0]] + [int(t) for t in target.split(" =")[1:-1]] + [int(target.split(" =")[-1][:5])]
        for u, w, (op, b) in zip(written, written[1:], parsed[1], strict=False):
            if not is_hard_step(u, op, b):
                assert w == apply_op(u, op, b)
                continue
            key = "mul" if op == "*" else lookahead(u, op, b)
            n[key] += 1
            slips[key] += w != apply_op(u, op, b)
    for key, p in want.items():
        se = (p * (1 - p) / n[key]) ** 0.5
        assert n[key] > 150, key
        assert abs(slips[key] / n[key] - p) < 4 * se + 1e-3, (key, slips[key], n[key])


def test_answer_key_documents_come_at_key_fraction_and_keep_the_old_stream_without_them():
    from soar.world.corpus import CorpusConfig, pretraining_document

    cfg = CorpusConfig(key_fraction=0.3, **DIVERSE)
    rng = random.Random(11)
    docs = [pretraining_document(rng, cfg) for _ in range(3000)]
    keys = sum(p.startswith("<question>") for p, _ in docs)
    assert abs(keys / 3000 - 0.3) < 0.03
    # key_fraction=0 draws no extra random number: the corpus of every earlier model is unchanged
    a, b = random.Random(5), random.Random(5)
    plain = CorpusConfig(**DIVERSE)
    assert [pretraining_document(a, plain) for _ in range(50)] == [
        pretraining_document(b, CorpusConfig(key_fraction=0.0, key_slip_by_lookahead=KEY_SLIPS, **DIVERSE))
        for _ in range(50)
    ]


def test_answer_prompts_of_the_worlds():
    from soar.world import ARITHMETIC

    q = "12345 +11111 -00001 +00000 +00000 +00000"
    assert ARITHMETIC.answer_prompt("student")(q) == student_prompt(q)
    assert ARITHMETIC.answer_prompt("key")(q) == f"<question>{q}</question>"
    tok = build_char_tokenizer()
    # one token closes the question in both registers, so every value stands as far from its operand
    for prompt in (ARITHMETIC.answer_prompt(w)(q) for w in ("student", "key")):
        assert tok(prompt).input_ids[-(len(q) + 1) : -1] == tok(q, add_special_tokens=False).input_ids
    with pytest.raises(ValueError, match="student, key"):
        ARITHMETIC.answer_prompt("chat")


def test_question_kind_sorts_questions_by_their_hard_steps():
    from soar.world.arithmetic import question_kind

    rng = random.Random(7)
    kind = lambda fam, lvl, **kw: {question_kind(make_problem(fam, lvl, rng, **kw).question) for _ in range(20)}  # noqa: E731
    assert kind("add", 0) == {"easy"}
    assert kind("mix", 1, min_run=2, max_run=2) == {"stone L2"}
    assert kind("sub", 1, min_run=3, max_run=4) == {"stone L3+"}
    assert kind("add", 3) == {"several hard"}
    assert kind("mul", 1) == {"multiplication"}
    assert question_kind("12345 +00654") is None  # one operation: outside the grammar
