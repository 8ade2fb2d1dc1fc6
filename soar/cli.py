"""The `soar` command. Every subcommand reads one typed config: defaults <- --config FILE <- --set k=v."""

from __future__ import annotations

import argparse
import json
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from soar.core.config import ConfigError, ConfigMismatch, load_config, to_dict
from soar.core.io import DataError
from soar.core.lock import RunLocked
from soar.core.parallel import WorkerDied
from soar.engine.evaluate import EvalConfig
from soar.engine.setup import ModelSetup
from soar.method.teacher import TeacherFormatError


@dataclass
class EvalCommandConfig(ModelSetup):
    """`soar eval`: pass@k of one model on a problem set, over seeds."""

    problems: str = "data/hard/test.jsonl"
    """JSONL problems (question, answer)"""
    seeds: tuple[int, ...] = (0, 1, 2)
    """sampling seeds; the table gives mean ± SD over them"""
    out: str = "runs/eval"
    """folder for per-problem counts (JSONL) and summary.json"""
    eval: EvalConfig = field(default_factory=EvalConfig)


def _eval(cfg: EvalCommandConfig) -> None:
    import torch

    from soar.core.io import atomic_write_text, write_jsonl
    from soar.core.problems import load_problems
    from soar.engine.evaluate import aggregate, evaluate
    from soar.engine.model import load_policy
    from soar.world import make_world

    torch.set_num_threads(cfg.threads)
    model, tok = load_policy(cfg.model, opts=cfg.load)
    world = make_world(cfg.world, tok, cfg.prompts)
    problems = load_problems(cfg.problems)
    out = Path(cfg.out)
    summaries = []
    for seed in cfg.seeds:
        s, recs = evaluate(model, tok, world, problems, cfg.eval, seed, cfg.max_new_tokens)
        write_jsonl(out / f"per_problem_seed{seed}.jsonl", recs)
        summaries.append({"seed": seed, **s})
    agg = aggregate(summaries)
    atomic_write_text(out / "summary.json", json.dumps({"per_seed": summaries, "mean_sd": agg}, indent=1))
    print(f"{cfg.problems}: {len(problems)} problems, {len(cfg.seeds)} seed(s), n={cfg.eval.n}")
    for k, (m, s) in agg.items():
        if k != "seed":
            print(f"  {k:>10}: {m:.4f} ± {s:.4f}")


def _commands():
    from soar.jobs.hardset import HardSetConfig, make_hard
    from soar.jobs.judge import JudgeConfig, run_judge
    from soar.jobs.main import RunConfig, run_main
    from soar.jobs.premise import PremiseConfig, run_premise
    from soar.jobs.pretrain import PretrainConfig, pretrain
    from soar.method.loop import SoarConfig, run_soar

    return {
        "pretrain": (PretrainConfig, pretrain, "train the tiny arithmetic base model from scratch"),
        "make-hard": (HardSetConfig, make_hard, "build fail@k hard train/test sets"),
        "eval": (EvalCommandConfig, _eval, "pass@k (unbiased) and greedy accuracy of a model, over seeds"),
        "premise": (PremiseConfig, run_premise, "Hard-Only vs oracle curriculum on the hard set"),
        "teach": (SoarConfig, run_soar, "one SOAR teacher run (grounded or intrinsic reward), resumable"),
        "run": (RunConfig, run_main, "the main job: teacher runs, baselines, evaluation over seeds, report.md"),
        "judge": (
            JudgeConfig,
            run_judge,
            "a local judge model rates each question: well-posed or not, its answer correct or not",
        ),
    }


def main(argv: list[str] | None = None) -> int:
    commands = _commands()
    parser = argparse.ArgumentParser(prog="soar", description="SOAR: teachers that write stepping stones.")
    sub = parser.add_subparsers(dest="command", required=True)
    for name, (cls, _, help_) in commands.items():
        p = sub.add_parser(
            name,
            help=help_,
            description=f"{help_}. Config: {cls.__name__} (see --print-config for every key and its default).",
        )
        p.add_argument("--config", help="YAML/JSON file of config values")
        p.add_argument(
            "--set",
            action="append",
            default=[],
            metavar="KEY=VALUE",
            help="override one config value, e.g. --set rloo.lr=1e-4 (repeatable)",
        )
        p.add_argument("--print-config", action="store_true", help="print the resolved config and exit")
        if name == "make-hard":
            p.add_argument(
                "--rescreen",
                action=argparse.BooleanOptionalAction,
                default=None,
                help="screen the survivors again with k fresh samples (default: on)",
            )
        if name in ("teach", "run"):
            p.add_argument(
                "--resume",
                metavar="DIR",
                help="continue the run in DIR with its saved config "
                "(a run killed at any moment loses at most the outer step in flight)",
            )
    args = parser.parse_args(argv)
    cls, fn, _ = commands[args.command]
    if getattr(args, "rescreen", None) is not None:
        args.set = [*args.set, f"rescreen={'true' if args.rescreen else 'false'}"]
    resume = getattr(args, "resume", None)
    if resume:
        saved = Path(resume) / "config.yaml"
        if not saved.exists():
            print(f"soar {args.command}: nothing to resume: {saved} does not exist", file=sys.stderr)
            return 2
        if args.config:
            print(f"soar {args.command}: --resume uses {saved}; drop --config", file=sys.stderr)
            return 2
        args.config = str(saved)
        args.set = [*args.set, "resume=true", f"out={resume}"]
    try:
        cfg = load_config(cls, args.config, args.set)
    except ConfigError as e:
        print(f"soar {args.command}: config error: {e}", file=sys.stderr)
        return 2
    if args.print_config:  # to stdout as it is (`>> log` appends; opening /dev/stdout would truncate)
        sys.stdout.write(yaml.safe_dump(json.loads(json.dumps(to_dict(cfg))), sort_keys=False))
        return 0
    try:
        result = fn(cfg)
    except (DataError, FileNotFoundError, FileExistsError, ConfigMismatch, TeacherFormatError, RunLocked) as e:
        print(f"soar {args.command}: {e}", file=sys.stderr)
        return 2
    except (ValueError, IsADirectoryError, NotADirectoryError, UnicodeDecodeError) as e:
        if os.environ.get("SOAR_DEBUG"):
            raise
        print(f"soar {args.command}: {e} (SOAR_DEBUG=1 shows the traceback)", file=sys.stderr)
        return 2
    except (FloatingPointError, WorkerDied) as e:
        print(f"soar {args.command}: stopped: {e}", file=sys.stderr)
        return 3
    if isinstance(result, dict) and args.command in ("pretrain", "make-hard"):
        print(json.dumps({k: v for k, v in result.items() if k != "config"}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
