"""How many right stepping stones must a fixed question set hold to lift the hard set? The main job's PQ arm on
a question file of your choice, in minutes per set instead of a main job.

A PQ student trains on one fixed set (the promoted datasets) for the main job's `student.rloo.steps`, in its
mode (the shipped config: mixed, 4 questions + 4 hard train problems per batch), and is scored on the held-out
hard test set. This probe trains the same student, with the same config and seeds, on each question file given
(`--set name=path.jsonl`, e.g. `research/probe_sets.py --n 32 --right 8` for 32 look-ahead-2 stones with 8
right own answers) and prints per set and seed: the set's size and right answers, held-out pass@1 and
pass@k, and the first training step whose hard rows drew a success (with how many such steps).

    python research/probe_sets.py --model assets/tiny-arith --n 16 --right 4 --out-dir runs/dose/r4
    python research/dose_probe.py --set r4=runs/dose/r4/good.jsonl --seeds 0 --out runs/dose/r4.json
    python research/dose_probe.py --table runs/dose/*.json

`--test-limit` scores the first N test problems only (the main job scores all 157). One torch thread by
default: two probes run side by side on two cores. Prints one JSON object (also written to `--out` after every
student); figures measured with it are in docs/world-design.md.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

from soar.core import seeds
from soar.core.config import ConfigError, load_config
from soar.core.io import atomic_write_text
from soar.core.problems import load_problems
from soar.engine.evaluate import evaluate
from soar.engine.model import load_policy
from soar.jobs.harness import hard_successes
from soar.jobs.main import RunConfig, answers_right, hard_phase, train_student
from soar.world import make_world


def named_files(items: list[str]) -> dict[str, str]:
    """`name=path` pairs -> {name: path}; SystemExit naming the bad item."""
    out = {}
    for item in items:
        name, sep, path = item.partition("=")
        if not sep or not name or not path:
            raise SystemExit(f"--set {item!r}: expected name=path.jsonl")
        if not Path(path).is_file():
            raise SystemExit(f"--set {item!r}: no such file {path}")
        out[name] = path
    return out


def probe_one(cfg: RunConfig, base, tok, world, hard_train, hard_test, problems, seed: int) -> dict:
    """Train one PQ-like student on `problems` and score it on the held-out hard test set."""
    t0 = time.time()
    trained = train_student(base, tok, world, hard_train, problems, cfg.student, seed, cfg.max_new_tokens)
    summary, _ = evaluate(trained.model, tok, world, hard_test, cfg.eval, seeds.eval_seed(seed), cfg.max_new_tokens)
    phase = hard_phase("pq", cfg.student)  # None in pooled mixed mode: hard rows have no fixed place
    first, count = hard_successes(trained.history, *phase) if phase else (None, None)
    last = [row["prompt_accuracy"][: phase[1]] for row in trained.history[-25:]] if phase else []
    set_reward = round(sum(map(sum, last)) / sum(map(len, last)), 4) if last else None
    right, known = answers_right(problems, world)
    return {
        "seed": seed,
        "questions": len(problems),
        "right": right if known else None,
        **{k: round(v, 4) for k, v in summary.items() if k.startswith("pass@")},
        "solved": summary.get("solved"),
        "first_hard_success": first,
        "hard_success_steps": count,
        "set_reward_last25": set_reward,  # accuracy on the set's own answers, last 25 steps (memorised?)
        "seconds": round(time.time() - t0, 1),
    }


def table(paths: list[str]) -> str:
    """The rows of saved probe results as one markdown table."""
    lines = ["| set | seed | questions | right | pass@1 | pass@k (largest k) | first hard success | steps with one "
             "| accuracy on the set's answers, last 25 steps |", "|---|---|---|---|---|---|---|---|---|"]  # fmt: skip
    for path in paths:
        for name, rows in json.loads(Path(path).read_text())["sets"].items():
            for r in rows:
                top = max((k for k in r if k.startswith("pass@")), key=lambda k: int(k[5:]))
                lines.append(
                    f"| {name} | {r['seed']} | {r['questions']} | {r['right']} | {100 * r['pass@1']:.1f} | "
                    f"{100 * r[top]:.1f} | {r['first_hard_success']} | {r['hard_success_steps']} | "
                    f"{r.get('set_reward_last25', '-')} |"
                )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", default="configs/main.yaml")
    ap.add_argument("--config-set", action="append", default=[], help="a config override, e.g. student.rloo.steps=100")
    ap.add_argument("--set", action="append", default=[], help="name=path.jsonl, a question file (repeatable)")
    ap.add_argument("--seeds", default="0", help="student seeds, comma-separated")
    ap.add_argument("--test-limit", type=int, default=0, help="score the first N test problems (0: all)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", default=None)
    ap.add_argument("--table", nargs="+", default=None, help="print saved results as one markdown table")
    args = ap.parse_args(argv)
    if args.table:
        print(table(args.table))
        return {}
    files = named_files(args.set)
    if not files:
        raise SystemExit("give at least one --set name=path.jsonl")
    try:
        cfg = load_config(RunConfig, args.config, args.config_set)
    except ConfigError as e:
        raise SystemExit(str(e)) from None
    torch.set_num_threads(args.threads)
    base, tok = load_policy(cfg.model, opts=cfg.load)
    world = make_world(cfg.world, tok, cfg.prompts)
    hard_train = load_problems(Path(cfg.hard_dir) / "train.jsonl", world.in_grammar)
    hard_test = load_problems(Path(cfg.hard_dir) / "test.jsonl", world.in_grammar)
    hard_test = hard_test[: args.test_limit] if args.test_limit > 0 else hard_test
    result: dict = {"config": args.config, "overrides": args.config_set, "test": len(hard_test), "sets": {}}
    for name, path in files.items():
        problems = load_problems(path)  # as the main job: a teacher's set may hold questions outside the grammar
        for seed in (int(s) for s in args.seeds.split(",")):
            row = probe_one(cfg, base, tok, world, hard_train, hard_test, problems, seed)
            result["sets"].setdefault(name, []).append(row)
            print(json.dumps({"set": name, **row}), file=sys.stderr)
            if args.out:
                atomic_write_text(Path(args.out), json.dumps(result, indent=1))
    print(json.dumps(result, indent=1))
    return result


if __name__ == "__main__":
    main()
