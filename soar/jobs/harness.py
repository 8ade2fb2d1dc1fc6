"""The experiment harness of the main job and the premise: resumable (arm x seed) student runs, each
trained, evaluated on the held-out hard test set and appended to results.jsonl; a finished pair is kept."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from soar.core import seeds
from soar.core.io import append_jsonl, read_log, write_jsonl
from soar.core.problems import Problem
from soar.engine.evaluate import EvalConfig, aggregate, evaluate
from soar.world import World

ARM_NAMES = {
    "base": "Base model",
    "hard_only": "Hard-Only",
    "curriculum": "Oracle curriculum",
    "base_t": "Base-T",
    "grounded_t": "Grounded-T",
    "intrinsic_t": "Intrinsic-T",
    "pq": "PQ",
    "ps": "PS",
}
"""every arm of every experiment, in report order, with its name in the paper"""

TrainArm = Callable[[str, int], tuple[object, list[dict]] | None]
"""(arm, seed) -> (the model to evaluate, its training history), or None to skip the pair"""


def run_grid(
    out: Path,
    arms: tuple[str, ...],
    student_seeds: tuple[int, ...],
    train: TrainArm,
    tokenizer,
    world: World,
    test: list[Problem],
    eval_cfg: EvalConfig,
    max_new_tokens: int,
) -> list[dict]:
    """Train and evaluate every (arm, seed) not yet in `out/results.jsonl`; returns all result rows."""
    results = out / "results.jsonl"
    done = {(r["arm"], r["seed"]) for r in read_log(results)} if results.exists() else set()  # a torn row: redone
    for seed in student_seeds:
        for arm in arms:
            if (arm, seed) in done:
                continue
            t0 = time.time()
            trained = train(arm, seed)
            if trained is None:
                continue
            model, history = trained
            if history:
                write_jsonl(out / f"train_{arm}_seed{seed}.jsonl", history)
            summary, records = evaluate(model, tokenizer, world, test, eval_cfg, seeds.eval_seed(seed), max_new_tokens)
            write_jsonl(out / f"eval_{arm}_seed{seed}.jsonl", records)
            append_jsonl(results, [{"arm": arm, "seed": seed, **summary, "seconds": round(time.time() - t0, 1)}])
            top = eval_cfg.ks[-1]
            print(
                f"[seed {seed}] {ARM_NAMES.get(arm, arm)}: pass@1={summary['pass@1']:.4f} "
                f"pass@{top}={summary[f'pass@{top}']:.4f} solved={summary['solved']}"
            )
    return read_log(results) if results.exists() else []


def summarize(results: list[dict]) -> dict[str, dict[str, tuple[float, float]]]:
    """Mean and SD over seeds of every metric, per arm, in ARM_NAMES order."""
    by_arm: dict[str, list[dict]] = {}
    for r in results:
        by_arm.setdefault(r["arm"], []).append(r)
    order = [a for a in ARM_NAMES if a in by_arm] + [a for a in by_arm if a not in ARM_NAMES]
    return {a: aggregate(by_arm[a]) for a in order}
