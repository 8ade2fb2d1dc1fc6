"""Does a teacher run's grounded reward see the stepping stones its datasets hold? Point 4, read in a real run.

For every dataset of a teacher run (`RUN/questions.jsonl`: one row per question, with its dataset's reward R), the
number of questions of the kind `--kind` (the arithmetic world's `question_kind`, default "stone L2") and how many
of those the teacher answered right; prints per run the mean counts, the correlation of R with each count, and
the datasets of highest R. A reward that sees the stones that teach rises with the right ones.

    python research/reward_vs_stones.py runs/main/soar runs/main/intrinsic

Prints one JSON object per run folder.
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

from soar.core.io import read_log
from soar.world.arithmetic import question_kind


def correlation(a: list[float], b: list[float]) -> float | None:
    """Pearson's r of two equally long lists; None where either is constant."""
    try:
        return statistics.correlation(a, b)
    except statistics.StatisticsError:
        return None


def per_dataset(rows: list[dict], kind: str) -> list[dict]:
    """One entry per (outer step, dataset): its R, size, questions of `kind` and right answers among them."""
    sets: dict[tuple[int, int], list[dict]] = {}
    for r in rows:
        sets.setdefault((r["step"], r["dataset"]), []).append(r)
    out = []
    for (step, dataset), qs in sorted(sets.items()):
        of_kind = [q for q in qs if question_kind(q["question"]) == kind]
        out.append(
            {
                "step": step,
                "dataset": dataset,
                "R": qs[0]["reward"],
                "n": len(qs),
                "kind": len(of_kind),
                "kind_right": sum(q.get("answer_correct") is True for q in of_kind),
            }
        )
    return out


def summary(sets: list[dict], top: int = 5) -> dict:
    """Mean counts, the correlation of R with each count, and the `top` datasets of highest R."""
    rs = [s["R"] for s in sets]
    return {
        "datasets": len(sets),
        "mean_kind": round(statistics.fmean(s["kind"] for s in sets), 3),
        "mean_kind_right": round(statistics.fmean(s["kind_right"] for s in sets), 3),
        "corr_R_kind": correlation(rs, [s["kind"] for s in sets]),
        "corr_R_kind_right": correlation(rs, [s["kind_right"] for s in sets]),
        "top": sorted(sets, key=lambda s: -s["R"])[:top],
    }


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("runs", nargs="+", help="teacher run folders (each with questions.jsonl)")
    ap.add_argument("--kind", default="stone L2", help="a question kind of the arithmetic world")
    args = ap.parse_args(argv)
    result = {}
    for run in args.runs:
        path = Path(run) / "questions.jsonl"
        if not path.is_file():
            raise SystemExit(f"{run}: no questions.jsonl (is it a teacher run folder?)")
        result[run] = summary(per_dataset(read_log(path), args.kind))
    print(json.dumps(result, indent=1))
    return result


if __name__ == "__main__":
    main()
