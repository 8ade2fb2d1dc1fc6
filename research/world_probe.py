"""Can a base model's own answers teach? Four cheap measurements of a careless-student checkpoint (issue 13).

For a model folder, on fresh problems of the arithmetic world (student prompt, temperature 1):
(a) teacher accuracy: the model's own answer (one sample, as the two-turn teacher answers: rl_probe's
    `self_answered`; at `--answer-temperature`, as the loop's `teacher.answer_temperature`, 0 = greedy; in the
    prompt `--answer-prompt`, as `teacher.answer_prompt`) on `--stones` mix level-1 problems whose hard step
    has look-ahead 2, and (a') on as many of look-ahead 2, 3 and 4 (fresh draws);
(b) on the stones whose own answer is wrong (and parses), `--k-students` student samples each: the share
    that reproduce the wrong answer and the share that give the right one (their ratio with a 95% bootstrap
    interval over stones: is it at least 2?); the wrong answers are also
    sorted by kind (`slip_kind`: one designed diverse slip at the hard step, or any other error), and where
    each wrong answer's first wrong value is (`first_error`: before, at or after the hard step, and how it
    differs from the truth);
(c) care by look-ahead L = 2, 3, 4: among samples whose value before the hard step of a level-1 problem is
    right, the share that write the hard step right, and of those that write it wrong, the share whose wrong
    value is one designed slip (`designed_slip_share`);
(d) the mean and median Rao-Blackwellised success estimate (`soar.jobs.hardset.success_estimates`) on level-STEPS
    mix problems whose hard steps all have look-ahead `--min-run`..`--max-run`.

    python research/world_probe.py --model runs/m17b --out runs/m17b-probe.json

Prints one JSON object (also written to --out). Numbers measured with it: docs/world-design.md.
"""

from __future__ import annotations

import argparse
import json
import math
import random
import statistics
import time
from collections import Counter
from pathlib import Path

import torch

from soar.engine.model import DEFAULT_MODEL, load_policy
from soar.engine.sampling import sample
from soar.engine.setup import Setup
from soar.jobs.hardset import success_estimates
from soar.world import ARITHMETIC
from soar.world.arithmetic import (
    MOD,
    STEPS,
    _longest_run,
    fmt,
    make_problem,
    parse_int,
    parse_question,
    values,
    written_values,
)
from soar.world.base import ANSWER_PROMPTS
from soar.world.verifiers import extract_boxed

MAX_NEW_TOKENS = Setup().max_new_tokens
"""the student's completion length (a completion of every register value and the box)"""


def hard_index(runs: list[int]) -> int:
    """The index of the only hard step of a level-1 problem (its `meta["runs"]`)."""
    hard = [i for i, r in enumerate(runs) if r >= 2]
    if len(hard) != 1:
        raise ValueError(f"expected one hard step, got runs {runs}")
    return hard[0]


def care_outcome(question: str, completion: str, i: int) -> bool | None:
    """None when the value before step i is not written right; else whether step i's value is written right.

    The value before step 0 is the start value, which a completion writes first (without `=`)."""
    true = values(question)
    if true is None:
        return None
    written = written_values(completion)
    if i == 0:
        before_ok = completion.strip().startswith(fmt(true[0]))
    else:
        before_ok = len(written) >= i and written[i - 1] == true[i]
    if not before_ok:
        return None
    return len(written) > i and written[i] == true[i + 1]


def slip_kind(question: str, answer: int, i: int) -> str:
    """How a wrong final answer of a level-1 problem differs from the truth: "designed" when it is one
    diverse slip at hard step i (+d x 10^start, d in 1..9), "other" otherwise (habitual errors)."""
    parsed, true = parse_question(question), values(question)
    if parsed is None or true is None:
        return "other"
    op, b = parsed[1][i]
    _, start = _longest_run(true[i], op, b)
    delta = (answer - true[-1]) % MOD
    return "designed" if delta in designed_deltas(start) else "other"


def hard_step_slip(question: str, completion: str, i: int) -> str | None:
    """How a completion's value at hard step i differs from the truth when it is wrong: "designed" for one
    designed diverse slip (+d x 10^start), else "other"; None when it is right or not written."""
    parsed, true = parse_question(question), values(question)
    written = written_values(completion)
    if parsed is None or true is None or len(written) <= i or written[i] == true[i + 1]:
        return None
    _, start = _longest_run(true[i], *parsed[1][i])
    return "designed" if (written[i] - true[i + 1]) % MOD in designed_deltas(start) else "other"


def designed_deltas(start: int) -> set[int]:
    """The differences from the truth a designed diverse slip makes (+d x 10^start, d in 1..9; start at most 3)."""
    return {d * 10 ** min(start, 3) for d in range(1, 10)}


def first_error(question: str, completion: str, i: int) -> tuple[str, str] | None:
    """Where a level-1 completion first writes a wrong register value, relative to its hard step i: ("before" |
    "hard" | "after", how that value differs from the truth: "designed" for a designed slip at the hard step,
    else "+10^(start+j)" / "-10^(start+j)" for a single power of ten, j counted from the bottom column of the
    hard step's look-ahead run, else "other"). None when every value written is right."""
    parsed, true = parse_question(question), values(question)
    if parsed is None or true is None:
        return None
    written = written_values(completion)
    j = next((j for j, (w, t) in enumerate(zip(written, true[1:], strict=False)) if w != t), None)
    if j is None:
        return None
    where = "hard" if j == i else ("before" if j < i else "after")
    _, start = _longest_run(true[i], *parsed[1][i])
    delta = (written[j] - true[j + 1]) % MOD
    if where == "hard" and delta in designed_deltas(start):
        return where, "designed"
    label = "other"
    for sign, d in (("+", delta), ("-", (MOD - delta) % MOD)):
        if d and 10 ** round(math.log10(d)) == d:
            label = f"{sign}10^(start{round(math.log10(d)) - start:+d})"
    return where, label


def share(num: int, den: int) -> float | None:
    return round(num / den, 4) if den else None


def ratio_interval(counts: list[tuple[int, int]], draws: int = 2000, seed: int = 0) -> tuple[float, float] | None:
    """95% bootstrap interval of sum(right) / sum(reproduce) over stones; `counts`: per wrongly answered stone,
    (student samples reproducing its wrong answer, samples right). Stones are resampled, not samples: the
    samples of one stone share its question. None when a resample can have no reproduction at all."""
    if not counts or sum(r for r, _ in counts) == 0:
        return None
    rng = random.Random(seed)
    ratios = []
    for _ in range(draws):
        pick = [counts[rng.randrange(len(counts))] for _ in counts]
        repro = sum(r for r, _ in pick)
        if repro == 0:
            return None
        ratios.append(sum(g for _, g in pick) / repro)
    ratios.sort()
    return round(ratios[int(0.025 * draws)], 2), round(ratios[int(0.975 * draws) - 1], 2)


def teacher_and_students(
    model, tok, n: int, k: int, seed: int, answer_temperature: float = 1.0, answer_prompt: str = "student", run: int = 2
) -> dict:
    rng = random.Random(seed)
    stones = [make_problem("mix", 1, rng, min_run=run, max_run=run) for _ in range(n)]
    prompts = [ARITHMETIC.answer_prompt(answer_prompt)(p.question) for p in stones]
    outs = sample(model, tok, prompts, 1, temperature=answer_temperature, max_new_tokens=MAX_NEW_TOKENS, seed=seed + 1)
    own = [parse_int(extract_boxed(o[0].text)) for o in outs]
    right = [a is not None and a == int(p.answer) for p, a in zip(stones, own, strict=True)]
    wrong = [(p, a) for p, a, r in zip(stones, own, right, strict=True) if not r and a is not None]
    prompts = [ARITHMETIC.student_prompt(p.question) for p, _ in wrong]
    rows = sample(model, tok, prompts, k, max_new_tokens=MAX_NEW_TOKENS, seed=seed + 2)
    errors = Counter(
        first_error(p.question, o[0].text, hard_index(p.meta["runs"]))
        for p, o, r in zip(stones, outs, right, strict=True)
        if not r
    )
    by_kind: dict[str, list[int]] = {}  # kind -> [stones, samples reproducing, samples right]
    repro = good = 0
    per_stone = []
    for (p, a), row in zip(wrong, rows, strict=True):
        ans = [parse_int(extract_boxed(s.text)) for s in row]
        r, g = sum(x == a for x in ans), sum(x == int(p.answer) for x in ans)
        repro, good = repro + r, good + g
        per_stone.append((r, g))
        c = by_kind.setdefault(slip_kind(p.question, a, hard_index(p.meta["runs"])), [0, 0, 0])
        c[0], c[1], c[2] = c[0] + 1, c[1] + r, c[2] + g
    total = len(wrong) * k
    return {
        "stones": n,
        "teacher_right": share(sum(right), n),
        "teacher_unparsable": sum(a is None for a in own),
        "wrong_stones": len(wrong),
        "students_reproduce_wrong": share(repro, total),
        "students_right": share(good, total),
        "right_over_reproduce": round(good / repro, 2) if repro else None,
        "right_over_reproduce_95ci": ratio_interval(per_stone, seed=seed),
        "by_wrong_kind": {
            kind: {"stones": c[0], "reproduce": share(c[1], c[0] * k), "right": share(c[2], c[0] * k)}
            for kind, c in sorted(by_kind.items())
        },
        "first_error": {
            where: sum(c for e, c in errors.items() if e and e[0] == where) for where in ("before", "hard", "after")
        },
        "first_error_top": [f"{e[0]} {e[1]}: {c}" for e, c in errors.most_common() if e][:8],
    }


def teacher_right(model, tok, n: int, seed: int, temperature: float, answer_prompt: str, run: int) -> float | None:
    """(a') the share of n fresh mix level-1 stones of look-ahead `run` that the model's own answer gets right."""
    rng = random.Random(seed)
    stones = [make_problem("mix", 1, rng, min_run=run, max_run=run) for _ in range(n)]
    prompts = [ARITHMETIC.answer_prompt(answer_prompt)(p.question) for p in stones]
    outs = sample(model, tok, prompts, 1, temperature=temperature, max_new_tokens=MAX_NEW_TOKENS, seed=seed + 1)
    return share(
        sum(parse_int(extract_boxed(o[0].text)) == int(p.answer) for p, o in zip(stones, outs, strict=True)), n
    )


def care(model, tok, n: int, k: int, seed: int) -> dict:
    out = {}
    for run in (2, 3, 4):
        rng = random.Random(seed + run)
        probs = [make_problem("mix", 1, rng, min_run=run, max_run=run) for _ in range(n)]
        prompts = [ARITHMETIC.student_prompt(p.question) for p in probs]
        rows = sample(model, tok, prompts, k, max_new_tokens=MAX_NEW_TOKENS, seed=seed + 10 + run)
        seen = ok = hits = designed = 0
        for p, row in zip(probs, rows, strict=True):
            i = hard_index(p.meta["runs"])
            for s in row:
                hits += ARITHMETIC.solves(p.answer, s.text)
                c = care_outcome(p.question, s.text, i)
                if c is not None:
                    seen, ok = seen + 1, ok + c
                    designed += not c and hard_step_slip(p.question, s.text, i) == "designed"
        out[f"L{run}"] = {
            "care": share(ok, seen),
            "conditioned_samples": seen,
            "pass1": share(hits, n * k),
            "designed_slip_share": share(designed, seen - ok),
        }
    return out


def estimate_summary(est: list[float]) -> tuple[float, float]:
    """The mean (3 significant digits) and the median log10 (2 decimals) of per-problem success estimates."""
    return float(f"{statistics.mean(est):.3g}"), round(statistics.median(math.log10(max(e, 1e-30)) for e in est), 2)


def level5(model, tok, n: int, k: int, min_run: int, max_run: int, seed: int) -> dict:
    rng = random.Random(seed)
    probs = [make_problem("mix", STEPS, rng, min_run=min_run, max_run=max_run) for _ in range(n)]
    est, hits = success_estimates(model, tok, ARITHMETIC, probs, k, seed + 1)
    mean, median_log10 = estimate_summary(est)
    return {
        "problems": n,
        "k": k,
        "look_ahead": f"{min_run}-{max_run}",
        "sampled_successes": sum(hits),
        "mean_estimate": mean,
        "median_log10_estimate": median_log10,
        "max_estimate": float(f"{max(est):.3g}"),
    }


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default=str(DEFAULT_MODEL))
    ap.add_argument("--stones", type=int, default=300, help="(a, b) look-ahead-2 stones the model answers")
    ap.add_argument("--k-students", type=int, default=16, help="(b) student samples per wrongly answered stone")
    ap.add_argument("--care-n", type=int, default=40, help="(c) level-1 problems per look-ahead")
    ap.add_argument("--care-k", type=int, default=32, help="(c) samples per problem")
    ap.add_argument("--l5-n", type=int, default=40, help="(d) level-5 problems")
    ap.add_argument("--l5-k", type=int, default=32, help="(d) scratchpads per problem")
    ap.add_argument("--answer-temperature", type=float, default=1.0, help="(a) the model's own answers (0 = greedy)")
    ap.add_argument("--answer-prompt", default="student", choices=ANSWER_PROMPTS, help="(a) as teacher.answer_prompt")
    ap.add_argument("--min-run", type=int, default=4)
    ap.add_argument("--max-run", type=int, default=4)
    ap.add_argument("--seed", type=int, default=1313)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", default="")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    model, tok = load_policy(args.model)
    t0 = time.time()
    result = {"model": args.model, "args": {k: v for k, v in vars(args).items() if k != "out"}}
    result["teacher"] = teacher_and_students(
        model, tok, args.stones, args.k_students, args.seed, args.answer_temperature, args.answer_prompt
    )
    result["teacher_right_by_lookahead"] = {
        run: teacher_right(
            model, tok, args.stones, args.seed + 10 * run, args.answer_temperature, args.answer_prompt, run
        )
        for run in (2, 3, 4)
    }
    result["care"] = care(model, tok, args.care_n, args.care_k, args.seed + 100)
    result["level5"] = level5(model, tok, args.l5_n, args.l5_k, args.min_run, args.max_run, args.seed + 200)
    result["seconds"] = round(time.time() - t0, 1)
    text = json.dumps(result, indent=1)
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(text + "\n")
    print(text)
    return result


if __name__ == "__main__":
    main()
