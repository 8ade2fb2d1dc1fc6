"""The built-in arithmetic world: problem families, a seeded generator, worked solutions, an exact checker.

Every number is a 5-digit integer (10000..99999) except the multiplier of `mul`, so every digit of every
operand sits at a position the model saw in pretraining (RESEARCH-NOTES 1-2: unseen lengths are a cliff).
Results are written most significant digit first, which makes carries the difficulty knob: to write digit
j of a+b the model must know whether a carry comes in, and when the columns below sum to exactly 9 it has
to look further down. `lookahead` = the longest such run (RESEARCH-NOTES 3).

Families (level meaning in brackets):
- add   a+b            [longest run of columns summing to 9, 0..4]
- sub   a-b            [longest run of equal-digit columns (borrow look-ahead), 0..4]
- mul   a*b, b in 2..9 [digits of a, 1..4]
- chain x0 op b1 op b2 ... with op in {+,-}, values kept 5-digit [number of operations]

Questions label their operations: `61044 a+34966 b-28188`. The student writes one step per operation,
`61044 a+34966=95010 b-28188=66822 \\boxed{66822}`, so an add problem is a chain
of length 1 and a chain's success compounds over its steps (RESEARCH-NOTES 4): the hard set is long chains
whose steps need long look-ahead; short chains and single additions are the stepping stones.
"""

from __future__ import annotations

import random
import re

from soar.problems import Problem

FAMILIES = ("add", "sub", "mul", "chain")
LEVELS: dict[str, tuple[int, ...]] = {
    "add": (0, 1, 2, 3, 4),
    "sub": (0, 1, 2, 3, 4),
    "mul": (1, 2, 3, 4),
    "chain": (2, 3, 4, 5, 6, 7, 8),
}
LO, HI = 10000, 99999  # every value is 5 digits
# Probability that a column is forced to the look-ahead pattern, by target run length (tuned so that the
# rejection loop below accepts within a few tries for every target).
_FORCE = (0.0, 0.35, 0.55, 0.75, 0.95)


# --------------------------------------------------------------------------------------------------------
# Parsing and exact solving (never eval: a 3-token grammar)
# Each operation carries a step label a, b, c, ... so that finding "the i-th operation" is a copy after the
# label (one induction head) rather than counting operators: the 1M-parameter model could not learn the
# counting in 20 minutes of pretraining (README, design section).
LABELS = "abcdefghijkl"
_Q_RE = re.compile(r"^(\d{1,6})((?: ?[a-l][+\-*]\d{1,6}){1,12})$")
_OP_RE = re.compile(r" ?([a-l])([+\-*])(\d{1,6})")


def format_question(x: int, ops: list[tuple[str, int]]) -> str:
    """`(61044, [('+', 34966), ('-', 28188)])` -> `'61044 a+34966 b-28188'`."""
    return str(x) + "".join(f" {LABELS[i]}{op}{b}" for i, (op, b) in enumerate(ops))


def parse_question(question: str) -> tuple[int, list[tuple[str, int]]] | None:
    """`'12345 a+23456 b-111'` -> `(12345, [('+', 23456), ('-', 111)])`; None when outside the grammar.

    The grammar: an integer, then 1..12 labelled operations `a+n`, `b-n`, ... with labels in order; `*` only
    as the single operation (so left-to-right and the usual precedence agree: any text has one meaning)."""
    m = _Q_RE.match(question.strip())
    if not m:
        return None
    found = _OP_RE.findall(m.group(2))
    if [lab for lab, _, _ in found] != list(LABELS[: len(found)]):
        return None
    ops = [(op, int(b)) for _, op, b in found]
    if any(op == "*" for op, _ in ops) and len(ops) > 1:
        return None
    return int(m.group(1)), ops


def apply_op(x: int, op: str, b: int) -> int:
    return x + b if op == "+" else x - b if op == "-" else x * b


def solve(question: str) -> int | None:
    """The exact answer of a question in the world's grammar, or None when it does not parse."""
    parsed = parse_question(question)
    if parsed is None:
        return None
    x, ops = parsed
    for op, b in ops:
        x = apply_op(x, op, b)
    return x


def classify(question: str) -> tuple[str, int] | None:
    """(family, level) of any parseable question, including ones the teacher wrote; None otherwise.

    Questions outside the generator's ranges still get a family; their level is computed the same way."""
    parsed = parse_question(question)
    if parsed is None:
        return None
    x, ops = parsed
    if len(ops) == 1:
        op, b = ops[0]
        if op == "*":
            return "mul", len(str(x))
        return ("add" if op == "+" else "sub"), lookahead(x, op, b)
    return "chain", len(ops)


def worked_solution(question: str) -> str | None:
    """The student's target completion: one `op b=result` per operation, then the boxed answer."""
    parsed = parse_question(question)
    if parsed is None:
        return None
    x, ops = parsed
    parts = [str(x)]
    for i, (op, b) in enumerate(ops):
        x = apply_op(x, op, b)
        parts.append(f"{LABELS[i]}{op}{b}={x}")
    return " ".join(parts) + f" \\boxed{{{x}}}"


# --------------------------------------------------------------------------------------------------------
# Difficulty: carry / borrow look-ahead
def _digits(x: int, n: int = 5) -> list[int]:
    """Least significant first."""
    return [(x // 10**j) % 10 for j in range(n)]


def lookahead(a: int, op: str, b: int) -> int:
    """Longest run of consecutive columns (below the top one) whose carry-out depends on the column below.

    add: columns whose digits sum to 9; sub: columns whose digits are equal. Writing the result most
    significant digit first, a run of length r means looking r+1 columns down to settle one digit."""
    if op == "*":
        return 0
    da, db = _digits(a), _digits(b)
    n = max(len(str(abs(a))), len(str(abs(b))))
    best = run = 0
    for j in range(max(n - 1, 0)):
        hit = da[j] + db[j] == 9 if op == "+" else da[j] == db[j]
        run = run + 1 if hit else 0
        best = max(best, run)
    return best


def _column_pair(rng: random.Random, x: int, op: str, force: float) -> int | None:
    """A 5-digit b for `x op b`, each lower column forced to the look-ahead pattern with prob `force`."""
    dx = _digits(x)
    db = []
    for j in range(4):
        if rng.random() < force:
            db.append(9 - dx[j] if op == "+" else dx[j])
        else:
            db.append(rng.randint(0, 9))
    # Top digit: keep the result 5 digits whatever the carry/borrow from below.
    if op == "+":
        top = 8 - dx[4]
        if top < 1:
            return None
        db.append(rng.randint(1, top))
    else:
        top = dx[4] - 2
        if top < 1:
            return None
        db.append(rng.randint(1, top))
    b = sum(d * 10**j for j, d in enumerate(db))
    y = apply_op(x, op, b)
    return b if LO <= b <= HI and LO <= y <= HI else None


def _step(rng: random.Random, x: int, run: int | None, min_run: int = 0) -> tuple[str, int]:
    """One +/- operation on x. run=None: natural (uniform) operand; else exactly `run` look-ahead;
    min_run: at least that much look-ahead."""
    ops = [op for op in "+-" if (op == "+" and x <= HI - LO) or (op == "-" and x >= 2 * LO)]
    for _ in range(10_000):
        op = rng.choice(ops)
        if run is None and min_run == 0:
            b = rng.randint(LO, HI - x) if op == "+" else rng.randint(LO, x - LO)
        else:
            target = run if run is not None else rng.randint(min_run, max(min_run, 3))
            b = _column_pair(rng, x, op, _FORCE[target])
            if b is None or lookahead(x, op, b) != target:
                continue
        return op, b
    raise RuntimeError(f"could not draw an operation on {x} with run={run} min_run={min_run}")


def _start(rng: random.Random, op: str | None = None) -> int:
    if op == "+":
        return rng.randint(LO, 79999)
    if op == "-":
        return rng.randint(30000, HI)
    return rng.randint(LO, HI)


def make_problem(
    family: str, level: int | None, rng: random.Random, *, natural: bool = False, min_run: int = 0
) -> Problem:
    """Draw one problem. `natural=True` draws operands uniformly (the look-ahead then follows its natural,
    long-tailed frequency and `level` of add/sub is computed, not imposed); `min_run` makes every chain
    step need at least that much look-ahead (used for the hard pool)."""
    if family not in FAMILIES:
        raise ValueError(f"unknown family {family!r}; valid: {', '.join(FAMILIES)}")
    if level is not None and level not in LEVELS[family]:
        raise ValueError(f"level {level} is not valid for {family}; valid: {LEVELS[family]}")
    if family in ("add", "sub"):
        op = "+" if family == "add" else "-"
        while True:
            x = _start(rng, op)
            if natural:
                b = rng.randint(LO, HI - x) if op == "+" else rng.randint(LO, x - LO)
            else:
                lvl = rng.choice(LEVELS[family]) if level is None else level
                b = _column_pair(rng, x, op, _FORCE[lvl])
                if b is None or lookahead(x, op, b) != lvl:
                    continue
            q = format_question(x, [(op, b)])
            break
    elif family == "mul":
        d = rng.choice(LEVELS["mul"]) if level is None else level
        x = rng.randint(10 ** (d - 1), 10**d - 1)
        q = format_question(x, [("*", rng.randint(2, 9))])
    else:
        k = rng.choice(LEVELS["chain"]) if level is None else level
        x = _start(rng)
        ops, y = [], x
        for _ in range(k):
            op, b = _step(rng, y, None, 0) if natural else _step(rng, y, None, min_run)
            y = apply_op(y, op, b)
            ops.append((op, b))
        q = format_question(x, ops)
    family_, level_ = classify(q)  # type: ignore[misc]
    parsed = parse_question(q)
    runs = [lookahead(*_prefix_values(parsed)[i]) for i in range(len(parsed[1]))]  # type: ignore[arg-type]
    return Problem(family_, level_, q, str(solve(q)), {"runs": runs})


def _prefix_values(parsed: tuple[int, list[tuple[str, int]]]) -> list[tuple[int, str, int]]:
    """[(x_before_step, op, b), ...] for each operation."""
    x, ops = parsed
    out = []
    for op, b in ops:
        out.append((x, op, b))
        x = apply_op(x, op, b)
    return out


def step_runs(question: str) -> list[int] | None:
    """Look-ahead of every operation of a question (None when it does not parse)."""
    parsed = parse_question(question)
    if parsed is None:
        return None
    return [lookahead(x, op, b) for x, op, b in _prefix_values(parsed)]


# --------------------------------------------------------------------------------------------------------
# A plausible wrong solver, for the pretraining corpus's teacher-format documents
def buggy_op(x: int, op: str, b: int) -> int:
    """`x op b` computed without look-ahead: the carry (borrow) into a column is taken from the column
    directly below only, ignoring one propagated through 9s (equal digits). The classic human slip."""
    if op == "*":
        return x * b
    dx, db = _digits(x, 6), _digits(b, 6)
    out = 0
    for j in range(6):
        if op == "+":
            c = 1 if j > 0 and dx[j - 1] + db[j - 1] >= 10 else 0
            out += ((dx[j] + db[j] + c) % 10) * 10**j
        else:
            c = 1 if j > 0 and dx[j - 1] < db[j - 1] else 0
            out += ((dx[j] - db[j] - c) % 10) * 10**j
    return out


def noisy_answer(question: str, rng: random.Random, p_slip: float) -> int | None:
    """The answer a careless solver writes: each step slips (no look-ahead) with probability p_slip."""
    parsed = parse_question(question)
    if parsed is None:
        return None
    x, ops = parsed
    for op, b in ops:
        if op == "*" and rng.random() < p_slip:
            s = list(str(x * b))
            i = rng.randrange(len(s))
            s[i] = str((int(s[i]) + rng.randint(1, 9)) % 10) if i else str(rng.randint(1, 9))
            x = int("".join(s))
        else:
            x = buggy_op(x, op, b) if rng.random() < p_slip else apply_op(x, op, b)
    return x


# --------------------------------------------------------------------------------------------------------
# Checking answers
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
    """Exact integer equality; unparseable text is simply wrong."""
    g, p = parse_int(gold), parse_int(predicted)
    return g is not None and p is not None and g == p
