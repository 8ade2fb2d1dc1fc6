"""Does RLOO actually teach the student? Two probes of the student engine on the default world.

1. `curve` (default): RLOO on fresh stepping-stone problems (true answers) at each learning rate; prints the
   training accuracy in bins of `--bin` steps and the KL to the start policy. A student that RL can teach
   goes up here; SOAR and the premise both assume it does.
2. `inner`: the inner loop's view. Student copies train `--steps` RLOO steps (10 in SOAR) on each data
   source (stepping stones, easy problems, the hard train set) and are scored on a fresh Q_R sample of the
   hard train set; prints R = Acc(trained) - Acc(base) per source and copy. If R does not separate
   stepping stones from the rest, the teacher's grounded reward is noise. `--dataset-size N` adds two
   sources shaped like one teacher dataset: N fixed stepping stones with true answers (`stones_fixed`) and
   the same N questions with the base model's own temperature-1 answers (`stones_selfanswered`, what a
   two-turn teacher writes); `--sets name=path.jsonl,...` adds question files (e.g. a run's Base-T set).

    python research/rl_probe.py --lrs 2e-4,5e-5,1e-5 --steps 100
    python research/rl_probe.py --mode inner --lrs 2e-4,1e-5 --steps 10 --copies 3
    python research/rl_probe.py --mode inner --lrs 5e-5 --steps 10 --dataset-size 16 \
        --sets base_t=runs/demo/questions/base_t.jsonl
    python research/rl_probe.py --mode inner --workers 2 ...   # the sources split over 2 processes, then joined

`--workers N` runs the sources in N processes (each `--only` a share of them, one torch thread by default)
and joins them with `--merge`: the same R values as one process (each copy's seeds do not depend on which
sources run beside it). `--classes good=good0+good1+good2,...` adds each class's per-copy mean R as a source
for `--good`; on a saved result: `--merge result.json --classes ... --good good`.

Prints one JSON object (also written to --out). Figures measured with it are in docs/world-design.md.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import torch
from tqdm import tqdm

from soar.core.problems import Problem, load_problems
from soar.engine.evaluate import own_answers
from soar.engine.model import DEFAULT_MODEL, clone_model, load_policy
from soar.engine.rloo import RLOOConfig, cycling_batches, train_rloo
from soar.engine.setup import Setup
from soar.jobs.premise import parse_stones, stone_batches
from soar.method.loop import QR_METRICS, SoarSettings, qr_accuracy
from soar.world import ARITHMETIC
from soar.world.arithmetic import make_problem

MAX_NEW_TOKENS = Setup().max_new_tokens
"""the default student completion length"""


def bins(xs: list[float], width: int) -> list[float]:
    return [round(statistics.mean(xs[i : i + width]), 4) for i in range(0, len(xs), width)]


def rloo_config(args, lr: float) -> RLOOConfig:
    return RLOOConfig(
        steps=args.steps,
        lr=lr,
        warmup=args.warmup,
        batch_size=args.batch,
        group_size=args.group,
        schedule=args.schedule,
    )


def curve(model, tok, args, lr: float) -> dict:
    stones = stone_batches(parse_stones(args.stones), args.batch)
    hist = train_rloo(clone_model(model), tok, ARITHMETIC, stones, rloo_config(args, lr), args.seed, MAX_NEW_TOKENS)
    acc = bins([h["accuracy"] for h in hist], args.bin)
    return {"lr": lr, "accuracy_bins": acc, "kl_bins": bins([h["kl"] for h in hist], args.bin)}


def self_answered(model, tok, problems: list[Problem], seed: int) -> list[Problem]:
    """The same questions with the model's own temperature-1 answers (unparsable answers kept as "?")."""
    return own_answers(model, tok, ARITHMETIC, problems, seed, MAX_NEW_TOKENS)


def inner(model, tok, args, lr: float) -> dict:
    train = load_problems(Path(args.hard_dir) / "train.jsonl")
    sources = {
        "stones": lambda: stone_batches(parse_stones(args.stones), args.batch),
        "easy": lambda: stone_batches(parse_stones(args.easy), args.batch),
        "hard": lambda: cycling_batches(train, args.batch),
    }
    if args.dataset_size:
        srng = random.Random(args.seed + 5)
        specs = parse_stones(args.stones)
        fixed = [make_problem(*srng.choice(specs), srng, min_run=2, max_run=3) for _ in range(args.dataset_size)]
        answered = self_answered(model, tok, fixed, args.seed + 6)
        agree = sum(ARITHMETIC.is_equal(a.answer, f.answer) for a, f in zip(answered, fixed, strict=True))
        print(f"self-answered stones: {agree}/{len(fixed)} answers correct", file=sys.stderr)
        sources["stones_fixed"] = lambda: cycling_batches(fixed, args.batch)
        sources["stones_selfanswered"] = lambda: cycling_batches(answered, args.batch)
    for spec in args.sets:
        name, _, path = spec.partition("=")
        probs = load_problems(path)
        sources[name] = lambda probs=probs: cycling_batches(probs, args.batch)
    if args.only:
        unknown = sorted(set(args.only) - set(sources))
        if unknown:
            raise SystemExit(f"--only: no source {', '.join(unknown)}; the sources are {', '.join(sources)}")
        sources = {k: v for k, v in sources.items() if k in args.only}
    metrics = {m: SoarSettings(qr_metric=m, qr_samples=args.qr_samples) for m in args.qr_metric}
    names = [scored(k, m, args.qr_metric) for m in metrics for k in sources]
    rng = random.Random(args.seed)
    r: dict[str, list[float]] = {k: [] for k in names}
    r_evals: dict[str, list[list[float]]] = {k: [] for k in names}
    bar = tqdm(total=args.copies * len(sources), desc=f"inner lr={lr:g}", unit="student", dynamic_ncols=True)
    for copy in range(args.copies):
        qr = rng.sample(train, min(args.qr_size, len(train)))
        seeds = [eval_seed(copy, e) for e in range(args.eval_repeats)]
        base = {
            m: [qr_accuracy(model, tok, ARITHMETIC, qr, c, s, MAX_NEW_TOKENS) for s in seeds]
            for m, c in metrics.items()
        }
        for name, make in sources.items():
            student = clone_model(model)
            train_rloo(student, tok, ARITHMETIC, make(), rloo_config(args, lr), args.seed + 100 + copy, MAX_NEW_TOKENS)
            for m, c in metrics.items():  # every metric scores the same trained student: paired
                key = scored(name, m, args.qr_metric)
                accs = [qr_accuracy(student, tok, ARITHMETIC, qr, c, s, MAX_NEW_TOKENS) for s in seeds]
                r_evals[key].append([round(a - b, 4) for a, b in zip(accs, base[m], strict=True)])
                r[key].append(round(statistics.mean(r_evals[key][-1]), 4))
            bar.set_postfix(copy=copy, source=name, R=r[name][-1])
            bar.update()
    bar.close()
    out = {"lr": lr, **summary(r)}
    if args.eval_repeats > 1:
        out["R_evals"] = r_evals
        out["noise"] = noise(r_evals)
    return out


def scored(source: str, metric: str, metrics: tuple[str, ...]) -> str:
    """The R key of `source` scored by `metric`: the source's own name for the first of `metrics`, else
    `source@metric`."""
    return source if metric == metrics[0] else f"{source}@{metric}"


def good_names(good: str, metrics) -> list[str]:
    """The sources of `--good` under every scoring metric (a JSON of an older run holds one metric's name)."""
    metrics = (metrics,) if isinstance(metrics, str) else tuple(metrics)
    return [scored(g, m, metrics) for m in metrics for g in good.split(",") if g]


def eval_seed(copy: int, repeat: int) -> int:
    """The sampling seed of a copy's `repeat`-th Q_R scoring (repeat 0 is the single scoring's seed, `copy`)."""
    return copy + 10_000 * repeat


def summary(r: dict[str, list[float]]) -> dict:
    """R per source and copy, with its mean and SD over the copies."""
    return {
        "R": r,
        "mean_R": {k: round(statistics.mean(v), 4) for k, v in r.items()},
        "sd_R": {k: round(statistics.stdev(v), 4) if len(v) > 1 else 0.0 for k, v in r.items()},
    }


def noise(r_evals: dict[str, list[list[float]]]) -> dict[str, dict]:
    """Where the spread of R comes from, per source, from R scored several times per copy: `eval_sd`, the
    SD of one scoring around its copy's mean (the Q_R sampling's own noise: pooled over copies), and
    `copy_sd`, the SD of the copies' means (training and Q_R-sample noise, plus eval_sd / sqrt(repeats))."""
    out = {}
    for name, copies in r_evals.items():
        within = statistics.mean(statistics.variance(c) for c in copies) if len(copies[0]) > 1 else 0.0
        means = [statistics.mean(c) for c in copies]
        out[name] = {
            "eval_sd": round(within**0.5, 4),
            "copy_sd": round(statistics.stdev(means), 4) if len(means) > 1 else 0.0,
        }
    return out


def separation(r: dict[str, list[float]], good: str) -> dict[str, dict]:
    """How far source `good` stands above each other source, paired over copies (copy i of every source is
    scored on the same Q_R sample): the mean difference, its SD, the copies where `good` is higher, and the
    mean in SDs of the paired difference (issue 13's point 4 asks for at least 2)."""
    out = {}
    for name, values in r.items():
        if name == good:
            continue
        if name.partition("@")[2] != good.partition("@")[2]:
            continue  # the same students scored by another metric
        diff = [a - b for a, b in zip(r[good], values, strict=True)]
        sd = statistics.stdev(diff) if len(diff) > 1 else 0.0
        out[name] = {
            "diff": round(statistics.mean(diff), 4),
            "sd": round(sd, 4),
            "higher": sum(d > 0 for d in diff),
            "sds": round(statistics.mean(diff) / sd, 2) if sd > 0 else None,
        }
    return out


def with_classes(r: dict[str, list[float]], classes: str) -> dict[str, list[float]]:
    """`r` plus one source per class of `classes` ("name=a+b+c,..."): per copy, the mean R of its members, under
    each metric the members were scored by (`name@forced` from `a@forced`, ...). Point 4 read for a class of
    question sets: the R the teacher's policy gradient sees on average over the class, not one set's lottery."""
    out = dict(r)
    for spec in (c for c in classes.split(",") if c):
        name, _, members = spec.partition("=")
        members = [m for m in members.split("+") if m]
        if not name or not members:
            raise SystemExit(f"--classes: {spec!r} is not name=a+b+...")
        for suffix in sorted({k.partition("@")[2] for k in r}):
            keys = [f"{m}@{suffix}" if suffix else m for m in members]
            missing = [k for k in keys if k not in r]
            if missing:
                raise SystemExit(f"--classes: {name}: no source {', '.join(missing)} (sources: {', '.join(r)})")
            out[f"{name}@{suffix}" if suffix else name] = [
                statistics.mean(v) for v in zip(*(r[k] for k in keys), strict=True)
            ]
    return out


def merge(paths: list[str], goods: str, out: str, classes: str = "") -> dict:
    """One inner result from runs of the same settings split over sources with --only (copy i of every
    source was trained and scored with the same seeds, so the R values are those of one run)."""
    runs = [json.loads(Path(p).read_text()) for p in paths]
    keep = ("only", "sets", "good")
    if len({json.dumps({k: v for k, v in r["args"].items() if k not in keep}, sort_keys=True) for r in runs}) > 1:
        raise SystemExit("--merge: the runs differ in more than --only/--sets/--good; their R are not paired")
    merged = []
    for parts in zip(*(r["runs"] for r in runs), strict=True):
        r = with_classes({k: v for part in parts for k, v in part["R"].items()}, classes)
        run = {"lr": parts[0]["lr"], **summary(r)}
        run["separation"] = {g: separation(r, g) for g in good_names(goods, runs[0]["args"]["qr_metric"])}
        if "R_evals" in parts[0]:
            run["R_evals"] = {k: v for part in parts for k, v in part["R_evals"].items()}
            run["noise"] = noise(run["R_evals"])
        merged.append(run)
    result = {"mode": "inner", "merged": paths, "args": runs[0]["args"], "classes": classes, "runs": merged}
    text = json.dumps(result, indent=1)
    if out:
        Path(out).write_text(text)
    print(text)
    return result


def _without(argv: list[str], options: tuple[str, ...]) -> list[str]:
    """argv less the given options and their values (`--x v` or `--x=v`)."""
    out, skip = [], False
    for a in argv:
        if skip:
            skip = False
        elif a in options:
            skip = True
        elif not a.startswith(tuple(o + "=" for o in options)):
            out.append(a)
    return out


def source_names(args) -> list[str]:
    """The inner probe's sources, in the order it trains them (without loading anything)."""
    names = ["stones", "easy", "hard"]
    if args.dataset_size:
        names += ["stones_fixed", "stones_selfanswered"]
    names += [spec.partition("=")[0] for spec in args.sets]
    return [n for n in names if not args.only or n in args.only]


def split_run(argv: list[str], args) -> dict:
    """`--workers N`: the sources dealt round-robin to N processes of this script (`--only`), then merged."""
    names = source_names(args)
    shares = [names[i :: args.workers] for i in range(min(args.workers, len(names)))]
    with tempfile.TemporaryDirectory() as d:
        outs = [str(Path(d) / f"part{i}.json") for i in range(len(shares))]
        procs = [
            subprocess.Popen(
                [sys.executable, __file__, *argv, "--workers", "1", "--threads", str(args.threads)]
                + ["--only", ",".join(share), "--out", out],
                stdout=subprocess.DEVNULL,
            )
            for share, out in zip(shares, outs, strict=True)
        ]
        failed = [p.args for p in procs if p.wait() != 0]
        if failed:
            raise SystemExit(f"--workers: {len(failed)} of {len(procs)} processes failed (their errors are above)")
        return merge(outs, args.good, args.out, args.classes)


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--mode", choices=("curve", "inner"), default="curve")
    p.add_argument("--model", default=str(DEFAULT_MODEL))
    p.add_argument("--hard-dir", default="data/hard")
    p.add_argument("--lrs", default="2e-4,5e-5,1e-5", help="comma-separated peak learning rates")
    p.add_argument("--steps", type=int, default=100)
    p.add_argument("--warmup", type=int, default=0)
    p.add_argument("--schedule", default="cosine", choices=("cosine", "constant"))
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--group", type=int, default=16)
    p.add_argument("--bin", type=int, default=10)
    p.add_argument("--stones", default="mix:1,mix:2,add:1,sub:1")
    p.add_argument("--easy", default="mix:0,add:0")
    p.add_argument("--copies", type=int, default=3)
    p.add_argument("--dataset-size", type=int, default=0, help="inner: add fixed N-question stone sources")
    p.add_argument("--sets", default="", help="inner: extra sources, name=questions.jsonl,...")
    p.add_argument("--qr-size", type=int, default=64)
    p.add_argument(
        "--qr-metric",
        default="partial_sampled",
        help=f"Acc(., Q_R), one of {', '.join(QR_METRICS)}; several (comma-separated) score the same students, "
        "the second and later as R of `source@metric`",
    )
    p.add_argument("--qr-samples", type=int, default=SoarSettings().qr_samples, help="samples per Q_R question")
    p.add_argument(
        "--eval-repeats", type=int, default=1, help="inner: score each student's Q_R this many times (noise split)"
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=2, help="torch threads (per process with --workers; default 1)")
    p.add_argument("--workers", type=int, default=1, help="inner: processes that share the sources")
    p.add_argument("--out", default="")
    p.add_argument("--good", default="", help="inner: sources whose separation from every other source is printed")
    p.add_argument("--only", default="", help="inner: run only these sources (comma-separated), e.g. to split a probe")
    p.add_argument("--merge", nargs="+", default=[], help="inner: join the R of runs split with --only (same seed)")
    p.add_argument(
        "--classes",
        default="",
        help="inner: pooled sources, name=a+b+c,... (per copy, the mean R of the members; name them in --good)",
    )
    raw = list(sys.argv[1:] if argv is None else argv)
    args = p.parse_args(raw)
    if args.merge:
        return merge(args.merge, args.good, args.out, args.classes)
    args.only = tuple(s for s in args.only.split(",") if s)
    args.stones = tuple(s for s in args.stones.split(",") if s)
    args.easy = tuple(s for s in args.easy.split(",") if s)
    args.sets = tuple(s for s in args.sets.split(",") if s)
    args.qr_metric = tuple(m for m in args.qr_metric.split(",") if m)
    unknown = [m for m in args.qr_metric if m not in QR_METRICS]
    if unknown or not args.qr_metric:
        raise SystemExit(f"--qr-metric: {', '.join(unknown) or 'none given'}; choose from {', '.join(QR_METRICS)}")
    if args.workers > 1:
        if args.mode != "inner":
            raise SystemExit("--workers splits the inner probe's sources; the curve probe runs in one process")
        if "--threads" not in raw:
            args.threads = 1
        return split_run(_without(raw, ("--workers", "--threads", "--only", "--out", "--good", "--classes")), args)
    torch.set_num_threads(args.threads)
    model, tok = load_policy(args.model)
    probe = curve if args.mode == "curve" else inner
    result = {"mode": args.mode, "args": {k: v for k, v in vars(args).items() if k != "out"}, "runs": []}
    for lr in (float(x) for x in args.lrs.split(",")):
        result["runs"].append(probe(model, tok, args, lr))
        if args.mode == "inner":
            goods = good_names(args.good, args.qr_metric)
            result["runs"][-1].update(summary(with_classes(result["runs"][-1]["R"], args.classes)))  # as --merge
            result["runs"][-1]["separation"] = {g: separation(result["runs"][-1]["R"], g) for g in goods}
        print(json.dumps(result["runs"][-1]), file=sys.stderr, flush=True)
    text = json.dumps(result, indent=1)
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(text)
    print(text)
    return result


if __name__ == "__main__":
    main()
