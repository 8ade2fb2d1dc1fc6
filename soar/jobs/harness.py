"""The experiment harness of the main job and the premise: resumable (arm x seed) student runs, each
trained, evaluated on the held-out hard test set and appended to results.jsonl; a finished pair is kept.
The pairs run on `soar.core.parallel.Workers` (in this process, or side by side on worker processes)."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from soar.core import seeds
from soar.core.io import append_jsonl, read_log, write_jsonl
from soar.core.parallel import Workers
from soar.core.problems import Problem
from soar.engine.evaluate import EvalConfig, aggregate, evaluate
from soar.world import World

ARM_NAMES = {
    "base": "Base model",
    "hard_only": "Hard-Only",
    "hard_only_g128": "Hard-Only (group 128)",
    "curriculum": "Oracle curriculum",
    "self_answered": "Self-answered curriculum",
    "base_t": "Base-T",
    "grounded_t": "Grounded-T",
    "grounded_t_np": "Grounded-T (no promotion)",
    "intrinsic_t": "Intrinsic-T",
    "pq": "PQ",
    "pq_oracle": "PQ (oracle answers)",
    "ps": "PS",
}
"""every arm of every experiment, in report order, with its name in the paper"""


@dataclass
class Trained:
    """One arm's student, ready for its held-out evaluation."""

    model: object
    history: list[dict] = field(default_factory=list)
    """its training rows (empty for an arm that is not trained)"""
    evaluation: tuple[dict, list[dict]] | None = None
    """(summary, records) that replace the final evaluation (the slope checkpoint rule's averaged ones)"""
    extra: dict = field(default_factory=dict)
    """more columns of its result row (the transfer sets' pass@k: `transfer/<set>/pass@k`)"""


TrainArm = Callable[[str, int], Trained | None]
"""(arm, seed) -> the trained student, or None to skip the pair"""


@dataclass
class GridContext:
    """What a worker needs to train and evaluate any (arm, seed) pair; built once per worker."""

    train: TrainArm
    tokenizer: object
    world: World
    test: list[Problem]
    eval_cfg: EvalConfig
    max_new_tokens: int


def run_pair(ctx: GridContext, pair: tuple[str, int]) -> dict | None:
    """Train and evaluate one (arm, seed): its result row, eval records and training history."""
    arm, seed = pair
    t0 = time.time()
    trained = ctx.train(arm, seed)
    if trained is None:
        return None
    summary, records = trained.evaluation or evaluate(
        trained.model, ctx.tokenizer, ctx.world, ctx.test, ctx.eval_cfg, seeds.eval_seed(seed), ctx.max_new_tokens
    )
    row = {"arm": arm, "seed": seed, **summary, **trained.extra, "seconds": round(time.time() - t0, 1)}
    return {"row": row, "records": records, "history": trained.history}


UNTRAINED = ("base", "ps")
"""arms that are evaluated without training (the base model; PS, the promoted student as it is): minutes
shorter than the others"""


def run_grid(out: Path, arms: tuple[str, ...], student_seeds: tuple[int, ...], workers: Workers) -> list[dict]:
    """Train and evaluate every (arm, seed) not yet in `out/results.jsonl` on `workers` (whose context is a
    GridContext); each finished pair is filed at once by this process. Returns all result rows in (seed,
    arm) order, whatever order they finished in.

    The untrained arms are handed out last, so that on several workers they fill the time the others leave
    (longest first), instead of delaying a training that then runs alone at the end."""
    results = out / "results.jsonl"
    done = {(r["arm"], r["seed"]) for r in read_log(results)} if results.exists() else set()  # a torn row: redone
    pairs = [(arm, seed) for seed in student_seeds for arm in arms if (arm, seed) not in done]
    pairs.sort(key=lambda pair: pair[0] in UNTRAINED)  # stable: otherwise in (seed, arm) order
    for i, res in workers.run(run_pair, pairs):
        arm, seed = pairs[i]
        if res is None:
            continue
        if res["history"]:
            write_jsonl(out / f"train_{arm}_seed{seed}.jsonl", res["history"])
        write_jsonl(out / f"eval_{arm}_seed{seed}.jsonl", res["records"])
        append_jsonl(results, [res["row"]])
        top = max(k for k in (int(key[5:]) for key in res["row"] if key.startswith("pass@")))
        print(
            f"[seed {seed}] {ARM_NAMES.get(arm, arm)}: pass@1={res['row']['pass@1']:.4f} "
            f"pass@{top}={res['row'][f'pass@{top}']:.4f} solved={res['row']['solved']}"
        )
    rows = read_log(results) if results.exists() else []
    rank = {a: j for j, a in enumerate(arms)}
    return sorted(rows, key=lambda r: (r["seed"], rank.get(r["arm"], len(rank)), r["arm"]))


def hard_successes(history: list[dict], start: int, from_row: int = 0) -> tuple[int | None, int]:
    """(the first step from `start` on whose batch held a right answer, or None; how many such steps): when
    the hard phase drew its first success, and whether it bootstrapped (one lucky success that the
    learning rate turns into care on every hard problem, or not). `from_row`: the batch's hard problems start
    at this row (a mixed batch's stones come first), read from the log's per-prompt accuracy."""

    def hit(row: dict) -> bool:
        return row["accuracy"] > 0 if from_row == 0 else max(row["prompt_accuracy"][from_row:], default=0) > 0

    hits = [row["step"] for row in history if row["step"] >= start and hit(row)]
    return (hits[0] if hits else None), len(hits)


def hard_phase_counts(
    out: Path, results: list[dict], phase_of: Callable[[str], tuple[int, int] | None]
) -> dict[tuple[str, int], tuple]:
    """(arm, seed) -> hard_successes of its training log in `out`, for the pairs whose `phase_of(arm)` (the step
    its hard phase starts, the row of its batches where the hard problems start) is not None and that have a
    log (a resumed run has only the files)."""
    counts = {}
    for r in results:
        phase = phase_of(r["arm"])
        log = out / f"train_{r['arm']}_seed{r['seed']}.jsonl"
        if phase is not None and log.exists():
            counts[r["arm"], r["seed"]] = hard_successes(read_log(log), *phase)
    return counts


def summarize(results: list[dict]) -> dict[str, dict[str, tuple[float, float]]]:
    """Mean and SD over seeds of every metric, per arm, in ARM_NAMES order."""
    by_arm: dict[str, list[dict]] = {}
    for r in results:
        by_arm.setdefault(r["arm"], []).append(r)
    order = [a for a in ARM_NAMES if a in by_arm] + [a for a in by_arm if a not in ARM_NAMES]
    return {a: aggregate(by_arm[a]) for a in order}
