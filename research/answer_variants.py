"""The same questions with other answers: does a question set teach by its questions or by its answers' errors?

Writes a copy of an arithmetic question file (one a teacher wrote, e.g. `runs/main/questions/grounded_t.jsonl`)
with its answers replaced:
- true: the world's true answer everywhere (the set's structure alone);
- mirrored: each wrong answer reflected about the truth (t + e becomes t - e, modulo 10^5): the same errors of
  the same size with the opposite sign; right and unparsed answers are kept;
- below / above: every answer one column off the truth, t - 10^k or t + 10^k with k drawn uniformly from 0..3
  (seeded by `--seed`): no right answer, a bias of one sign alone (the careless student's slip is "above").

    python research/answer_variants.py runs/main/questions/grounded_t.jsonl --variant mirrored \
        --out runs/gt-mirrored.jsonl

Then train the main job's student on it with `research/dose_probe.py --set NAME=FILE`. Prints one JSON line: the
file written, and how many answers changed.
"""

from __future__ import annotations

import argparse
import json
import random
from pathlib import Path

from soar.core.io import DataError, read_jsonl, write_jsonl
from soar.world.arithmetic import MOD, fmt, parse_int, signed_error, solve

VARIANTS = ("true", "mirrored", "below", "above")


def variant_answer(question: str, answer: str, variant: str, column: int = 0) -> str:
    """The answer of `variant` for one question (`column`: the k of below / above); `answer` itself where the
    question, or for mirrored the answer, does not parse."""
    truth, a = solve(question), parse_int(answer)
    if truth is None:
        return answer
    if variant == "true":
        return fmt(truth)
    if variant in ("below", "above"):
        return fmt((truth + (-1 if variant == "below" else 1) * 10**column) % MOD)
    if variant != "mirrored":
        raise ValueError(f"unknown variant {variant!r}; choose from {', '.join(VARIANTS)}")
    if a is None or a == truth:
        return answer
    return fmt((truth - signed_error(a, truth)) % MOD)


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("questions", help="a question file (JSON lines with question and answer)")
    ap.add_argument("--variant", required=True, choices=VARIANTS)
    ap.add_argument("--out", required=True)
    ap.add_argument("--seed", type=int, default=0, help="of the columns of below / above")
    args = ap.parse_args(argv)
    if not Path(args.questions).is_file():
        raise SystemExit(f"{args.questions}: no such question file")
    try:
        rows = read_jsonl(args.questions, required=("question", "answer"))
    except DataError as e:
        raise SystemExit(str(e)) from None
    changed, rng = 0, random.Random(args.seed)
    for r in rows:
        new = variant_answer(r["question"], str(r["answer"]), args.variant, rng.randrange(4))
        changed += new != str(r["answer"])
        r["answer"] = new
    write_jsonl(args.out, rows)
    result = {"out": args.out, "variant": args.variant, "questions": len(rows), "changed": changed}
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
