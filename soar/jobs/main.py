"""`soar run`: the main job, top to bottom.

1. Hard sets: reuse `hard_dir` (train.jsonl / test.jsonl), or, with `make_hard: true` and no train.jsonl
   there yet, build them first with the `hardset` settings (fail@k on a pool, 50/50 split; soar.jobs.hardset).
2. SOAR (grounded reward) and Intrinsic-T (learnability reward) teacher runs (soar.method.loop), resumable.
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

Departures from the paper: by default the students train a fixed number of steps and are evaluated once
(`student.checkpoint_rule: slope` is the paper's smoothed-slope rule, with held-out evaluations every
`student.eval_every` steps); the sizes are scaled down to run on 2 CPU cores (docs/DESIGN.md).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field, fields, replace
from pathlib import Path

import torch

from soar.core import seeds
from soar.core.config import ConfigMismatch, at_least, check_same_config, dump_config, extend, load_config
from soar.core.io import DataError, atomic_write_text
from soar.core.lock import run_lock
from soar.core.parallel import Workers
from soar.core.problems import Problem, load_problems, save_problems
from soar.engine.embed import model_embeddings, ngram_embeddings
from soar.engine.evaluate import EvalConfig, aggregate, evaluate
from soar.engine.metrics import slope_checkpoint, vendi_bootstrap
from soar.engine.model import clone_model, load_policy
from soar.engine.rloo import RLOOConfig, both, cycling_batches, phased, train_rloo
from soar.engine.setup import ModelSetup, Setup
from soar.jobs.hardset import HardSetConfig, HardSetSettings, make_hard
from soar.jobs.harness import ARM_NAMES, UNTRAINED, GridContext, Trained, hard_phase_counts, run_grid, summarize
from soar.method.loop import SoarConfig, SoarSettings, check_lockstep, qr_accuracy, run_soar
from soar.method.run_folder import RunFolder
from soar.method.teacher import as_problems, write_datasets
from soar.world import World, make_world

ARMS = ("base", "hard_only", "base_t", "grounded_t", "intrinsic_t", "pq", "ps")
"""the default arms"""
EXTRA_ARMS = ("hard_only_g128", "grounded_t_np", "pq_oracle")
"""on request: the paper's two further baselines, Hard-Only with group 128 (student.hard_only_group) and
Grounded-T from a teacher run without promotions (a third teacher run); and the teacher-answer ablation,
the PQ of a SOAR run whose students train on the world's true answers (teacher.answers=oracle)"""
TEACHER_RUNS = {"soar": "grounded", "intrinsic": "intrinsic", "soar_np": "grounded", "soar_oracle": "grounded"}
"""the main job's teacher runs (folder name under `out` -> reward); soar_np never promotes, soar_oracle's
students see true answers"""
RUN_NEEDED_BY = {"intrinsic": "intrinsic_t", "soar_np": "grounded_t_np", "soar_oracle": "pq_oracle"}
"""teacher runs made only when their arm is asked for (the SOAR run always is: PQ, PS, Grounded-T)"""
QUESTION_SOURCES = {"base_t": None, "grounded_t": "soar", "intrinsic_t": "intrinsic", "grounded_t_np": "soar_np"}
"""question-set arm -> the teacher run that writes it (None: the untrained base teacher)"""
PQ_SOURCES = {"pq": "soar", "pq_oracle": "soar_oracle"}
"""PQ arm -> the teacher run whose promoted datasets it trains on"""
TEACHER_ARMS = ("grounded_t", "intrinsic_t", "grounded_t_np", "pq", "pq_oracle", "ps")
"""arms that depend on a teacher run: one per teacher seed when `teacher_seeds` names several"""
ANALYSIS_KEYS = ("vendi_size", "vendi_samples", "vendi_embedding", "vendi_model")
"""keys that only change the question analysis (recomputed on every call): a resumed run may change them"""
GROWING_KEYS = ("arms", "seeds")
"""a resumed run may add to these (its finished students stay valid), never drop from them"""


@dataclass
class StudentConfig:
    """How a fresh student is trained on a question set plus the hard train set (`rloo.steps` in all)."""

    synthetic_steps: int = 200
    """curriculum mode: of rloo.steps, the steps on the synthetic questions before the hard train set (paper: 64)"""
    mode: str = "curriculum"
    """curriculum | mixed"""
    mixed_questions: int = 0
    """mixed mode: 0 pools the question set with the hard train set (the paper); N > 0 gives every batch N
    questions, then rloo.batch_size - N hard problems (as the premise's mixed mode), whatever the set sizes"""
    rloo: RLOOConfig = field(default_factory=RLOOConfig)
    """every trained arm's RLOO; rloo.steps is the equal compute of all arms"""
    hard_only_group: int = 128
    """the hard_only_g128 arm: Hard-Only with this group size (the paper's compute-matched baseline)"""
    checkpoint_rule: str = "fixed"
    """fixed: evaluate after rloo.steps | slope: the paper's rule (evaluate every `eval_every` steps; stop
    where the smoothed training reward's slope falls below 15% of its maximum; report the mean of the
    evaluations in the `report_window` steps after it)"""
    eval_every: int = 25
    """slope rule: steps between held-out evaluations"""
    report_window: int = 200
    """slope rule: the evaluations after the stop step that are averaged (paper 200 steps)"""
    transfer_step: int = 50
    """the training step at which the students are evaluated on the `transfer` sets (paper: fixed step 50;
    the last step when training is shorter)"""

    def __post_init__(self) -> None:
        if self.mode not in ("curriculum", "mixed"):
            raise ValueError(f"student.mode must be 'curriculum' or 'mixed', got {self.mode!r}")
        if not 0 <= self.mixed_questions < self.rloo.batch_size:
            raise ValueError(
                f"student.mixed_questions must be 0 (pool) to rloo.batch_size - 1 ({self.rloo.batch_size - 1}), "
                f"got {self.mixed_questions}"
            )
        if self.checkpoint_rule not in ("fixed", "slope"):
            raise ValueError(f"student.checkpoint_rule must be 'fixed' or 'slope', got {self.checkpoint_rule!r}")
        at_least(self, 1, "eval_every", "report_window", "hard_only_group", "transfer_step")


@dataclass
class RunConfig(Setup):
    """The main job (`soar run`): the shared set-up once, then each stage's own settings."""

    make_hard: bool = False
    """build hard_dir first with the `hardset` settings when it has no train.jsonl"""
    hardset: HardSetSettings = field(default_factory=HardSetSettings)
    """make_hard: the screening of the base model `model` into `hard_dir`"""
    out: str = "runs/main"
    test_limit: int = 0
    """evaluate on the first test_limit problems of test.jsonl (0 = all; the demo uses a subset for time)"""
    seeds: tuple[int, ...] = (0,)
    """student seeds (the teacher runs use soar.seed)"""
    arms: tuple[str, ...] = ARMS
    teacher_seeds: tuple[int, ...] = ()
    """several teacher runs per method, one per seed (folders soar_t0, soar_t1, ...; arms pq@t0, ...), and the
    report's +- over them; () = one run per method at soar.seed (folders soar, intrinsic, ...)"""
    transfer: dict = field(default_factory=dict)
    """name -> problems JSONL of another benchmark (e.g. OlympiadBench's fail@128 test set): every arm's student
    is also evaluated on it, at student.transfer_step (the paper's transfer evaluation)"""
    questions: int = 128
    """questions sampled from each teacher for Base-T / Grounded-T / Intrinsic-T (paper 128)"""
    soar: SoarSettings = field(default_factory=SoarSettings)
    """the two teacher runs, in OUT/soar (grounded reward) and OUT/intrinsic"""
    student: StudentConfig = field(default_factory=StudentConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    vendi_samples: int = 100
    """bootstrap subsamples for the Vendi score of each question set"""
    vendi_size: int = 96
    """questions per bootstrap subsample (below `questions`, or every subsample is the whole set and the SD 0)"""
    vendi_embedding: str = "ngram"
    """how questions are embedded for Vendi: ngram (hashed character n-grams) | model (mean last hidden state
    of `vendi_model`, a local causal LM; the paper: Qwen3-8B)"""
    vendi_model: str = ""
    """vendi_embedding=model: a local model path ("" = the run's base model `model`)"""
    resume: bool = False
    """continue the run in `out` (`soar run --resume DIR`); the config must match"""

    def __post_init__(self) -> None:
        super().__post_init__()
        if not self.seeds:
            raise ValueError("seeds must name at least one student seed")
        at_least(self, 1, "questions", "vendi_samples")
        at_least(self, 2, "vendi_size")
        at_least(self, 0, "test_limit")
        check_lockstep(self.soar, self.load)
        if len(set(self.teacher_seeds)) != len(self.teacher_seeds):
            raise ValueError(f"teacher_seeds must not repeat a seed, got {list(self.teacher_seeds)}")
        if self.vendi_embedding not in ("ngram", "model"):
            raise ValueError(f"vendi_embedding must be 'ngram' or 'model', got {self.vendi_embedding!r}")
        if self.student.mode == "curriculum" and self.student.synthetic_steps > self.student.rloo.steps:
            raise ValueError(
                f"student.synthetic_steps ({self.student.synthetic_steps}) is more than student.rloo.steps "
                f"({self.student.rloo.steps}), the total"
            )
        bad = [a for a in self.arms if a not in ARMS + EXTRA_ARMS]
        if bad:
            raise ValueError(f"unknown arms {bad}; valid: {list(ARMS + EXTRA_ARMS)}")


def sample_questions(teacher, tokenizer, world: World, count: int, cfg: RunConfig, seed: int) -> list[Problem]:
    """`count` valid question/answer pairs from a teacher (Base-T / Grounded-T / Intrinsic-T)."""
    ds, _ = write_datasets(teacher, tokenizer, world, replace(cfg.soar.teacher, n=count), 1, seed, cfg.max_new_tokens)
    return as_problems(ds[0], world, cfg.soar.teacher.answers)


def train_student(
    base,
    tokenizer,
    world: World,
    hard_train: list[Problem],
    synthetic: list[Problem] | None,
    cfg: StudentConfig,
    seed: int,
    max_new_tokens: int,
    progress: bool = True,
    evaluate_fn=None,
    transfer_fn=None,
) -> Trained:
    """A fresh copy of `base` trained for cfg.rloo.steps: Hard-Only when `synthetic` is None. With
    `evaluate_fn(model)` and the slope rule, also the held-out evaluations every cfg.eval_every steps; with
    `transfer_fn(model) -> row columns`, the transfer evaluation at cfg.transfer_step."""
    bs = cfg.rloo.batch_size
    hard = cycling_batches(hard_train, bs)
    if synthetic is None:
        batches = hard
    elif cfg.mode == "curriculum":
        batches = phased(cycling_batches(synthetic, bs), cfg.synthetic_steps, hard)
    elif cfg.mixed_questions:
        n = cfg.mixed_questions
        batches = both(cycling_batches(synthetic, n), cycling_batches(hard_train, bs - n))
    else:
        batches = cycling_batches(synthetic + hard_train, bs)
    student = clone_model(base)
    evals: list[tuple[int, tuple[dict, list[dict]]]] = []
    extra: dict = {}
    transfer_at = min(cfg.transfer_step, cfg.rloo.steps)

    def on_step(step: int, row: dict) -> None:
        if evaluate_fn is not None and (step + 1) % cfg.eval_every == 0:
            evals.append((step + 1, evaluate_fn(student)))
        if transfer_fn is not None and step + 1 == transfer_at:
            extra.update(transfer_fn(student))

    history = train_rloo(
        student, tokenizer, world, batches, cfg.rloo, seed, max_new_tokens, on_step=on_step, progress=progress
    )
    if evaluate_fn is None:
        return Trained(student, history, extra=extra)
    if not evals or evals[-1][0] != cfg.rloo.steps:  # the final model is always evaluated too
        evals.append((cfg.rloo.steps, evaluate_fn(student)))
    return Trained(student, history, checkpoint_result(history, evals, cfg.report_window), extra)


def checkpoint_result(history: list[dict], evals: list, window: int) -> tuple[dict, list[dict]]:
    """The paper's checkpoint rule on one student: the stop step s from its training reward
    (`slope_checkpoint`), then the mean of every held-out evaluation at steps s < step <= s + window (the
    last evaluation when none falls there). Returns (summary with `checkpoint_step`, the last averaged
    evaluation's records)."""
    s = slope_checkpoint([h["reward"] for h in history])
    chosen = [e for step, e in evals if s < step <= s + window] or [evals[-1][1]]
    keys = [k for k, v in chosen[0][0].items() if isinstance(v, int | float)]
    summary = {k: sum(e[0][k] for e in chosen) / len(chosen) for k in keys}
    return {**summary, "checkpoint_step": s, "evaluations_averaged": len(chosen)}, chosen[-1][1]


def answers_right(problems: list[Problem], world: World) -> tuple[int, int]:
    """(how many answers equal the world's true answer, how many questions have one); (0, 0) in a world
    without known truths."""
    if world.true_answer is None:
        return 0, 0
    known = [(t, p) for p in problems if (t := world.true_answer(p.question)) is not None]
    return sum(bool(world.is_equal(t, p.answer)) for t, p in known), len(known)


def question_stats(problems: list[Problem], world: World, cfg: RunConfig, embed=ngram_embeddings) -> dict:
    """Vendi (bootstrap mean, SD) of `embed(questions)`, share of correct teacher answers, difficulty histogram."""
    emb = embed([p.question for p in problems])
    v_mean, v_sd = vendi_bootstrap(emb, cfg.vendi_size, cfg.vendi_samples)
    right, known = answers_right(problems, world)
    correct = right / known if known else None
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


def question_embedder(cfg: RunConfig, base, tokenizer):
    """texts -> embeddings for the Vendi score: n-grams, or a local model's mean hidden state."""
    if cfg.vendi_embedding == "ngram":
        return ngram_embeddings
    model, tok = (base, tokenizer) if not cfg.vendi_model else load_policy(cfg.vendi_model, opts=cfg.load)
    return lambda texts: model_embeddings(model, tok, texts)


def teacher_suffixes(cfg: RunConfig) -> dict[int, str]:
    """teacher seed -> the suffix of its runs' folders (`_t<seed>`); {soar.seed: ""} with one teacher run."""
    return {t: f"_t{t}" for t in cfg.teacher_seeds} if cfg.teacher_seeds else {cfg.soar.seed: ""}


def arm_suffix(folder_suffix: str) -> str:
    """A teacher run's folder suffix (`_t1`) as the suffix of its arms' grid keys (`@t1`)."""
    return folder_suffix.replace("_t", "@t")


def grid_arms(cfg: RunConfig) -> tuple[str, ...]:
    """The (arm) keys of the student grid: a teacher arm once per teacher seed (`pq@t1`) when there are several."""
    if not cfg.teacher_seeds:
        return cfg.arms
    return tuple(k for a in cfg.arms for k in ([f"{a}@t{t}" for t in cfg.teacher_seeds] if a in TEACHER_ARMS else [a]))


def teacher_config(cfg: RunConfig, name: str, teacher_seed: int | None = None) -> SoarConfig:
    """The SoarConfig of the main job's teacher run `name` (a key of TEACHER_RUNS; with `teacher_seed`, that
    seed's run) in `cfg.out/<name><suffix>`; a run started from it elsewhere is resumed, not redone."""
    seed = cfg.soar.seed if teacher_seed is None else teacher_seed
    tdir = Path(cfg.out) / (name + teacher_suffixes(cfg).get(seed, f"_t{seed}"))
    setup = {f.name: getattr(cfg, f.name) for f in fields(Setup)}
    resume = (tdir / "config.yaml").exists()
    promote = cfg.soar.promote and name != "soar_np"
    teacher = replace(cfg.soar.teacher, answers="oracle") if name == "soar_oracle" else cfg.soar.teacher
    return extend(
        cfg.soar,
        SoarConfig,
        **setup,
        out=str(tdir),
        reward=TEACHER_RUNS[name],
        resume=resume,
        promote=promote,
        teacher=teacher,
        seed=seed,
    )


def run_main(cfg: RunConfig, world: World | None = None) -> dict:
    """The main job, resumable at every stage, its folder locked throughout; returns the pass@k table (arm ->
    metric -> (mean, SD))."""
    with run_lock(cfg.out):
        return _main_job(cfg, world)


def _main_job(cfg: RunConfig, world: World | None) -> dict:
    torch.set_num_threads(cfg.threads)
    world_given = world
    missing = {name: path for name, path in cfg.transfer.items() if not Path(path).is_file()}
    if missing:  # before hours of screening and teacher runs
        raise DataError(f"transfer set(s) not found: {missing} (build them first, e.g. `soar make-hard`)")
    out = open_main_folder(cfg)
    t_start = time.time()

    # 1. Hard sets.
    if cfg.make_hard and not (Path(cfg.hard_dir) / "train.jsonl").exists():
        print(f"hard sets: screening {cfg.hardset.pool_file or 'the generator'} with fail@{cfg.hardset.k}")
        setup = {f.name: getattr(cfg, f.name) for f in fields(ModelSetup)}
        make_hard(extend(cfg.hardset, HardSetConfig, **setup, out=cfg.hard_dir))
    base, tokenizer = load_policy(cfg.model, opts=cfg.load)
    world = world or make_world(cfg.world, tokenizer, cfg.prompts)
    # Questions outside the world's grammar are refused, their line named.
    hard_train = load_problems(Path(cfg.hard_dir) / "train.jsonl", world.in_grammar)
    hard_test = load_problems(Path(cfg.hard_dir) / "test.jsonl", world.in_grammar)
    hard_test = hard_test[: cfg.test_limit] if cfg.test_limit > 0 else hard_test
    for path in cfg.transfer.values():  # a bad transfer set fails now, not after the teacher runs
        load_problems(path, world.in_grammar)

    # 2. Teacher runs (each resumes where it stopped).
    teachers = run_teachers(cfg, world)

    # 3. Question sets, and their analysis.
    qsets = question_sets(cfg, teachers, base, tokenizer, world)
    embed = question_embedder(cfg, base, tokenizer)
    stats = {name: question_stats(ps, world, cfg, embed) for name, ps in qsets.items() if ps}
    atomic_write_text(out / "question_stats.json", json.dumps(stats, indent=1))

    # 4. Students, per seed and arm, on the held-out hard test set (side by side on parallel.workers).
    promos = {f"soar{sfx}": teachers[f"soar{sfx}"].promotions() for sfx in teacher_suffixes(cfg).values()}
    local = grid_context(cfg, base, tokenizer, world, hard_train, hard_test, qsets, promos)
    with Workers(cfg.parallel, main_context, (cfg, None if world_given is None else world), local) as workers:
        results = run_grid(out, grid_arms(cfg), cfg.seeds, workers)

    # 5. Report.
    table = summarize_teacher_seeds(results)
    teacher_metrics = {name: rows for name, f in teachers.items() if (rows := f.metrics())}
    from soar.jobs.report import main_report  # matplotlib: only when a report is written

    mix = {name: question_mix(f.questions(), world.kind) for name, f in teachers.items()} if world.kind else {}
    every_promotion = {name: rows for name, f in teachers.items() if (rows := f.promotions())}  # soar_oracle's too
    hard_phases = hard_phase_counts(out, results, lambda arm: hard_phase(arm, cfg.student))
    seconds = time.time() - t_start
    main_report(cfg, out, table, stats, teacher_metrics, every_promotion, seconds, mix, results, hard_phases)
    return table


def hard_phase(arm: str, student: StudentConfig) -> tuple[int, int] | None:
    """(the step from which `arm`'s batches hold hard problems at a fixed place, the row where they start), or
    None where none do (an untrained arm; pooled mixed mode). Hard-Only and fixed-share mixed mode start at
    once (mixed mode's questions fill the first rows); curriculum mode after its synthetic steps."""
    arm = arm.split("@t")[0]
    if arm in UNTRAINED:
        return None
    if arm == "hard_only":
        return 0, 0
    if student.mode == "mixed":
        return (0, student.mixed_questions) if student.mixed_questions else None
    return student.synthetic_steps, 0


def question_mix(rows: list[dict], kind) -> list[dict]:
    """Per outer step of a teacher run: how many questions it wrote, the share of each `kind(question)`
    ("unparsed" for None) and the share of its answers that are right (None where no truth is known)."""
    by_step: dict[int, list[dict]] = {}
    for r in rows:
        by_step.setdefault(r["step"], []).append(r)
    out = []
    for step, qs in sorted(by_step.items()):
        kinds = [kind(q["question"]) or "unparsed" for q in qs]
        known = [q["answer_correct"] for q in qs if q.get("answer_correct") is not None]
        shares = {k: kinds.count(k) / len(qs) for k in dict.fromkeys(kinds)}
        out.append(
            {"step": step, "n": len(qs), "shares": shares, "answer_correct": sum(known) / len(known) if known else None}
        )
    return out


def summarize_teacher_seeds(results: list[dict]) -> dict[str, dict[str, tuple[float, float]]]:
    """Mean and SD per arm: over student seeds; for an arm with several teacher seeds (`pq@t1`, ...), over the
    teacher seeds, of each teacher seed's mean over student seeds."""
    per_teacher = summarize(results)
    by_arm: dict[str, list[dict]] = {}
    for key, stats in per_teacher.items():
        by_arm.setdefault(key.split("@t")[0], []).append({k: m for k, (m, _) in stats.items()})
    return {arm: per_teacher[arm] if arm in per_teacher else aggregate(rows) for arm, rows in by_arm.items()}


def main_context(args: tuple[RunConfig, World | None]) -> GridContext:
    """A worker's copy of the student stage: everything read back from the run folder."""
    cfg, world = args
    base, tokenizer = load_policy(cfg.model, opts=cfg.load)
    world = world or make_world(cfg.world, tokenizer, cfg.prompts)
    hard_train = load_problems(Path(cfg.hard_dir) / "train.jsonl")
    hard_test = load_problems(Path(cfg.hard_dir) / "test.jsonl")
    hard_test = hard_test[: cfg.test_limit] if cfg.test_limit > 0 else hard_test
    qsets, promos = {}, {}
    for suffix in teacher_suffixes(cfg).values():
        key = arm_suffix(suffix)
        for a, src in QUESTION_SOURCES.items():
            if (p := Path(cfg.out) / "questions" / f"{a}{suffix if src else ''}.jsonl").exists():
                qsets[a + (key if src else "")] = load_problems(p)
        for arm, run in PQ_SOURCES.items():
            if (Path(cfg.out) / (run + suffix)).exists() and (pq := RunFolder(Path(cfg.out) / (run + suffix)).pq()):
                qsets[arm + key] = pq
        if (Path(cfg.out) / f"soar{suffix}").exists():
            promos[f"soar{suffix}"] = RunFolder(Path(cfg.out) / f"soar{suffix}").promotions()
    return grid_context(cfg, base, tokenizer, world, hard_train, hard_test, qsets, promos)


def grid_context(cfg: RunConfig, base, tokenizer, world: World, hard_train, hard_test, qsets, promos) -> GridContext:
    """How each arm's student is trained (or picked, for PS), for run_grid. `promos`: SOAR run folder name ->
    its promotions (one run, `soar`, or one per teacher seed, `soar_t<seed>`)."""
    ps_model: dict = {}  # PS is picked once for all student seeds (per teacher seed)
    bar = cfg.parallel.workers == 1  # progress bars of parallel workers would interleave
    slope = cfg.student.checkpoint_rule == "slope"
    transfer = {name: load_problems(path) for name, path in cfg.transfer.items()}

    def train(key: str, seed: int) -> Trained | None:
        arm, _, tseed = key.partition("@t")  # `pq@t1`: the PQ arm of teacher seed 1

        def evaluate_fn(model):  # the slope rule's held-out evaluations, seeded as the final one would be
            return evaluate(model, tokenizer, world, hard_test, cfg.eval, seeds.eval_seed(seed), cfg.max_new_tokens)

        def transfer_fn(model) -> dict:  # every transfer set, seeded as the held-out evaluation
            return transfer_columns(model, tokenizer, world, transfer, cfg, seed)

        evaluate_fn = evaluate_fn if slope else None
        transfer_fn = transfer_fn if transfer else None
        if arm == "base":
            return Trained(base, extra=transfer_fn(base) if transfer_fn else {})
        if arm in ("hard_only", "hard_only_g128"):
            scfg = cfg.student
            if arm == "hard_only_g128":
                scfg = replace(scfg, rloo=replace(scfg.rloo, group_size=scfg.hard_only_group))
            return train_student(
                base, tokenizer, world, hard_train, None, scfg, seed, cfg.max_new_tokens, bar, evaluate_fn, transfer_fn
            )
        if arm == "ps":
            run = "soar" + (f"_t{tseed}" if tseed else "")
            if not promos.get(run):
                print(f"PS: no promotion happened in the SOAR run {run}; nothing to evaluate")
                return None
            if run not in ps_model:
                ps_model[run] = best_promoted(promos[run], tokenizer, world, hard_train, cfg)
            return Trained(ps_model[run], extra=transfer_fn(ps_model[run]) if transfer_fn else {})
        if not qsets.get(key):
            print(f"{ARM_NAMES[arm]}{f' (teacher seed {tseed})' if tseed else ''}: empty question set; skipped")
            return None
        synthetic = qsets[key]
        return train_student(
            base,
            tokenizer,
            world,
            hard_train,
            synthetic,
            cfg.student,
            seed,
            cfg.max_new_tokens,
            bar,
            evaluate_fn,
            transfer_fn,
        )

    return GridContext(train, tokenizer, world, hard_test, cfg.eval, cfg.max_new_tokens)


def transfer_columns(model, tokenizer, world: World, sets: dict[str, list[Problem]], cfg: RunConfig, seed: int) -> dict:
    """`transfer/<set>/<metric>` columns of a result row: pass@k etc. of `model` on each transfer set."""
    out = {}
    for name, problems in sets.items():
        summary, _ = evaluate(model, tokenizer, world, problems, cfg.eval, seeds.eval_seed(seed), cfg.max_new_tokens)
        out |= {f"transfer/{name}/{k}": v for k, v in summary.items()}
    return out


def open_main_folder(cfg: RunConfig) -> Path:
    """Create the main job's folder, or check a resumed one's config (the analysis keys may change; arms and seeds
    may be added)."""
    out = Path(cfg.out)
    if cfg.resume:
        ignore = ("resume", "threads", "out", "parallel", *ANALYSIS_KEYS, *GROWING_KEYS)
        check_same_config(out / "config.yaml", cfg, ignore=ignore)
        saved = load_config(RunConfig, out / "config.yaml")
        dropped = {k: [v for v in getattr(saved, k) if v not in getattr(cfg, k)] for k in GROWING_KEYS}
        if any(dropped.values()):
            raise ConfigMismatch(
                f"{out} was started with {', '.join(f'{k} {v}' for k, v in dropped.items() if v)} that this config "
                f"drops; a resumed run may add arms and seeds, not drop them"
            )
        dump_config(replace(cfg, resume=False), out / "config.yaml")  # the analysis keys of the latest report
    elif (out / "config.yaml").exists():
        raise FileExistsError(
            f"{out} already holds a run: `soar run --resume {out}` continues it; or choose another --set out=DIR"
        )
    else:
        out.mkdir(parents=True, exist_ok=True)
        dump_config(cfg, out / "config.yaml")
    return out


def run_teachers(cfg: RunConfig, world: World) -> dict[str, RunFolder]:
    """The SOAR run and (when their arms are asked for) the Intrinsic-T and no-promotion runs, each finished
    or resumed."""
    teachers = {}
    for name, reward in TEACHER_RUNS.items():
        if name in RUN_NEEDED_BY and RUN_NEEDED_BY[name] not in cfg.arms:
            continue
        for tseed, suffix in teacher_suffixes(cfg).items():
            scfg = teacher_config(cfg, name, tseed)
            folder = RunFolder(scfg.out)
            if folder.steps_done() < scfg.outer_steps:
                print(f"teacher run: {name}{suffix} ({reward} reward, seed {tseed}), {scfg.outer_steps} outer steps")
                run_soar(scfg, world)
            teachers[name + suffix] = folder
    return teachers


def question_sets(
    cfg: RunConfig, teachers: dict[str, RunFolder], base, tokenizer, world: World
) -> dict[str, list[Problem]]:
    """Base-T / Grounded-T / Intrinsic-T question sets (written once, then read back) and PQ."""
    qsets: dict[str, list[Problem]] = {}
    for arm, src in QUESTION_SOURCES.items():
        if arm not in cfg.arms:
            continue
        for suffix in teacher_suffixes(cfg).values() if src else [""]:
            key = arm + arm_suffix(suffix)
            path = Path(cfg.out) / "questions" / f"{arm}{suffix}.jsonl"
            if not path.exists():
                teacher = base if src is None else teachers[src + suffix].teacher(cfg.load)[0]
                qs = sample_questions(teacher, tokenizer, world, cfg.questions, cfg, seeds.QUESTION_SETS)
                save_problems(path, qs)
            qsets[key] = load_problems(path)
    for arm, run in PQ_SOURCES.items():
        for suffix in teacher_suffixes(cfg).values():
            if run + suffix in teachers and (pq := teachers[run + suffix].pq()):
                qsets[arm + arm_suffix(suffix)] = pq
    return qsets


def best_promoted(promos: list[dict], tokenizer, world: World, hard_train: list[Problem], cfg: RunConfig):
    """PS: of the promoted students, the one with the best Acc on the hard TRAIN set, by the SOAR run's own
    measure (`soar.qr_metric`, the teacher reward's Acc); a tie goes to the later promotion, which was
    trained from the earlier one. (The paper does not say how its PS is picked.)"""
    best, best_acc = None, float("-inf")
    for p in promos:
        model, _ = load_policy(p["student_dir"], opts=cfg.load)
        acc = qr_accuracy(model, tokenizer, world, hard_train, cfg.soar, seeds.PS_SELECTION, cfg.max_new_tokens)
        print(f"PS candidate {p['student_dir']}: Acc on the hard train set {acc:.4f} ({cfg.soar.qr_metric})")
        if acc >= best_acc:
            best, best_acc = model, acc
    return best


__all__ = ["RunConfig", "StudentConfig", "run_main", "question_stats", "teacher_config", "train_student"]
