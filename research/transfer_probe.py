"""Does the premise's stone phase lift the hard set? The curve behind point 3, in minutes instead of a premise.

The premise trains a student `curriculum_steps` RLOO steps on look-ahead-2 stepping stones, then on the hard
set, and reports held-out pass@32 at the end. When a curriculum arm ends at 0 the premise cannot say why: did
the stones teach nothing, or did they teach care at look-ahead 2 that never reached look-ahead 4? This probe
runs only the stone phase of one arm (`curriculum_steps` steps on stones alone, whatever the config's `mode`),
with the premise config's model, stones and RLOO settings, and every
`--every` steps measures on the student being trained:
- care at look-ahead 2 / 3 / 4 (`world_probe.care`: a hard step right when the value before it is right),
  and of the hard steps written wrong, the share that are one designed slip (`designed_slip_share`);
- the stones' true accuracy, whatever answers the arm trains on (`stone_pass1`);
- the hard train set's per-sample success, the Rao-Blackwellised mean estimate of
  `soar.jobs.hardset.success_estimates` over its first `--hard-n` problems: the premise's hard phase (100
  steps of 64 samples) sees its first successes only when this reaches about 1e-4.

    python research/transfer_probe.py --config configs/premise.yaml --arm curriculum --out runs/tp-oracle.json
    python research/transfer_probe.py --config configs/premise.yaml --arm self_answered --out runs/tp-self.json
    python research/transfer_probe.py --table runs/tp-oracle.json runs/tp-self.json

Arms: `curriculum` (true answers, the premise's oracle curriculum) and `self_answered` (the frozen base model's
own temperature-1 answers). Two arms run side by side as two processes (`--threads 1` each). Prints one JSON
object (also written to `--out`, after every point); `--table` prints the runs as one markdown table.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import time
from dataclasses import replace
from pathlib import Path

import torch

from soar.core.config import ConfigError, load_config
from soar.core.io import atomic_write_text
from soar.core.problems import load_problems
from soar.engine.model import clone_model, load_policy
from soar.engine.rloo import train_rloo
from soar.engine.sampling import sample
from soar.jobs.hardset import success_estimates
from soar.jobs.premise import PremiseConfig, parse_stones, self_answered_batches, stone_batches
from soar.world import ARITHMETIC
from soar.world.arithmetic import make_problem

sys.path.insert(0, str(Path(__file__).resolve().parent))
from world_probe import care, estimate_summary  # noqa: E402  (a sibling research script)

ARMS = ("curriculum", "self_answered")


class _StonePhaseOver(Exception):
    """Raised after the last stone step: the premise would switch to the hard set here."""


def stone_pass1(model, tok, specs, n: int, k: int, min_run: int, max_run: int, seed: int, max_new: int) -> float:
    """Share of k samples right on n fresh stones (true answers), drawn like the premise's stones."""
    rng = random.Random(seed)
    probs = [make_problem(*rng.choice(specs), rng, min_run=min_run, max_run=max_run) for _ in range(n)]
    rows = sample(
        model, tok, [ARITHMETIC.student_prompt(p.question) for p in probs], k, max_new_tokens=max_new, seed=seed
    )
    return sum(ARITHMETIC.solves(p.answer, s.text) for p, r in zip(probs, rows, strict=True) for s in r) / (n * k)


def hard_estimate(model, tok, problems, k: int, seed: int) -> dict:
    est, hits = success_estimates(model, tok, ARITHMETIC, problems, k, seed)
    mean, median_log10 = estimate_summary(est)
    return {"mean": mean, "median_log10": median_log10, "sampled_successes": sum(hits)}


def measure(model, tok, cfg: PremiseConfig, hard, args) -> dict:
    """Every measurement of one point of the curve, on fixed problems and seeds (the same at every point)."""
    t0 = time.time()
    specs = parse_stones(cfg.stones)
    was_training = model.training
    model.eval()
    cares = care(model, tok, args.care_n, args.care_k, args.seed)
    row = {
        "care": {L: v["care"] for L, v in cares.items()},
        "designed_slip_share": {L: v["designed_slip_share"] for L, v in cares.items()},
        "stone_pass1": round(
            stone_pass1(
                model,
                tok,
                specs,
                args.care_n,
                args.care_k,
                cfg.stone_min_run,
                cfg.stone_max_run,
                args.seed + 7,
                cfg.max_new_tokens,
            ),
            4,
        ),
        "hard": hard_estimate(model, tok, hard, args.hard_k, args.seed + 11),
    }
    model.train(was_training)
    row["measure_s"] = round(time.time() - t0, 1)
    return row


def settings(args) -> PremiseConfig:
    """The premise config, its stones checked (a bad look-ahead range fails here, before any model loads)."""
    cfg = load_config(PremiseConfig, args.config, args.set)
    make_problem("mix", 1, random.Random(0), min_run=cfg.stone_min_run, max_run=cfg.stone_max_run)
    for name in ("model", "hard_dir"):
        if not Path(getattr(cfg, name)).exists():
            raise FileNotFoundError(f"{name} {getattr(cfg, name)} does not exist")
    return cfg


def run(args, cfg: PremiseConfig) -> dict:
    torch.set_num_threads(args.threads)
    steps = args.steps if args.steps is not None else cfg.curriculum_steps
    rloo = cfg.rloo if steps <= cfg.rloo.steps else replace(cfg.rloo, steps=steps)
    base, tok = load_policy(cfg.model)
    hard = load_problems(Path(cfg.hard_dir) / "train.jsonl", ARITHMETIC.in_grammar)[: args.hard_n]
    stones = stone_batches(parse_stones(cfg.stones), cfg.rloo.batch_size, cfg.stone_min_run, cfg.stone_max_run)
    batches = (
        self_answered_batches(stones, base, tok, cfg.max_new_tokens, cfg.answer_prompt)
        if args.arm == "self_answered"
        else stones
    )
    model = clone_model(base)
    curve: list[dict] = []
    rewards: list[float] = []
    t0 = time.time()

    def result() -> dict:
        return {
            "config": args.config,
            "model": cfg.model,
            "arm": args.arm,
            "steps": steps,
            "lr": rloo.lr,
            "seed": args.seed,
            "hard_problems": len(hard),
            "hard_k": args.hard_k,
            "seconds": round(time.time() - t0, 1),
            "curve": curve,
        }

    def add_point(point: dict) -> None:  # --out rewritten after every point: a crash keeps the curve so far
        curve.append({**point, **measure(model, tok, cfg, hard, args)})
        print(json.dumps(curve[-1]), flush=True)
        if args.out:
            Path(args.out).parent.mkdir(parents=True, exist_ok=True)
            atomic_write_text(Path(args.out), json.dumps(result(), indent=1))

    def on_step(step: int, metrics: dict) -> None:
        rewards.append(metrics["accuracy"])
        if (step + 1) % args.every == 0 or step + 1 == steps:
            add_point({"step": step + 1, "trained_on_match": round(statistics.mean(rewards), 4)})
            rewards.clear()
        if step + 1 == steps:
            raise _StonePhaseOver

    add_point({"step": 0})
    try:  # the learning-rate schedule runs over all the premise's rloo.steps, as in the premise's stone phase
        train_rloo(model, tok, ARITHMETIC, batches, rloo, args.seed, cfg.max_new_tokens, on_step=on_step)
    except _StonePhaseOver:
        pass
    return result()


def _by_lookahead(values: dict) -> str:
    return " / ".join("-" if values.get(L) is None else f"{values[L]:.3f}" for L in ("L2", "L3", "L4"))


def table(paths: list[str]) -> str:
    lines = [
        "| arm | seed | step | trained-on match | stones right | care L2 / L3 / L4 | designed slips L2 / L3 / L4 "
        "| hard mean (median log10) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for p in paths:
        r = json.loads(Path(p).read_text())
        for c in r["curve"]:
            cares, slips = (_by_lookahead(c.get(key, {})) for key in ("care", "designed_slip_share"))
            match = c.get("trained_on_match")
            lines.append(
                f"| {r['arm']} | {r.get('seed', '-')} | {c['step']} | {'-' if match is None else f'{match:.3f}'} | "
                f"{c['stone_pass1']:.3f} | "
                f"{cares} | {slips} | {c['hard']['mean']:.2g} ({c['hard']['median_log10']}) |"
            )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict | None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--config", default="configs/premise.yaml", help="a premise config (model, hard set, stones, rloo)")
    ap.add_argument("--set", action="append", default=[], help="override a premise config key (as soar premise)")
    ap.add_argument("--arm", choices=ARMS, default="curriculum")
    ap.add_argument("--steps", type=int, default=None, help="stone steps (default: the config's curriculum_steps)")
    ap.add_argument("--every", type=int, default=50, help="measure every this many steps")
    ap.add_argument("--care-n", type=int, default=40, help="problems per look-ahead for care and stone accuracy")
    ap.add_argument("--care-k", type=int, default=16, help="samples per problem for care and stone accuracy")
    ap.add_argument("--hard-n", type=int, default=40, help="hard train problems in the mean estimate")
    ap.add_argument("--hard-k", type=int, default=32, help="scratchpads per hard problem")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", default="")
    ap.add_argument("--table", nargs="+", default=[], help="print these probe JSON files as one table and stop")
    args = ap.parse_args(argv)
    if args.table:
        try:
            print(table(args.table))
        except (OSError, ValueError, KeyError) as e:  # a missing or foreign file: say which, no traceback
            ap.error(f"--table: not a transfer_probe result: {e}")
        return None
    if args.every < 1 or (args.steps is not None and args.steps < 1):
        ap.error("--every and --steps must be at least 1")
    try:
        cfg = settings(args)
    except (ConfigError, FileNotFoundError, ValueError) as e:  # a wrong config, path or stone range: no traceback
        ap.error(str(e))
    result = run(args, cfg)  # written to --out as it goes
    print(json.dumps(result, indent=1))
    return result


if __name__ == "__main__":
    main()
