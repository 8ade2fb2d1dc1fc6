"""How hard is a hard set for the base model, really? Three estimates of per-sample success, and whether the
scratchpad carries the computation (docs/world-design.md, "Screening deeper").

For the first `--n` problems of each JSONL file, with `--k` samples each at temperature 1:
- `sampled_pass1`: the share of correct samples (resolves about 1 / (n k));
- `mean_estimate`: the Rao-Blackwellised estimate of `soar.jobs.hardset.success_estimates` (same samples' kind);
- `mean_solution_bound`: the mean probability of writing the canonical worked solution exactly (a lower bound);
- scratchpad: for every step written right after a wrong register value, does the next value continue the
  written (wrong) chain or return to the true one? Success compounds over steps only when errors propagate.

    python research/hardness_probe.py data/hard/train.jsonl --n 40 --k 64
    python research/hardness_probe.py runs/my-hard/train.jsonl --model runs/my-model

Prints one JSON object per file.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
from collections import Counter

import torch

from soar.core.problems import load_problems
from soar.engine.model import DEFAULT_MODEL, load_policy
from soar.engine.sampling import sample
from soar.jobs.hardset import solution_logprobs, success_estimates
from soar.world import ARITHMETIC
from soar.world.arithmetic import apply_op, parse_question, values, written_values


def scratchpad_counts(question: str, completion: str) -> Counter:
    """Per completion: steps written after a wrong value, and how many of those continue the written chain
    (apply the step's operation to the wrong value) or return to the true chain."""
    parsed, true = parse_question(question), values(question)
    out = Counter(after_wrong=0, continues_written=0, returns_to_true=0)
    if parsed is None or true is None:
        return out
    written = written_values(completion)
    for i in range(1, len(written)):
        op, b = parsed[1][i]
        if written[i - 1] != true[i]:
            out["after_wrong"] += 1
            out["continues_written"] += written[i] == apply_op(written[i - 1], op, b)
            out["returns_to_true"] += written[i] == true[i + 1]
    return out


def probe(model, tok, path: str, n: int, k: int, seed: int) -> dict:
    problems = load_problems(path)[:n]
    rows = sample(model, tok, [ARITHMETIC.student_prompt(p.question) for p in problems], k, seed=seed)
    hits = 0
    pad: Counter = Counter()
    for p, r in zip(problems, rows, strict=True):
        for s in r:
            hits += ARITHMETIC.solves(p.answer, s.text)
            pad += scratchpad_counts(p.question, s.text)
    est, _ = success_estimates(model, tok, ARITHMETIC, problems, k, seed + 1)
    bound = solution_logprobs(model, tok, ARITHMETIC, problems)
    wrong = max(pad["after_wrong"], 1)
    return {
        "file": path,
        "problems": len(problems),
        "k": k,
        "sampled_pass1": round(hits / (len(problems) * k), 5),
        "mean_estimate": float(f"{statistics.mean(est):.3g}"),
        "median_log10_estimate": round(statistics.median(math.log10(max(e, 1e-30)) for e in est), 2),
        "mean_solution_bound": float(f"{statistics.mean(math.exp(b) for b in bound):.3g}"),
        "after_wrong_value": pad["after_wrong"],
        "continues_written_chain": round(pad["continues_written"] / wrong, 4),
        "returns_to_true_chain": round(pad["returns_to_true"] / wrong, 4),
    }


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("files", nargs="+")
    ap.add_argument("--model", default=str(DEFAULT_MODEL))
    ap.add_argument("--n", type=int, default=40)
    ap.add_argument("--k", type=int, default=64)
    ap.add_argument("--seed", type=int, default=9)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    model, tok = load_policy(args.model)
    for f in args.files:
        print(json.dumps(probe(model, tok, f, args.n, args.k, args.seed)), flush=True)


if __name__ == "__main__":
    main()
