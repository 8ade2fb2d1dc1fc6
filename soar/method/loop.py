"""The SOAR loop (the paper's Algorithm 1): the teacher writes datasets, copies of the baseline student
learn from them, the teacher learns from the students' gains on real hard problems, and the best student is
promoted. `outer_step` is one iteration, in the paper's order; `run_soar` drives it over a run folder.

Departures from the paper (docs/DESIGN.md gives the reasons and numbers):
1. Acc(., Q_R) may be a denser measure than greedy accuracy (`qr_metric`; the arithmetic default is sampled
   step credit), because every tiny student's greedy accuracy on fail@128 problems is 0.
2. After a promotion the reward window is cleared: later rewards are gains over the new baseline.
3. The teacher may answer its own question in a second turn (`teacher.answer_mode`, soar.method.teacher).
"""

from __future__ import annotations

import json
import random
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

import torch

from soar.core import seeds
from soar.core.config import ConfigMismatch, at_least, to_dict
from soar.core.lock import run_lock
from soar.core.parallel import Workers, in_order
from soar.core.problems import Problem, load_problems
from soar.engine.evaluate import correct_counts, forced_step_credit
from soar.engine.model import clone_model, frozen, load_policy, load_trainable_state, trainable_state
from soar.engine.rloo import (
    RLOOConfig,
    RLOORun,
    cycling_batches,
    lr_schedule,
    policy_update,
    rloo_advantages,
    train_rloo,
)
from soar.engine.sampling import encode_prompts, sample, sample_copies
from soar.engine.setup import Setup
from soar.method.rewards import dataset_reward, learnability_reward, promotion_decision
from soar.method.run_folder import RunFolder, RunState
from soar.method.teacher import TeacherConfig, TeacherSample, as_problems, write_datasets
from soar.method.tracking import Tracker, check_report_to
from soar.world import World, make_world

QR_METRICS = ("greedy", "sampled", "partial", "partial_sampled", "forced")
REWARDS = ("grounded", "intrinsic")


def _inner_default() -> RLOOConfig:
    """The students' RLOO: their lr (5e-5) without warm-up; paper 1e-5 (docs/DESIGN.md, "Inner loop")."""
    return RLOOConfig(steps=10, batch_size=8, group_size=8, lr=5e-5, warmup=0)


@dataclass
class SoarSettings:
    """The method's settings (the main job's `soar:` section)."""

    outer_steps: int = 20
    """paper: at most 200"""
    r: int = 2
    """student copies per dataset (paper 4)"""
    qr_size: int = 64
    """|Q_R| per outer step (paper 64)"""
    qr_metric: str = "partial_sampled"
    """Acc(student, Q_R): greedy (the paper) | sampled (qr_samples at temperature 1) | partial (the world's
    step credit of the greedy answer) | partial_sampled (mean step credit of qr_samples answers at temperature
    1; the arithmetic default: greedy accuracy of every tiny student is 0 on fail@128 problems) | forced (the
    probability of each step of the world's worked solution given the true steps before it, averaged: no
    sampling; soar.engine.evaluate.forced_step_credit)"""
    qr_samples: int = 8
    """samples per Q_R question for qr_metric=sampled and partial_sampled"""
    intrinsic_samples: int = 32
    """Intrinsic-T: samples per question for the success rate s_i (paper 32)"""
    window: int = 3
    """moving-average window m of the promotion rule (paper 3)"""
    tau: float = 0.01
    """promotion threshold (paper 0.01)"""
    promote: bool = True
    """False = the no-promotion ablation"""
    lockstep: bool = False
    """LoRA students: the copies given to one worker train side by side, each RLOO step's sampling and their
    Q_R scoring in one batch over the shared frozen base (soar.engine.sampling.sample_copies; many students
    share one GPU); the same R_k as one copy at a time (tested)"""
    promotion_steps: int = 5
    """RLOO steps the promoted student trains on its dataset once more before it becomes the baseline (paper 5;
    the inner loop's settings)"""
    teacher: TeacherConfig = field(default_factory=TeacherConfig)
    inner: RLOOConfig = field(default_factory=_inner_default)
    """the students' RLOO (paper: 10 steps, batch 8, group 32, lr 1e-5; here group 8, lr 5e-5)"""
    seed: int = 0
    """the teacher run's seed (every draw of step t derives from it: soar.core.seeds)"""
    save_teacher_every: int = 0
    """also keep teacher checkpoints every k outer steps (0 = only the latest)"""
    report_to: tuple[str, ...] = ("tensorboard",)
    """metric backends: tensorboard | wandb (W&B honours WANDB_MODE=offline)"""

    def __post_init__(self) -> None:
        if self.qr_metric not in QR_METRICS:
            raise ValueError(f"qr_metric must be one of {', '.join(QR_METRICS)}, got {self.qr_metric!r}")
        if self.teacher.g < 2:
            raise ValueError("teacher.g must be >= 2 (leave-one-out needs two datasets per group)")
        at_least(self, 1, "r", "qr_size", "qr_samples", "intrinsic_samples", "window")
        at_least(self, 0, "outer_steps", "save_teacher_every", "promotion_steps")
        check_report_to(self.report_to)


@dataclass
class SoarConfig(SoarSettings, Setup):
    """One SOAR teacher run (`soar teach`): the shared set-up, the method's settings, and where it runs."""

    out: str = "runs/soar"
    """the run folder (soar.method.run_folder)"""
    reward: str = "grounded"
    """grounded (SOAR) | intrinsic (Intrinsic-T: learnability of X_k for the baseline student)"""
    resume: bool = False
    """continue the run in `out` from its last checkpoint (the config must match)"""

    def __post_init__(self) -> None:
        Setup.__post_init__(self)
        SoarSettings.__post_init__(self)
        if self.reward not in REWARDS:
            raise ValueError(f"reward must be one of {', '.join(REWARDS)}, got {self.reward!r}")
        check_lockstep(self, self.load)


def check_lockstep(cfg: SoarSettings, load) -> None:
    """`lockstep` decodes LoRA copies over one base with the fused decoder: it needs LoRA and that decoder."""
    if cfg.lockstep and load.lora.r == 0:
        raise ValueError("soar.lockstep trains LoRA students side by side: set load.lora.r > 0 (or lockstep: false)")
    if cfg.lockstep and load.sampler == "hf":
        raise ValueError("soar.lockstep samples its students with the fused decoder: use load.sampler auto or fused")


def qr_accuracy(
    model, tokenizer, world: World, problems: list[Problem], cfg: SoarSettings, seed: int, max_new_tokens: int
) -> float:
    """Acc(student, Q_R) by `cfg.qr_metric`."""
    return qr_accuracies([model], tokenizer, world, problems, cfg, seed, max_new_tokens)[0]


def qr_accuracies(
    models: list, tokenizer, world: World, problems: list[Problem], cfg: SoarSettings, seed: int, max_new_tokens: int
) -> list[float]:
    """Acc(student, Q_R) of each of `models`, each scored with the same seed (LoRA copies over one base are
    sampled in one batch: soar.engine.sampling.sample_copies)."""
    if cfg.qr_metric in ("partial", "partial_sampled") and world.partial_credit is None:
        raise ValueError(f"qr_metric={cfg.qr_metric}: the {world.name} world has no partial credit")
    if cfg.qr_metric == "forced":
        return [forced_step_credit(m, tokenizer, world, problems) for m in models]
    greedy = cfg.qr_metric in ("greedy", "partial")
    k = 1 if greedy else cfg.qr_samples
    prompts = [world.student_prompt(p.question) for p in problems]
    kw = {"temperature": 0.0 if greedy else 1.0, "max_new_tokens": max_new_tokens}
    if len(models) == 1:
        outs = [sample(models[0], tokenizer, prompts, k, seed=seed, **kw)]
    else:
        outs = sample_copies(models, tokenizer, [prompts] * len(models), k, seeds=[seed] * len(models), **kw)
    accs = []
    for out in outs:
        if cfg.qr_metric in ("partial", "partial_sampled"):
            credit = [
                world.partial_credit(p.question, s.text) for p, row in zip(problems, out, strict=True) for s in row
            ]
        else:
            credit = [world.solves(p.answer, s.text) for p, row in zip(problems, out, strict=True) for s in row]
        accs.append(sum(credit) / len(credit))
    return accs


# --------------------------------------------------------------------------------------------------------
# The inner loop of one dataset X_k
@dataclass
class DatasetResult:
    """What the inner loop (or the intrinsic reward) of one dataset X_k gives the outer step."""

    reward: float
    """R_k"""
    student_rewards: list[float]
    """each student copy's gain (Intrinsic-T: [R_k])"""
    students: list[dict] = field(default_factory=list)
    """the copies' trainable states on the CPU, kept for a promotion at the end of the step (LoRA: adapters
    only); only for the best dataset of the step (the one a promotion would take), empty for the others"""
    seconds: dict[str, float] = field(default_factory=dict)
    """the copies' seconds of student sampling, student updates and Q_R scoring (summed over copies)"""


@dataclass
class InnerContext:
    """What a worker needs to train student copies: the baseline student (in a worker: a model of its shape
    whose weights each task sets), the tokenizer, the world, the run's settings."""

    baseline: object
    tokenizer: object
    world: World
    cfg: SoarConfig


@dataclass
class CopyTask:
    """One student copy j of dataset k at outer step t (grounded), or dataset k's learnability (intrinsic)."""

    problems: list[Problem]
    qr: list[Problem]
    t: int
    k: int
    j: int
    baseline_state: dict | None = None
    """the baseline's trainable state, sent to worker processes (None: use the context's baseline as it is)"""


def inner_context(args: tuple[SoarConfig, World | None]) -> InnerContext:
    """A worker's context: the base model's shape, loaded once; each task brings the baseline's weights."""
    cfg, world = args
    model, tokenizer = load_policy(cfg.model, opts=cfg.load)
    return InnerContext(model, tokenizer, world or make_world(cfg.world, tokenizer, cfg.prompts), cfg)


def _baseline(ctx: InnerContext, task: CopyTask):
    if task.baseline_state is not None:
        load_trainable_state(ctx.baseline, task.baseline_state)
    return ctx.baseline


def train_copy(ctx: InnerContext, task: CopyTask) -> tuple[float, dict, dict]:
    """One copy of the baseline trains RLOO on X_k against the teacher's answers: (Acc on Q_R, its state,
    its seconds spent sampling, updating and scoring Q_R)."""
    cfg = ctx.cfg
    student = clone_model(_baseline(ctx, task))
    batches = cycling_batches(task.problems, cfg.inner.batch_size)
    seed = seeds.derive(cfg.seed, task.t, seeds.STUDENT, task.k, task.j)
    history = train_rloo(student, ctx.tokenizer, ctx.world, batches, cfg.inner, seed, cfg.max_new_tokens)
    t0 = time.time()
    qr_seed = seeds.derive(cfg.seed, task.t, seeds.QR_SCORE)
    acc = qr_accuracy(student, ctx.tokenizer, ctx.world, task.qr, cfg, qr_seed, cfg.max_new_tokens)
    sampling = sum(h["sample_s"] for h in history)
    seconds = {"sample": sampling, "update": sum(h["step_s"] for h in history) - sampling, "qr": time.time() - t0}
    return acc, trainable_state(student), seconds


def train_copies(ctx: InnerContext, tasks: list[CopyTask]) -> list[tuple[float, dict, dict]]:
    """`train_copy` for LoRA copies side by side (`lockstep`): every RLOO step samples all copies in one
    batch over their shared base, then each copy takes its own optimizer step; Q_R scores all of them in one
    batch. Each copy draws what it would alone (the same seeds), so the results are `train_copy`'s."""
    cfg = ctx.cfg
    baseline = _baseline(ctx, tasks[0])  # the tasks of one outer step share one baseline
    students = [clone_model(baseline) for _ in tasks]
    runs = [
        RLOORun(
            student,
            ctx.tokenizer,
            ctx.world,
            cycling_batches(task.problems, cfg.inner.batch_size),
            cfg.inner,
            seeds.derive(cfg.seed, task.t, seeds.STUDENT, task.k, task.j),
        )
        for student, task in zip(students, tasks, strict=True)
    ]
    for step in range(cfg.inner.steps):
        t0 = time.time()
        proposals = [run.propose(step) for run in runs]
        samples = sample_copies(
            students,
            ctx.tokenizer,
            [prompts for prompts, _ in proposals],
            cfg.inner.group_size,
            temperature=cfg.inner.temperature,
            max_new_tokens=cfg.max_new_tokens,
            seeds=[seed for _, seed in proposals],
        )
        share = (time.time() - t0) / len(runs)  # the batch's seconds, split evenly over its copies
        for run, mine in zip(runs, samples, strict=True):
            run.learn(step, mine, share)
    t0 = time.time()
    qr_seed = seeds.derive(cfg.seed, tasks[0].t, seeds.QR_SCORE)
    accs = qr_accuracies(students, ctx.tokenizer, ctx.world, tasks[0].qr, cfg, qr_seed, cfg.max_new_tokens)
    qr_s = (time.time() - t0) / len(tasks)
    out = []
    for acc, student, run in zip(accs, students, runs, strict=True):
        sampling = sum(h["sample_s"] for h in run.history)
        seconds = {"sample": sampling, "update": sum(h["step_s"] for h in run.history) - sampling, "qr": qr_s}
        out.append((acc, trainable_state(student), seconds))
    return out


def _copy_results(run: Run, tasks: list[CopyTask]):
    """(task index, train_copy's result) of every copy task: one task per copy, or with `lockstep` one
    chunk of consecutive copies per worker, trained side by side."""
    if not run.cfg.lockstep:
        yield from run.workers.run(train_copy, tasks)
        return
    size = -(-len(tasks) // run.cfg.parallel.workers)
    chunks = [list(range(s, min(s + size, len(tasks)))) for s in range(0, len(tasks), size)]
    for c, results in run.workers.run(train_copies, [[tasks[i] for i in chunk] for chunk in chunks]):
        yield from zip(chunks[c], results, strict=True)


def intrinsic_reward(ctx: InnerContext, task: CopyTask) -> DatasetResult:
    """Intrinsic-T: R_k = the learnability of X_k for the baseline student (no inner training)."""
    cfg, n = ctx.cfg, ctx.cfg.intrinsic_samples
    seed = seeds.derive(cfg.seed, task.t, seeds.INTRINSIC, task.k)
    counts = correct_counts(
        _baseline(ctx, task), ctx.tokenizer, ctx.world, task.problems, n, 1.0, cfg.max_new_tokens, seed
    )
    reward = learnability_reward([c / n for c in counts])
    return DatasetResult(reward, [reward])


def inner_loop(run: Run, problem_sets: list[list[Problem]], qr: list[Problem], base_acc: float, t: int):
    """R_k of every dataset: grounded, r trained copies per dataset (all g x r side by side on the run's
    workers); intrinsic, the baseline's learnability. One DatasetResult per dataset, in dataset order."""
    cfg = run.cfg
    state = trainable_state(run.student.model) if cfg.parallel.workers > 1 else None
    if cfg.reward == "intrinsic":
        tasks = [CopyTask(ps, qr, t, k, 0, state) for k, ps in enumerate(problem_sets)]
        return in_order(run.workers.run(intrinsic_reward, tasks), len(tasks))
    tasks = [CopyTask(ps, qr, t, k, j, state) for k, ps in enumerate(problem_sets) for j in range(cfg.r)]
    copies: dict[int, dict[int, tuple]] = {k: {} for k in range(len(problem_sets))}
    results: dict[int, DatasetResult] = {}
    best = None  # the first dataset with the largest R_k so far: only its students' states are kept
    for i, (acc, st, sec) in _copy_results(run, tasks):
        k = tasks[i].k
        copies[k][tasks[i].j] = (acc, st, sec)
        if len(copies[k]) < cfg.r:
            continue
        mine = [copies[k].pop(j) for j in range(cfg.r)]
        accs = [acc for acc, _, _ in mine]
        seconds = {key: sum(s[key] for _, _, s in mine) for key in ("sample", "update", "qr")}
        results[k] = DatasetResult(dataset_reward(accs, base_acc), [a - base_acc for a in accs], [], seconds)
        if best is None or (results[k].reward, -k) > (results[best].reward, -best):
            if best is not None:
                results[best].students = []
            best = k
            results[k].students = [s for _, s, _ in mine]
    return [results[k] for k in range(len(problem_sets))]


# --------------------------------------------------------------------------------------------------------
# The outer loop's learner
@dataclass
class Teacher:
    """The teacher policy with its optimizer, its frozen reference (for the KL term) and its one prompt."""

    model: object
    reference: object | None
    opt: torch.optim.Optimizer
    sched: torch.optim.lr_scheduler.LRScheduler
    prompt_ids: list[int]
    pad: int


def make_teacher(model, tokenizer, world: World, cfg: SoarConfig) -> Teacher:
    tcfg = cfg.teacher
    reference = frozen(load_policy(cfg.model, opts=cfg.load)[0]) if tcfg.kl_coef > 0 else None
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=tcfg.lr, weight_decay=0.0)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_schedule(cfg.outer_steps, tcfg.warmup, tcfg.schedule))
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    prompt_ids = encode_prompts(tokenizer, [world.teacher_prompt + tcfg.prefill])[0]
    return Teacher(model, reference, opt, sched, prompt_ids, pad)


def teacher_update(
    teacher: Teacher, tokenizer, datasets: list[list[TeacherSample]], R: list[float], cfg: TeacherConfig
):
    """Teacher RLOO: leave-one-out over the g datasets of each group; every sample of X_k shares its advantage
    (two-turn mode: its answer turn too). Returns (advantages, update stats)."""
    adv = rloo_advantages(torch.tensor(R, dtype=torch.float32).view(cfg.groups, cfg.g)).flatten().tolist()
    rows = [(teacher.prompt_ids, s.token_ids, adv[k]) for k, ds in enumerate(datasets) for s in ds]
    rows += [
        (encode_prompts(tokenizer, [s.answer_prompt])[0], s.answer_token_ids, adv[k])
        for k, ds in enumerate(datasets)
        for s in ds
        if s.answer_token_ids is not None
    ]
    stats = policy_update(
        teacher.model,
        teacher.reference,
        teacher.opt,
        teacher.sched,
        rows,
        cfg.kl_coef,
        cfg.grad_clip,
        cfg.micro_batch,
        teacher.pad,
    )
    return adv, stats


# --------------------------------------------------------------------------------------------------------
# One outer step
class Clock:
    """Wall seconds of the named blocks of one outer step (logged as time_<block>_s)."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self._last = time.time()

    def lap(self, name: str) -> None:
        now = time.time()
        self.seconds[name] = now - self._last
        self._last = now


@dataclass
class Student:
    """The baseline student and the Promotion Questions it was promoted on."""

    model: object
    pq: list[Problem]


@dataclass
class Run:
    """The long-lived objects of one teacher run."""

    cfg: SoarConfig
    teacher: Teacher
    student: Student
    tokenizer: object
    world: World
    hard_train: list[Problem]
    state: RunState
    folder: RunFolder
    workers: Workers
    """where the inner loop's student copies train (soar.core.parallel)"""


def outer_step(run: Run, t: int) -> tuple[dict, list[dict]]:
    """Outer step t of Algorithm 1; updates the teacher, the baseline student and the run state in place.
    Returns (metrics, one row per question)."""
    cfg, tcfg, student, tok, world = run.cfg, run.cfg.teacher, run.student, run.tokenizer, run.world
    t0 = time.time()
    clock = Clock()
    # 1. Q_R: fresh hard-train problems, and the baseline student's accuracy on them.
    qr = random.Random(seeds.derive(cfg.seed, t, seeds.QR_DRAW)).sample(run.hard_train, cfg.qr_size)
    base_acc = qr_accuracy(
        student.model, tok, world, qr, cfg, seeds.derive(cfg.seed, t, seeds.QR_SCORE), cfg.max_new_tokens
    )
    clock.lap("baseline_qr")

    # 2. The teacher writes groups x g datasets X_k of n valid pairs.
    teacher_seed = seeds.derive(cfg.seed, t, seeds.TEACHER)
    datasets, gen_stats = write_datasets(
        run.teacher.model, tok, world, tcfg, tcfg.groups * tcfg.g, teacher_seed, cfg.max_new_tokens
    )
    problem_sets = [as_problems(ds, world, tcfg.answers) for ds in datasets]
    clock.lap("teacher_sampling")

    # 3. Inner loop: R_k for every dataset (grounded: trained students' gains; intrinsic: learnability).
    results = inner_loop(run, problem_sets, qr, base_acc, t)
    R = [res.reward for res in results]
    clock.lap("inner_loop")

    # 4. Outer loop: one teacher RLOO update on the rewards.
    adv, tstats = teacher_update(run.teacher, tok, datasets, R, tcfg)
    clock.lap("teacher_update")

    # 5. Promotion: when the moving average of R-hat passes tau, the best dataset's median student.
    rhat = sum(R) / len(R)
    run.state.rhat_since_promotion.append(rhat)
    per_student = [res.student_rewards for res in results]
    decision = promotion_decision(run.state.rhat_since_promotion, R, per_student, cfg.window, cfg.tau)
    promoted = cfg.promote and cfg.reward == "grounded" and decision.promote
    if promoted:
        promote(run, t, decision, results[decision.dataset], problem_sets[decision.dataset], R)
    clock.lap("promotion")
    for key in ("sample", "update", "qr"):  # CPU-side seconds inside the inner loop, summed over all copies
        clock.seconds[f"inner_{key}_total"] = sum(res.seconds.get(key, 0.0) for res in results)

    metrics = {"step": t, "rhat": rhat, "rbar": decision.rbar, "R": R, "baseline_acc": base_acc}
    metrics |= {"promoted": promoted, "pq_size": len(student.pq), **gen_stats}
    metrics |= {f"teacher_{k}": v for k, v in tstats.items()}  # pg_loss, kl, grad_norm
    metrics |= {"teacher_lr": run.teacher.sched.get_last_lr()[0], "seconds": round(time.time() - t0, 2)}
    metrics |= {f"time_{k}_s": round(v, 3) for k, v in clock.seconds.items()}
    return metrics, question_rows(t, datasets, R, adv, world)


def promote(run: Run, t: int, decision, best: DatasetResult, new_pq: list[Problem], R: list[float]) -> None:
    """The median student of the best dataset, after `promotion_steps` more RLOO steps on that dataset,
    becomes the baseline; its dataset joins PQ; the window restarts."""
    state, student, cfg = run.state, run.student, run.cfg
    load_trainable_state(student.model, best.students[decision.student])
    if cfg.promotion_steps > 0:
        batches = cycling_batches(new_pq, cfg.inner.batch_size)
        extra = replace(cfg.inner, steps=cfg.promotion_steps)
        seed = seeds.derive(cfg.seed, t, seeds.PROMOTION)
        train_rloo(student.model, run.tokenizer, run.world, batches, extra, seed, cfg.max_new_tokens)
    student.pq.extend(new_pq)
    state.pq_size = len(student.pq)
    event = {
        "step": t,
        "rbar": decision.rbar,
        "window": list(state.rhat_since_promotion[-run.cfg.window :]),
        "dataset": decision.dataset,
        "student": decision.student,
        "R_k": R[decision.dataset],
        "pq_size": len(student.pq),
    }
    saved = run.folder.save_promotion(len(state.promotions), event, student.pq, student.model, run.tokenizer)
    state.promotions.append(saved)
    state.rhat_since_promotion = []


def question_rows(
    t: int, datasets: list[list[TeacherSample]], R: list[float], adv: list[float], world: World
) -> list[dict]:
    """One row per question the teacher wrote: the paper's findings come from analysing these."""
    rows = []
    for k, ds in enumerate(datasets):
        for i, s in enumerate(ds):
            truth = world.true_answer(s.pair.question) if world.true_answer else None
            cls = world.classify(s.pair.question) if world.classify else None
            rows.append(
                {
                    "step": t,
                    "dataset": k,
                    "index": i,
                    "question": s.pair.question,
                    "answer": s.pair.answer,
                    "valid": True,
                    "reward": R[k],
                    "advantage": adv[k],
                    "answer_correct": None if truth is None else bool(world.is_equal(truth, s.pair.answer)),
                    "family": cls[0] if cls else None,
                    "level": cls[1] if cls else None,
                }
            )
    return rows


def scalars(metrics: dict, state: RunState) -> dict[str, float]:
    """The namespaced scalars of one outer step for the tracking backends."""
    keys = ("rhat", "rbar", "baseline_acc", "invalid_rate", "teacher_kl", "teacher_grad_norm")
    out = {f"outer/{k}": metrics[k] for k in keys}
    return {**out, "promotion/pq_size": metrics["pq_size"], "promotion/count": len(state.promotions)}


# --------------------------------------------------------------------------------------------------------
# The driver
def run_soar(cfg: SoarConfig, world: World | None = None, on_step=None, progress: bool = True) -> Path:
    """Train the teacher for `cfg.outer_steps` outer steps in the run folder `cfg.out`, resuming from its last
    checkpoint with `cfg.resume`; returns the folder. `on_step(step, metrics)` is called after each step.
    The folder is locked for the whole run."""
    with run_lock(cfg.out):
        return _train_teacher(cfg, world, on_step, progress)


def _train_teacher(cfg: SoarConfig, world: World | None, on_step, progress: bool) -> Path:
    torch.set_num_threads(cfg.threads)
    world_given = world
    hard_train = load_problems(Path(cfg.hard_dir) / "train.jsonl")
    if len(hard_train) < cfg.qr_size:
        raise ValueError(f"qr_size={cfg.qr_size} is larger than the hard train set ({len(hard_train)} problems)")

    # Open the run folder: a fresh start, or the last checkpoint.
    folder = RunFolder(cfg.out)
    resumed = folder.open(cfg, cfg.resume)
    if resumed is None:
        state = RunState()
        teacher_model, tokenizer = load_policy(cfg.model, opts=cfg.load)
        student = Student(clone_model(teacher_model), [])  # LoRA: new adapters over the teacher's frozen base
    else:
        state = resumed.state
        teacher_model, tokenizer = load_policy(resumed.checkpoint / "teacher", opts=cfg.load)
        student = Student(load_policy(resumed.checkpoint / "baseline", opts=cfg.load)[0], resumed.pq)
    world = world or make_world(cfg.world, tokenizer, cfg.prompts)
    hard_train = load_problems(Path(cfg.hard_dir) / "train.jsonl", world.in_grammar)
    teacher = make_teacher(teacher_model, tokenizer, world, cfg)
    if resumed is not None:
        folder.load_optim(resumed.checkpoint, teacher.opt, teacher.sched)
    tracker = Tracker(
        cfg.out, cfg.report_to, f"{Path(cfg.out).name}-{cfg.reward}", json.loads(json.dumps(to_dict(cfg)))
    )
    local = InnerContext(student.model, tokenizer, world, cfg)
    workers = Workers(cfg.parallel, inner_context, (cfg, world_given), local_context=local)
    run = Run(cfg, teacher, student, tokenizer, world, hard_train, state, folder, workers)
    with workers:
        _outer_steps(run, tracker, on_step, progress)
    tracker.close()
    return folder.path


def _outer_steps(run: Run, tracker: Tracker, on_step, progress: bool) -> None:
    cfg, state, folder, teacher = run.cfg, run.state, run.folder, run.teacher
    bar = _progress_bar(cfg, state.step) if progress else None
    for t in range(state.step, cfg.outer_steps):
        metrics, questions = outer_step(run, t)
        # Log the step, then save it (the step is complete only once its checkpoint exists).
        folder.log_step(metrics, questions)
        tracker.log(scalars(metrics, state), t)
        state.step = t + 1
        folder.save_checkpoint(
            state, teacher.model, run.tokenizer, teacher.opt, teacher.sched, run.student.model, cfg, run.student.pq
        )
        if cfg.save_teacher_every and (t + 1) % cfg.save_teacher_every == 0:
            folder.save_teacher_snapshot(teacher.model, run.tokenizer, t + 1)
        if on_step is not None:
            on_step(t, metrics)
        if bar is not None:
            bar.update(1)
            bar.set_postfix(rhat=f"{metrics['rhat']:+.3f}", rbar=f"{metrics['rbar']:+.3f}", pq=metrics["pq_size"])
    if bar is not None:
        bar.close()


def _progress_bar(cfg: SoarConfig, start: int):
    from tqdm import tqdm

    return tqdm(total=cfg.outer_steps, initial=start, desc=f"SOAR ({cfg.reward})", dynamic_ncols=True)


__all__ = ["SoarConfig", "SoarSettings", "TeacherConfig", "run_soar", "outer_step", "ConfigMismatch"]
