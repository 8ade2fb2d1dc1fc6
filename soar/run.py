"""`soar run`: the main job, top to bottom.

1. Hard sets: reuse `hard_dir` (train.jsonl / test.jsonl), or, with `make_hard: true` and no train.jsonl
   there yet, build them first with the `hardset` settings (fail@k on a pool, 50/50 split; soar.hardset).
2. SOAR (grounded reward) and Intrinsic-T (learnability reward) teacher runs (soar.loop), resumable.
3. Question sets: Base-T (the untrained teacher), Grounded-T and Intrinsic-T (the trained teachers),
   `questions` valid pairs each; PQ (the promoted datasets of the SOAR run).
4. Students, per seed, all evaluated on the held-out hard TEST set with pass@k (n samples) and greedy:
   base model; Hard-Only (RLOO on hard train); each question set as stepping stones for a fresh base
   student ("curriculum": `synthetic_steps` steps on the questions, then the hard train set; "mixed":
   both throughout), all at equal total steps; PS (the promoted student with the best Acc on the hard
   train set, by the SOAR run's qr_metric) evaluated directly.
5. Analysis of every question set: Vendi score (bootstrap), share of correct teacher answers (where the
   world knows the truth), difficulty histogram.
6. `report.md` and PNG plots.

Departures from the paper: the PQ / question-set students train a fixed number of steps (the paper
also offers a smoothed-slope checkpoint rule, `soar.metrics.slope_checkpoint`, not yet wired here); the
sizes are scaled down to run on 2 CPU cores (see the README).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

import torch

from soar.config import check_same_config, dump_config
from soar.embed import ngram_embeddings
from soar.evaluate import EvalConfig, aggregate, evaluate
from soar.hardset import HardSetConfig, make_hard
from soar.io import append_jsonl, atomic_write_text, read_jsonl, write_jsonl
from soar.loop import SoarConfig, qr_accuracy, run_soar, trained_teacher
from soar.metrics import vendi_bootstrap
from soar.model import DEFAULT_MODEL, LoadConfig, clone_model, load_policy
from soar.premise import phased
from soar.problems import Problem, load_problems, save_problems
from soar.rloo import RLOOConfig, cycling_batches, train_rloo
from soar.teacher import as_problems, write_datasets
from soar.world import World, check_world, make_world

ARMS = ("base", "hard_only", "base_t", "grounded_t", "intrinsic_t", "pq", "ps")
NAMES = {
    "base": "Base model",
    "hard_only": "Hard-Only",
    "base_t": "Base-T",
    "grounded_t": "Grounded-T",
    "intrinsic_t": "Intrinsic-T",
    "pq": "PQ",
    "ps": "PS",
}


ANALYSIS_KEYS = ("vendi_size", "vendi_samples")
"""keys that only change the question analysis (recomputed on every call): a resumed run may change them"""


@dataclass
class StudentConfig:
    """How a fresh student is trained on a question set plus the hard train set."""

    steps: int = 300
    """total RLOO steps of every trained arm (equal compute)"""
    synthetic_steps: int = 200
    """curriculum mode: steps on the synthetic questions before the hard train set (paper: 64)"""
    mode: str = "curriculum"
    """curriculum | mixed"""
    rloo: RLOOConfig = field(default_factory=RLOOConfig)

    def __post_init__(self) -> None:
        if self.mode not in ("curriculum", "mixed"):
            raise ValueError(f"student.mode must be 'curriculum' or 'mixed', got {self.mode!r}")


@dataclass
class RunConfig:
    """The main job."""

    model: str = str(DEFAULT_MODEL)
    """base model of teachers and students: a local directory, a .gguf file, pkg:PACKAGE/FILE or a hub name"""
    world: str = "arithmetic"
    """arithmetic | math (for the teacher runs too: soar.world is replaced by this)"""
    load: LoadConfig = field(default_factory=LoadConfig)
    """device, dtype, gradient checkpointing and LoRA (for the teacher runs too)"""
    hard_dir: str = "data/hard"
    """fail@k train.jsonl / test.jsonl"""
    make_hard: bool = False
    """build hard_dir first with the `hardset` settings when it has no train.jsonl"""
    hardset: HardSetConfig = field(default_factory=HardSetConfig)
    """make_hard: the screening (its model, world, load and out are replaced by this config's)"""
    out: str = "runs/main"
    test_limit: int = 0
    """evaluate on the first test_limit problems of test.jsonl (0 = all; the demo uses a subset for time)"""
    seeds: tuple[int, ...] = (0,)
    """student seeds (the teacher runs use soar.seed)"""
    arms: tuple[str, ...] = ARMS
    questions: int = 128
    """questions sampled from each teacher for Base-T / Grounded-T / Intrinsic-T (paper 128)"""
    soar: SoarConfig = field(default_factory=SoarConfig)
    """the teacher runs (their `out` is replaced by OUT/soar and OUT/intrinsic)"""
    student: StudentConfig = field(default_factory=StudentConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    vendi_samples: int = 100
    """bootstrap subsamples for the Vendi score of each question set"""
    vendi_size: int = 96
    """questions per bootstrap subsample (below `questions`, or every subsample is the whole set and the SD 0)"""
    threads: int = 2
    resume: bool = False
    """continue the run in `out` (`soar run --resume DIR`); the config must match"""

    def __post_init__(self) -> None:
        check_world(self.world)
        bad = [a for a in self.arms if a not in ARMS]
        if bad:
            raise ValueError(f"unknown arms {bad}; valid: {list(ARMS)}")


def sample_questions(teacher, tokenizer, world: World, count: int, cfg: SoarConfig, seed: int) -> list[Problem]:
    """`count` valid question/answer pairs from a teacher (Base-T / Grounded-T / Intrinsic-T)."""
    ds, _ = write_datasets(
        teacher,
        tokenizer,
        world,
        1,
        count,
        temperature=cfg.teacher.temperature,
        max_new_tokens=cfg.teacher.max_new_tokens,
        seed=seed,
        max_attempts=cfg.teacher.max_attempts,
        answer_mode=cfg.teacher.answer_mode,
        answer_max_new_tokens=cfg.eval_max_new_tokens,
        answer_temperature=cfg.teacher.answer_temperature,
        prefill=cfg.teacher.prefill,
        require_box=cfg.teacher.require_box,
    )
    return as_problems(ds[0], world.classify)


def train_student(
    base,
    tokenizer,
    world: World,
    hard_train: list[Problem],
    synthetic: list[Problem] | None,
    cfg: StudentConfig,
    seed: int,
):
    """A fresh copy of `base` trained for cfg.steps: Hard-Only when `synthetic` is None."""
    rcfg = RLOOConfig(**{**cfg.rloo.__dict__, "steps": cfg.steps})
    hard = cycling_batches(hard_train, rcfg.batch_size)
    if synthetic is None:
        batches = hard
    elif cfg.mode == "curriculum":
        batches = phased(cycling_batches(synthetic, rcfg.batch_size), cfg.synthetic_steps, hard)
    else:
        batches = cycling_batches(synthetic + hard_train, rcfg.batch_size)
    student = clone_model(base)
    history = train_rloo(student, tokenizer, world, batches, rcfg, seed=seed, progress=True)
    return student, history


def question_stats(problems: list[Problem], world: World, cfg: RunConfig) -> dict:
    """Vendi (bootstrap mean, SD), share of correct teacher answers, difficulty histogram."""
    emb = ngram_embeddings([p.question for p in problems])
    v_mean, v_sd = vendi_bootstrap(emb, cfg.vendi_size, cfg.vendi_samples)
    correct = None
    if world.true_answer is not None:
        truths = [world.true_answer(p.question) for p in problems]
        known = [(t, p) for t, p in zip(truths, problems, strict=True) if t is not None]
        correct = sum(bool(world.is_equal(t, p.answer)) for t, p in known) / len(known) if known else None
    hist: dict[str, int] = {}
    for p in problems:
        key = f"{p.family}:{p.level}" if p.level >= 0 else "unparsed"
        hist[key] = hist.get(key, 0) + 1
    return {
        "n": len(problems),
        "vendi": v_mean,
        "vendi_sd": v_sd,
        "answer_correct": correct,
        "histogram": dict(sorted(hist.items())),
    }


def teacher_config(cfg: RunConfig, name: str, reward: str) -> SoarConfig:
    """The SoarConfig of the main job's teacher run `name` (`soar` or `intrinsic`) in `cfg.out/name`; a run
    started from it elsewhere (e.g. a parallel worker) is resumed, not redone, by `run_main`."""
    tdir = Path(cfg.out) / name
    return SoarConfig(
        **{
            **cfg.soar.__dict__,
            "out": str(tdir),
            "reward": reward,
            "model": cfg.model,
            "world": cfg.world,
            "load": cfg.load,
            "hard_dir": cfg.hard_dir,
            "threads": cfg.threads,
            "resume": (tdir / "config.yaml").exists(),
        }
    )


def run_main(cfg: RunConfig, world: World | None = None) -> dict:
    torch.set_num_threads(cfg.threads)
    out = Path(cfg.out)
    if cfg.resume:
        check_same_config(out / "config.yaml", cfg, ignore=("resume", "threads", *ANALYSIS_KEYS))
        dump_config(replace(cfg, resume=False), out / "config.yaml")  # the analysis keys of the latest report
    elif (out / "config.yaml").exists():
        raise FileExistsError(
            f"{out} already holds a run: `soar run --resume {out}` continues it; or choose another --set out=DIR"
        )
    else:
        out.mkdir(parents=True, exist_ok=True)
        dump_config(cfg, out / "config.yaml")
    t_start = time.time()
    if cfg.make_hard and not (Path(cfg.hard_dir) / "train.jsonl").exists():
        print(f"hard sets: screening {cfg.hardset.pool_file or 'the generator'} with fail@{cfg.hardset.k}")
        make_hard(
            HardSetConfig(
                **{
                    **cfg.hardset.__dict__,
                    "model": cfg.model,
                    "world": cfg.world,
                    "load": cfg.load,
                    "out": cfg.hard_dir,
                    "threads": cfg.threads,
                }
            )
        )
    hard_train = load_problems(Path(cfg.hard_dir) / "train.jsonl")
    hard_test = load_problems(Path(cfg.hard_dir) / "test.jsonl")
    if cfg.test_limit > 0:
        hard_test = hard_test[: cfg.test_limit]
    base, tokenizer = load_policy(cfg.model, opts=cfg.load)
    world = world or make_world(cfg.world, tokenizer)

    # 2. Teacher runs (each resumes where it stopped).
    teachers: dict[str, Path] = {}
    for name, reward in (("soar", "grounded"), ("intrinsic", "intrinsic")):
        if name == "intrinsic" and "intrinsic_t" not in cfg.arms:
            continue
        scfg = teacher_config(cfg, name, reward)
        tdir = Path(scfg.out)
        done = (tdir / "checkpoint" / "state.json").exists() and json.loads(
            (tdir / "checkpoint" / "state.json").read_text()
        )["step"] >= scfg.outer_steps
        if not done:
            print(f"teacher run: {name} ({reward} reward), {scfg.outer_steps} outer steps")
            run_soar(scfg, world)
        teachers[name] = tdir

    # 3. Question sets.
    qsets: dict[str, list[Problem]] = {}
    sources = {"base_t": None, "grounded_t": "soar", "intrinsic_t": "intrinsic"}
    for arm, src in sources.items():
        if arm not in cfg.arms:
            continue
        path = out / "questions" / f"{arm}.jsonl"
        if not path.exists():
            teacher = base if src is None else trained_teacher(teachers[src], cfg.load)[0]
            save_problems(path, sample_questions(teacher, tokenizer, world, cfg.questions, cfg.soar, 7_000))
        qsets[arm] = load_problems(path)
    pq_path = teachers["soar"] / "pq.jsonl"
    if pq_path.exists():
        qsets["pq"] = load_problems(pq_path)
    stats = {name: question_stats(ps, world, cfg) for name, ps in qsets.items() if ps}
    atomic_write_text(out / "question_stats.json", json.dumps(stats, indent=1))

    # 4. Students.
    results_path = out / "results.jsonl"
    done_keys = {(r["arm"], r["seed"]) for r in read_jsonl(results_path)} if results_path.exists() else set()
    promos = (
        read_jsonl(teachers["soar"] / "promotions.jsonl") if (teachers["soar"] / "promotions.jsonl").exists() else []
    )
    ps_model = None
    for seed in cfg.seeds:
        for arm in cfg.arms:
            if (arm, seed) in done_keys:
                continue
            t0 = time.time()
            if arm == "base":
                model = base
            elif arm == "hard_only":
                model, hist = train_student(base, tokenizer, world, hard_train, None, cfg.student, seed)
                write_jsonl(out / f"train_{arm}_seed{seed}.jsonl", hist)
            elif arm == "ps":
                if not promos:
                    print("PS: no promotion happened in the SOAR run; nothing to evaluate")
                    continue
                if ps_model is None:  # picked once for all seeds
                    ps_model = best_promoted(promos, tokenizer, world, hard_train, cfg)
                model = ps_model
            else:
                if not qsets.get(arm):
                    print(f"{NAMES[arm]}: empty question set; skipped")
                    continue
                model, hist = train_student(base, tokenizer, world, hard_train, qsets[arm], cfg.student, seed)
                write_jsonl(out / f"train_{arm}_seed{seed}.jsonl", hist)
            summary, records = evaluate(model, tokenizer, world, hard_test, cfg.eval, seed=10_000 + seed)
            write_jsonl(out / f"eval_{arm}_seed{seed}.jsonl", records)
            append_jsonl(results_path, [{"arm": arm, "seed": seed, **summary, "seconds": round(time.time() - t0, 1)}])
            print(
                f"[seed {seed}] {NAMES[arm]}: pass@1={summary['pass@1']:.4f} pass@{cfg.eval.ks[-1]}="
                f"{summary[f'pass@{cfg.eval.ks[-1]}']:.4f} solved={summary['solved']}"
            )

    # 6. Report.
    from soar.report import main_report

    results = read_jsonl(results_path) if results_path.exists() else []
    by_arm: dict[str, list[dict]] = {}
    for r in results:
        by_arm.setdefault(r["arm"], []).append(r)
    table = {a: aggregate(by_arm[a]) for a in ARMS if a in by_arm}
    main_report(
        cfg,
        out,
        table,
        stats,
        {k: read_jsonl(v / "metrics.jsonl") for k, v in teachers.items() if (v / "metrics.jsonl").exists()},
        promos,
        time.time() - t_start,
    )
    return table


def best_promoted(promos: list[dict], tokenizer, world: World, hard_train: list[Problem], cfg: RunConfig):
    """PS: of the promoted students, the one with the best Acc on the hard TRAIN set, by the SOAR run's own
    measure (`soar.qr_metric`, the teacher reward's Acc); a tie goes to the later promotion, which was
    trained from the earlier one. (The paper does not say how its PS is picked.)"""
    best, best_acc = None, float("-inf")
    for p in promos:
        model, _ = load_policy(p["student_dir"], opts=cfg.load)
        acc = qr_accuracy(model, tokenizer, world, hard_train, cfg.soar, seed=0)
        print(f"PS candidate {p['student_dir']}: Acc on the hard train set {acc:.4f} ({cfg.soar.qr_metric})")
        if acc >= best_acc:
            best, best_acc = model, acc
    return best


__all__ = ["RunConfig", "StudentConfig", "run_main", "question_stats", "teacher_config", "train_student"]
