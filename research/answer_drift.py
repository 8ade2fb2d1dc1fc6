"""What did a teacher's updates change: the questions it writes, or the answers it gives them?

For a teacher run (`RUN/questions.jsonl`, one row per question with its outer step) the outer steps are cut into
`--windows` equal spans; for a question file (`questions/grounded_t.jsonl`: a trained teacher's fresh questions)
the file is one span. Per span: the share of each question kind (the arithmetic world's `question_kind`), and per
kind the share of answers of each class of `answer_class`, and the share of the wrong answers that lie below the
truth. A teacher that learns to write the stones that teach moves the kind shares; one that learns something about
answers moves the classes, or the side of the truth its errors fall on.

    python research/answer_drift.py runs/main/soar runs/main/intrinsic runs/main/questions/grounded_t.jsonl \
        --plot runs/answer-drift.png

Prints one JSON object, by source and span; `--plot` draws, per outer step of each teacher run, the share of
right answers and the share of wrong answers below the truth.
"""

from __future__ import annotations

import argparse
import json
from collections import Counter
from pathlib import Path

from soar.core.io import DataError, read_log
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
    solve,
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


def error_side(question: str, answer: str) -> bool | None:
    """True when a wrong answer lies below the truth (`signed_error` < 0), False when above; None when it is right
    or the question or answer does not parse."""
    truth, a = solve(question), parse_int(answer)
    if truth is None or a is None or a == truth:
        return None
    return signed_error(a, truth) < 0


def span_table(rows: list[dict]) -> dict:
    """Share of each question kind; per kind its count, the share of each answer class, and the share of its
    wrong (parsed) answers that lie below the truth (None without any)."""
    kinds: dict[str, Counter] = {}
    sides: dict[str, Counter] = {}
    for r in rows:
        kind, answer = question_kind(r["question"]) or "unparsed", str(r["answer"])
        kinds.setdefault(kind, Counter())[answer_class(r["question"], answer)] += 1
        side = error_side(r["question"], answer)
        if side is not None:
            sides.setdefault(kind, Counter())[side] += 1
    n = sum(sum(c.values()) for c in kinds.values())
    out = {"n": n}
    for kind in (*KINDS, "unparsed"):
        c = kinds.get(kind)
        if c:
            total = sum(c.values())
            shares = {cls: round(c[cls] / total, 3) for cls in CLASSES if c[cls]}
            side = sides.get(kind, Counter())
            below = round(side[True] / side.total(), 3) if side.total() else None
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


def per_step(rows: list[dict]) -> list[dict]:
    """Per outer step: the share of answers that are right, and of the wrong (parsed) ones that lie below the truth
    (None without any); rows without a parsable question are left out."""
    by_step: dict[int, list[tuple[bool, bool | None]]] = {}
    for r in rows:
        if solve(r["question"]) is not None:
            q, a = r["question"], str(r["answer"])
            by_step.setdefault(r["step"], []).append((answer_class(q, a) == "right", error_side(q, a)))
    out = []
    for step, judged in sorted(by_step.items()):
        sides = [side for _, side in judged if side is not None]
        right = sum(ok for ok, _ in judged) / len(judged)
        out.append({"step": step, "right": right, "below": sum(sides) / len(sides) if sides else None})
    return out


def drift_plot(runs: dict[str, list[dict]], path: str | Path) -> None:
    """Two panels: per outer step of each teacher run, the share of right answers and of wrong ones below the truth."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 3.4), sharex=True)
    for name, steps in runs.items():
        xs = [s["step"] for s in steps]
        axes[0].plot(xs, [s["right"] for s in steps], marker=".", label=name)
        axes[1].plot(xs, [s["below"] for s in steps], marker=".", label=name)
    for ax, title in zip(axes, ("teacher answers right", "wrong answers below the truth"), strict=True):
        ax.set_title(title, fontsize=9)
        ax.set_xlabel("outer step")
        ax.set_ylim(0, 1)
        ax.grid(alpha=0.3)
    axes[1].axhline(0.5, color="grey", lw=0.8, ls="--")
    axes[0].set_ylabel("share")
    axes[1].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("sources", nargs="+", help="teacher run folders (with questions.jsonl) or question files")
    ap.add_argument("--windows", type=int, default=4, help="spans of outer steps per teacher run")
    ap.add_argument("--plot", default=None, help="a PNG path: right answers and errors below the truth per step")
    args = ap.parse_args(argv)
    if args.windows < 1:
        raise SystemExit(f"--windows must be at least 1 (got {args.windows})")
    result, steps = {}, {}
    for source in args.sources:
        path = Path(source)
        path = path / "questions.jsonl" if path.is_dir() else path
        if not path.is_file():
            raise SystemExit(f"{source}: no questions.jsonl and not a question file")
        try:
            rows = read_log(path)
        except DataError as e:
            raise SystemExit(str(e)) from None
        if any("question" not in r or "answer" not in r for r in rows):
            raise SystemExit(f"{path}: every row needs a question and an answer")
        result[source] = {name: span_table(part) for name, part in spans(rows, args.windows).items()}
        if rows and "step" in rows[0]:
            steps[source] = per_step(rows)
    if args.plot:
        if not steps:
            raise SystemExit("--plot needs at least one teacher run folder (a question file has no outer steps)")
        names = [Path(src).name for src in steps]
        labels = names if len(set(names)) == len(names) else list(steps)  # folder names, unless two share one
        drift_plot(dict(zip(labels, steps.values(), strict=True)), args.plot)
    print(json.dumps(result, indent=1))
    return result


if __name__ == "__main__":
    main()
