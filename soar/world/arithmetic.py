"""The built-in arithmetic world: problem families, a seeded generator, worked solutions, an exact checker.

Every problem is a register machine run of exactly STEPS operations on 5-digit numbers, modulo 10^5:

    question  61044 +34966 -28188 +10000 -12345 +00001
    solution  61044 =95010 =66822 =76822 =64477 =64478 \\boxed{64478}

Fixed widths put each step's operand at the same distance from the digits that use it, in every problem.
A 1M-parameter model learns single operations in minutes but could not learn to find "the i-th operand" of
a variable-length chain in 20 minutes of CPU pretraining (docs/world-design.md): here it never has to.

Results are written most significant digit first, which makes carries the per-step difficulty: to write
digit j of a+b the model must know whether a carry comes in, and when the columns below sum to exactly 9
it has to look further down. `lookahead` = the longest such run; it is rare in
uniformly drawn operands (2.6% of steps reach 2, 0.2% reach 3), as hard reasoning is rare in web text.
A step with look-ahead >= HARD_RUN is "hard". The LEVEL of a problem is its number of hard steps, so
success compounds (about p_hard^level): the hard set is problems with many hard steps, and problems with
one or two hard steps among easy ones are the stepping stones (docs/DESIGN.md).

Families (by the operations used): add (all +), sub (all -), mix (+ and -), mul (all *, a one-digit
multiplier written 0000d; its hard steps are multipliers 6-9, a distractor for the teacher).
"""

from __future__ import annotations

import random
import re

from soar.core.problems import Problem

STEPS = 5
"""operations per problem"""
MOD = 100_000
"""every value is kept to 5 digits (arithmetic modulo 10^5; leading zeros written)"""
HARD_RUN = 2
"""a +/- step whose look-ahead is at least this is hard"""
FAMILIES = ("add", "sub", "mix", "mul")
LEVELS: dict[str, tuple[int, ...]] = {f: tuple(range(STEPS + 1)) for f in FAMILIES}
# Probability that a column is forced to the look-ahead pattern, by target run length (tuned so that the
# rejection loop below accepts within a few tries for every target).
_FORCE = (0.0, 0.35, 0.55, 0.75, 0.95)
_Q_RE = re.compile(r"^([0-9]{5})((?: [+\-*][0-9]{5}){" + str(STEPS) + r"})$")
_OP_RE = re.compile(r" ([+\-*])([0-9]{5})")


# --------------------------------------------------------------------------------------------------------
# Grammar and exact solving (never eval: a fixed-width grammar)
def fmt(x: int) -> str:
    return f"{x % MOD:05d}"


def format_question(x: int, ops: list[tuple[str, int]]) -> str:
    """`(61044, [('+', 34966), ...])` -> `'61044 +34966 ...'`."""
    return fmt(x) + "".join(f" {op}{fmt(b)}" for op, b in ops)


def parse_question(question: str) -> tuple[int, list[tuple[str, int]]] | None:
    """`'61044 +34966 -28188 ...'` -> `(61044, [('+', 34966), ('-', 28188), ...])`; None outside the grammar
    (exactly STEPS operations, every number exactly 5 digits, single spaces)."""
    m = _Q_RE.match(question.strip())
    if not m:
        return None
    return int(m.group(1)), [(op, int(b)) for op, b in _OP_RE.findall(m.group(2))]


def apply_op(x: int, op: str, b: int) -> int:
    return (x + b) % MOD if op == "+" else (x - b) % MOD if op == "-" else (x * b) % MOD


def signed_error(answer: int, truth: int) -> int:
    """answer - truth modulo 10^5, as the residue in (-MOD/2, MOD/2]: how far above (> 0) or below the truth."""
    d = (answer - truth) % MOD
    return d - MOD if d > MOD // 2 else d


def values(question: str) -> list[int] | None:
    """[x0, x1, ..., x_STEPS]: the register after every operation."""
    parsed = parse_question(question)
    if parsed is None:
        return None
    x, ops = parsed
    out = [x]
    for op, b in ops:
        out.append(apply_op(out[-1], op, b))
    return out


def solve(question: str) -> int | None:
    """The exact answer of a question in the world's grammar, or None when it does not parse."""
    v = values(question)
    return None if v is None else v[-1]


def worked_solution(question: str) -> str | None:
    """The student's target completion: the start value, `=value` after every step, the boxed answer."""
    v = values(question)
    return None if v is None else solution_text(v)


def step_spans(question: str) -> tuple[str, list[tuple[int, int]]] | None:
    """The worked solution and the character span of each of its STEPS written register values (the five
    digits after each `=`), for the teacher-forced Q_R metric; None outside the grammar."""
    text = worked_solution(question)
    if text is None:
        return None
    return text, [m.span(1) for m in _STEP_RE.finditer(text)][:STEPS]


def final_text(answer: str) -> str:
    """How a worked solution ends once its last `=` is written: the final value, then the same value boxed."""
    return f"{answer} \\boxed{{{answer}}}"


# --------------------------------------------------------------------------------------------------------
# Difficulty
def _digits(x: int, n: int = 5) -> list[int]:
    """Least significant first."""
    return [(x // 10**j) % 10 for j in range(n)]


def lookahead(a: int, op: str, b: int) -> int:
    """Longest run of consecutive columns (below the top one) whose carry-out depends on the column below.

    add: columns whose digits sum to 9; sub: columns whose digits are equal. Writing the result most
    significant digit first, a run of length r means looking r+1 columns down to settle one digit.
    Multiplication has no look-ahead in this sense (0)."""
    return 0 if op == "*" else _longest_run(a, op, b)[0]


def _longest_run(a: int, op: str, b: int) -> tuple[int, int]:
    """(length, lowest column) of the first longest run of look-ahead columns of `a op b` (+ or -)."""
    da, db = _digits(a), _digits(b)
    best, start, run = 0, 0, 0
    for j in range(4):
        hit = da[j] + db[j] == 9 if op == "+" else da[j] == db[j]
        run = run + 1 if hit else 0
        if run > best:
            best, start = run, j - run + 1
    return best, start


def is_hard_step(x: int, op: str, b: int) -> bool:
    return b >= 6 if op == "*" else lookahead(x, op, b) >= HARD_RUN


def step_runs(question: str) -> list[int] | None:
    """Look-ahead of every operation (None when the question does not parse)."""
    parsed, v = parse_question(question), values(question)
    if parsed is None or v is None:
        return None
    return [lookahead(x, op, b) for x, (op, b) in zip(v, parsed[1], strict=False)]


def classify(question: str) -> tuple[str, int] | None:
    """(family, level) of any question in the grammar, including ones the teacher wrote; None otherwise."""
    parsed, v = parse_question(question), values(question)
    if parsed is None or v is None:
        return None
    ops = {op for op, _ in parsed[1]}
    family = "add" if ops == {"+"} else "sub" if ops == {"-"} else "mul" if ops == {"*"} else "mix"
    level = sum(is_hard_step(x, op, b) for x, (op, b) in zip(v, parsed[1], strict=False))
    return family, level


KINDS = ("easy", "stone L2", "stone L3+", "several hard", "multiplication")
"""the question kinds of `question_kind`, in report order"""


def question_kind(question: str) -> str | None:
    """easy (no hard step) | stone L2 / stone L3+ (one hard +/- step, by its look-ahead: the teacher answers
    L2 stones right about a quarter of the time, L3+ almost never) | several hard | multiplication (a hard
    multiplication step); None when the question does not parse."""
    parsed, v = parse_question(question), values(question)
    if parsed is None or v is None:
        return None
    hard = [(op, lookahead(x, op, b)) for x, (op, b) in zip(v, parsed[1], strict=False) if is_hard_step(x, op, b)]
    if not hard:
        return "easy"
    if any(op == "*" for op, _ in hard):
        return "multiplication"
    if len(hard) > 1:
        return "several hard"
    return "stone L2" if hard[0][1] == 2 else "stone L3+"


# --------------------------------------------------------------------------------------------------------
# Generation
def _operand(rng: random.Random, x: int, op: str, run: int | None) -> int:
    """b for `x op b`: uniform (run=None) or with exactly `run` look-ahead (0..4)."""
    if run is None:
        return rng.randrange(MOD)
    dx = _digits(x)
    for _ in range(10_000):
        db = [
            (9 - dx[j] if op == "+" else dx[j]) if rng.random() < _FORCE[run] else rng.randint(0, 9) for j in range(4)
        ] + [rng.randint(0, 9)]
        b = sum(d * 10**j for j, d in enumerate(db))
        if lookahead(x, op, b) == run:
            return b
    raise RuntimeError(f"could not draw an operand with look-ahead {run} for {x} {op}")


def _ops_for(family: str, rng: random.Random) -> list[str]:
    if family != "mix":
        return [{"add": "+", "sub": "-", "mul": "*"}[family]] * STEPS
    while True:  # both signs, so that a mix problem is never an add or sub problem
        ops = [rng.choice("+-") for _ in range(STEPS)]
        if len(set(ops)) == 2:
            return ops


def make_problem(
    family: str,
    level: int | None,
    rng: random.Random,
    *,
    natural: bool = False,
    min_run: int = HARD_RUN,
    max_run: int = 3,
) -> Problem:
    """Draw one problem with `level` hard steps (None: a random level).

    natural=True draws every operand uniformly instead (the level is then whatever comes out: mostly 0,
    as in the pretraining corpus). Hard +/- steps get look-ahead min_run..max_run (both at least HARD_RUN, at
    most 4), easy ones 0..HARD_RUN-1. The level counts hard steps whatever their look-ahead, so min_run=3
    draws a harder subset of a level (used for the shipped hard set: docs/world-design.md)."""
    if not HARD_RUN <= min_run <= max_run <= 4:
        raise ValueError(f"need {HARD_RUN} <= min_run <= max_run <= 4; got min_run={min_run}, max_run={max_run}")
    if family not in FAMILIES:
        raise ValueError(f"unknown family {family!r}; valid: {', '.join(FAMILIES)}")
    if level is not None and level not in LEVELS[family]:
        raise ValueError(f"level {level} is not valid for {family}; valid: {LEVELS[family]}")
    lvl = rng.choice(LEVELS[family]) if level is None else level
    hard = set(rng.sample(range(STEPS), lvl))
    x0 = x = rng.randrange(MOD)
    ops: list[tuple[str, int]] = []
    for i, op in enumerate(_ops_for(family, rng)):
        if op == "*":
            b = rng.randint(2, 9) if natural else rng.randint(6, 9) if i in hard else rng.randint(2, 5)
        elif natural:
            b = _operand(rng, x, op, None)
        else:
            b = _operand(rng, x, op, rng.randint(min_run, max_run) if i in hard else rng.randint(0, HARD_RUN - 1))
        ops.append((op, b))
        x = apply_op(x, op, b)
    q = format_question(x0, ops)
    fam, lev = classify(q)  # type: ignore[misc]
    return Problem(fam, lev, q, fmt(solve(q)), {"runs": step_runs(q)})  # type: ignore[arg-type]


# --------------------------------------------------------------------------------------------------------
# A plausible wrong solver, for the pretraining corpus's teacher-format documents
def buggy_op(x: int, op: str, b: int) -> int:
    """`x op b` without look-ahead: the carry (borrow) into a column is taken from the column directly
    below only, ignoring one propagated through 9s (equal digits). The classic human slip."""
    if op == "*":
        return apply_op(x, op, b)
    dx, db = _digits(x), _digits(b)
    out = 0
    for j in range(5):
        if op == "+":
            c = 1 if j > 0 and dx[j - 1] + db[j - 1] >= 10 else 0
            out += ((dx[j] + db[j] + c) % 10) * 10**j
        else:
            c = 1 if j > 0 and dx[j - 1] < db[j - 1] else 0
            out += ((dx[j] - db[j] - c) % 10) * 10**j
    return out


def extra_carry_op(x: int, op: str, b: int) -> int:
    """`x op b` plus one extra carry at the bottom of the longest look-ahead run (+10^start): the slip of a
    solver who must guess whether a carry comes up through the run (9s for +, equal digits for -). When none
    comes, this is exactly the guess "it does"; when one comes, it is counted twice. Always a wrong value
    when the look-ahead is at least 1, and always the same sign: slips never cancel each other (a flipped
    carry would be -10^start or +10^start, and two opposite slips in a chain would end right, which let
    careless level-5 chains succeed about 1e-3 of the time; docs/world-design.md). With no look-ahead, or
    for *, it is the true value."""
    r = apply_op(x, op, b)
    if op == "*":
        return r
    best, start = _longest_run(x, op, b)
    return r if best == 0 else (r + 10**start) % MOD


SLIP_KINDS = ("extra_carry", "diverse")
"""how a careless student's +/- hard step slips: `extra_carry_op` (+10^start) or `diverse_slip_op`"""


def diverse_slip_op(x: int, op: str, b: int, d: int) -> int:
    """`x op b` plus d x 10^start (d in 1..9), start = bottom column of the longest look-ahead run (at most 3)."""
    if not 1 <= d <= 9:
        raise ValueError(f"d must be in 1..9, got {d}")
    r = apply_op(x, op, b)
    if op == "*":
        return r
    best, start = _longest_run(x, op, b)
    return r if best == 0 else (r + d * 10 ** min(start, 3)) % MOD


def slip_probability(op: str, run: int, by_lookahead: tuple[float, ...], mul_slip: float) -> float:
    """Slip probability of a hard step: mul_slip for *, else by_lookahead[run] (its last entry for longer runs)."""
    if op == "*":
        return mul_slip
    return by_lookahead[min(run, len(by_lookahead) - 1)]


def noisy_values(
    question: str,
    rng: random.Random,
    p_slip: float,
    *,
    hard_only: bool = False,
    slip_by_lookahead: tuple[float, ...] = (),
    mul_slip: float | None = None,
    slip_kind: str = "extra_carry",
) -> list[int] | None:
    """The register values a careless solver writes (start value first), later steps building on a slipped
    value. hard_only=False (teacher documents): each step slips with probability p_slip (`buggy_op`; a wrong
    digit for *). hard_only=True (careless student documents): only hard steps slip, always to a wrong value
    (`extra_carry_op`, or `diverse_slip_op` with d uniform in 1..9 for slip_kind="diverse"; a wrong digit for
    *), with probability p_slip, or slip_by_lookahead[look-ahead] when given (mul_slip for *, default p_slip),
    so a level-L problem at one slip rate is right with probability (1 - p_slip)^L."""
    if slip_kind not in SLIP_KINDS:
        raise ValueError(f"slip_kind must be one of {', '.join(SLIP_KINDS)}, got {slip_kind!r}")
    if (slip_by_lookahead or slip_kind != "extra_carry") and not hard_only:
        raise ValueError("slip_by_lookahead and slip_kind apply to the careless student (hard_only=True)")
    parsed = parse_question(question)
    if parsed is None:
        return None
    x, ops = parsed
    out = [x]
    by_run = tuple(slip_by_lookahead) or (p_slip,)
    mul_p = p_slip if mul_slip is None else mul_slip
    for op, b in ops:
        if slip_by_lookahead:
            hard = is_hard_step(x, op, b)
            slip = rng.random() < slip_probability(op, lookahead(x, op, b), by_run, mul_p) and hard
        else:
            slip = rng.random() < (mul_p if op == "*" and hard_only else p_slip) and (
                not hard_only or is_hard_step(x, op, b)
            )
        if op == "*" and slip:
            right = apply_op(x, op, b)
            d = _digits(right)
            pos = rng.randrange(5)
            d[pos] = (d[pos] + rng.randint(1, 9)) % 10 if hard_only else rng.randint(0, 9)
            x = sum(v * 10**j for j, v in enumerate(d))
        elif slip and slip_kind == "diverse":
            x = diverse_slip_op(x, op, b, rng.randint(1, 9))
        elif slip:
            x = extra_carry_op(x, op, b) if hard_only else buggy_op(x, op, b)
        else:
            x = apply_op(x, op, b)
        out.append(x)
    return out


def solution_text(v: list[int]) -> str:
    """A student completion from written register values (start value first): `x0 =x1 ... =x5 \\boxed{x5}`."""
    return fmt(v[0]) + "".join(f" ={fmt(x)}" for x in v[1:-1]) + " =" + final_text(fmt(v[-1]))


def noisy_answer(question: str, rng: random.Random, p_slip: float) -> int | None:
    """The final value of `noisy_values`."""
    v = noisy_values(question, rng, p_slip)
    return None if v is None else v[-1]


# --------------------------------------------------------------------------------------------------------
# Checking answers
_STEP_RE = re.compile(r"=(\d{5})")


def written_values(completion: str) -> list[int]:
    """The register values a completion wrote (`=ddddd`, in order, at most STEPS; text between ignored)."""
    return [int(x) for x in _STEP_RE.findall(completion)[:STEPS]]


def step_credit(question: str, completion: str) -> float:
    """Partial credit of a worked solution: the share of the STEPS register values written right before the
    first mistake (0.0 when the question is outside the grammar). Never raises."""
    v = values(question)
    if v is None or not completion:
        return 0.0
    written = written_values(completion)
    right = 0
    for w, t in zip(written, v[1:], strict=False):
        if w != t:
            break
        right += 1
    return right / STEPS


def final_split(completion: str, answer: str) -> tuple[str, str] | None:
    """For the Rao-Blackwellised success estimate (`soar.jobs.hardset.success_estimates`): the completion's text
    up to and including its STEPS-th `=` (where the final value starts), and the text that writes `answer`
    there and boxes it. None when the completion never reaches a final value (it then scores 0)."""
    cuts = [i for i, ch in enumerate(completion) if ch == "="]
    if len(cuts) < STEPS:
        return None
    return completion[: cuts[STEPS - 1] + 1], final_text(answer)


def parse_int(text: str | None) -> int | None:
    """An integer from the boxed text (spaces and a leading + allowed), else None. Never raises."""
    if text is None:
        return None
    t = text.strip().replace(" ", "").replace(",", "")
    if t.startswith("+"):
        t = t[1:]
    if not re.fullmatch(r"-?[0-9]{1,12}", t):
        return None
    return int(t)


def is_equal(gold: str, predicted: str | None) -> bool:
    """Exact integer equality (leading zeros ignored); unparseable text is simply wrong."""
    g, p = parse_int(gold), parse_int(predicted)
    return g is not None and p is not None and g == p
