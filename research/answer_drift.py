"""What did a teacher's updates change: the questions it writes, or the answers it gives them?

For a teacher run (`RUN/questions.jsonl`, one row per question with its outer step) the outer steps are cut into
`--windows` equal spans; for a question file (`questions/grounded_t.jsonl`: a trained teacher's fresh questions)
the file is one span. Per span: the share of each question kind (the arithmetic world's `question_kind`), and per
kind the share of answers of each class of `answer_class`, and the share of the wrong answers that lie below the
truth. A teacher that learns to write the stones that teach moves the kind shares; one that learns something about
answers moves the classes, or the side of the truth its errors fall on.

    python research/answer_drift.py runs/main/soar runs/main/questions/base_t.jsonl runs/main/questions/grounded_t.jsonl

Prints one JSON object, by source and span.
"""

from __future__ import annotations

import argparse
import json
from collections import Counter
from pathlib import Path

from soar.core.io import read_log
from soar.world.arithmetic import (
    KINDS,
    apply_op,
    buggy_op,
    extra_carry_op,
    fmt,
    parse_int,
    parse_question,
    question_kind,
    signed_error,
    values,
)

CLASSES = ("right", "one careless step", "one column off", "other", "unparsed")
"""the classes of `answer_class`, in report order"""


def answer_class(question: str, answer: str) -> str:
    """right | one careless step (one +/- step done without look-ahead, or with the extra carry, the rest done
    right) | one column off (a single digit differs from the truth) | other | unparsed (no number, or a question
    outside the grammar)."""
    parsed, v, a = parse_question(question), values(question), parse_int(answer)
    if parsed is None or v is None or a is None:
        return "unparsed"
    if a == v[-1]:
        return "right"
    ops = parsed[1]
    for i, (op, b) in enumerate(ops):
        if op == "*":
            continue
        for careless in (buggy_op, extra_carry_op):
            y = careless(v[i], op, b)
            for op2, b2 in ops[i + 1 :]:
                y = apply_op(y, op2, b2)
            if y == a:
                return "one careless step"
    if 0 <= a < 10**5 and sum(x != y for x, y in zip(fmt(a), fmt(v[-1]), strict=True)) == 1:
        return "one column off"
    return "other"


def span_table(rows: list[dict]) -> dict:
    """Share of each question kind; per kind its count, the share of each answer class, and the share of its
    wrong (parsed) answers that lie below the truth (`signed_error` < 0; None without any)."""
    kinds: dict[str, Counter] = {}
    sides: dict[str, Counter] = {}
    for r in rows:
        kind = question_kind(r["question"]) or "unparsed"
        kinds.setdefault(kind, Counter())[answer_class(r["question"], str(r["answer"]))] += 1
        truth, a = values(r["question"]), parse_int(str(r["answer"]))
        if truth is not None and a is not None and a != truth[-1]:
            sides.setdefault(kind, Counter())[signed_error(a, truth[-1]) < 0] += 1
    n = sum(sum(c.values()) for c in kinds.values())
    out = {"n": n}
    for kind in (*KINDS, "unparsed"):
        c = kinds.get(kind)
        if c:
            total = sum(c.values())
            shares = {cls: round(c[cls] / total, 3) for cls in CLASSES if c[cls]}
            side = sides.get(kind, Counter())
            below = round(side[True] / (side[True] + side[False]), 3) if side.total() else None
            out[kind] = {"share": round(total / n, 3), "n": total, "answers": shares, "wrong_below": below}
    return out


def spans(rows: list[dict], windows: int) -> dict[str, list[dict]]:
    """Rows cut by outer step into `windows` spans named "steps A-B"; one span "all" when rows have no step."""
    if not rows or "step" not in rows[0]:
        return {"all": rows}
    last = max(r["step"] for r in rows)
    size = -(-(last + 1) // windows)
    out: dict[str, list[dict]] = {}
    for lo in range(0, last + 1, size):
        hi = min(lo + size, last + 1) - 1
        out[f"steps {lo}-{hi}"] = [r for r in rows if lo <= r["step"] <= hi]
    return out


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("sources", nargs="+", help="teacher run folders (with questions.jsonl) or question files")
    ap.add_argument("--windows", type=int, default=4, help="spans of outer steps per teacher run")
    args = ap.parse_args(argv)
    if args.windows < 1:
        raise SystemExit(f"--windows must be at least 1 (got {args.windows})")
    result = {}
    for source in args.sources:
        path = Path(source)
        path = path / "questions.jsonl" if path.is_dir() else path
        if not path.is_file():
            raise SystemExit(f"{source}: no questions.jsonl and not a question file")
        result[source] = {name: span_table(rows) for name, rows in spans(read_log(path), args.windows).items()}
    print(json.dumps(result, indent=1))
    return result


if __name__ == "__main__":
    main()
