"""The SOAR loop, top to bottom: the teacher writes datasets, students learn from them, the teacher
learns from the students' gains on real hard problems, and the best student is promoted.

One outer step t (paper, SPEC "Roles and loops" .. "Promotion"):
  1. Q_R: `qr_size` problems sampled fresh from the hard TRAIN split; the baseline student's accuracy on it.
  2. The teacher writes `groups` x g datasets X_k of n valid question/answer pairs (soar.teacher).
  3. Inner loop: for each X_k, r copies of the baseline student (distinct seeds) train RLOO for
     `inner.steps` steps on X_k, rewarded against the TEACHER's answers; each is scored on Q_R.
     R_k = mean over the r copies of (trained accuracy - baseline accuracy)   [soar.rewards]
     (Intrinsic-T instead: R_k = the learnability of X_k for the baseline student, no inner training.)
  4. Outer loop: one teacher RLOO update; every teacher sample in X_k gets X_k's leave-one-out advantage
     within its group of g datasets; KL to the frozen initial teacher.
  5. Promotion: when the moving average of Rhat_t = mean_k R_k over `window` steps exceeds `tau`, the
     median-reward student of argmax_k R_k becomes the baseline and X_k joins the Promotion Questions.

Every outer step ends with an atomic checkpoint; `resume=True` continues a killed run from the last one,
and a resumed run equals an uninterrupted one with the same seed on CPU (every random draw of step t is
seeded from (seed, t, ...), so nothing depends on state that is not saved).

Departures from the paper (documented in the README):
- `qr_metric` chooses Acc(., Q_R): "greedy" (the paper: one greedy answer per question), "sampled" (mean
  correctness of `qr_samples` temperature-1 samples) or "partial" (the world's partial credit of the greedy
  answer; arithmetic: the share of steps right before the first mistake). The last two are denser rewards
  for tiny models whose greedy accuracy on fail@k problems stays 0 after a few inner steps.
- After a promotion the reward window is cleared (later rewards are gains over the new baseline).
"""

from __future__ import annotations

import json
import random
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

from soar.config import ConfigMismatch, check_same_config, dump_config
from soar.evaluate import correct_counts
from soar.io import append_jsonl, atomic_write_text, read_jsonl
from soar.model import (
    DEFAULT_MODEL,
    LoadConfig,
    clone_model,
    frozen,
    load_policy,
    load_trainable_state,
    save_policy,
    trainable_state,
)
from soar.problems import Problem, load_problems, save_problems
from soar.rewards import dataset_reward, learnability_reward, promotion_decision
from soar.rloo import RLOOConfig, cycling_batches, lr_lambda, policy_update, rloo_advantages, train_rloo
from soar.sampling import encode_prompts, sample
from soar.teacher import TeacherSample, as_problems, write_datasets
from soar.world import World, check_world, make_world


@dataclass
class TeacherConfig:
    """The outer loop's teacher RLOO (paper Table 3, scaled down to the arithmetic world on 2 cores)."""

    n: int = 16
    """questions per dataset (paper 64)"""
    g: int = 4
    """datasets per group: the RLOO group of the teacher (paper 4)"""
    groups: int = 1
    """groups per outer step (paper "batch size 2")"""
    lr: float = 5e-5
    """paper 1e-5 for a 3B model"""
    warmup: int = 5
    """paper 20 (of 200 outer steps)"""
    schedule: str = "cosine"
    kl_coef: float = 0.001
    temperature: float = 1.0
    max_new_tokens: int = 200
    """paper 512; a teacher document of the arithmetic world (with its transcript) is about 195 characters"""
    max_attempts: float = 8.0
    """give up the step after max_attempts x g x n samples without g x n valid pairs"""
    answer_mode: str = "two_turn"
    """inline (the paper: the answer inside the tags) | two_turn (the default for the arithmetic world: the
    teacher answers its own question with the student prompt; both turns are trained; the tiny base
    model's in-tag answers are never right). See soar/teacher.py."""
    answer_temperature: float = 1.0
    """two_turn: temperature of the teacher's answer turn. 1.0 = sampled like the rest of the teacher's
    output, as the paper's in-tag answers are; 0 = greedy (the default until 2026-11-28). On the careless
    base model a greedy answer slips at every hard step, so a teacher could never explore right answers to
    the questions that matter and be rewarded for them."""
    grad_clip: float = 1.0
    micro_batch: int = 128
    prefill: str = ""
    """text that starts every teacher reply (part of the prompt, not trained); "" = the paper. Tiny chat models
    follow the format more often with "<question>" (configs/smollm2-cpu.yaml)"""
    require_box: bool = True
    """the paper's rule: the answer tag must hold \\boxed{}; false also takes a bare answer (tiny models)"""

    def __post_init__(self) -> None:
        if self.answer_mode not in ("inline", "two_turn"):
            raise ValueError(f"teacher.answer_mode must be 'inline' or 'two_turn', got {self.answer_mode!r}")


def _inner_default() -> RLOOConfig:
    # The students' lr (5e-5, paper 1e-5) without warm-up (the paper's). Measured on the shipped model
    # (benchmarks/rl_probe.py --mode inner, docs/world-design.md): at 1e-5 ten steps move Q_R step credit by
    # +0.003 whatever the data, so R cannot tell stepping stones from the hard set; at 5e-5 true stones
    # give +0.028 +- 0.013 and easy problems / the hard set 0.000; at 2e-4 the model breaks.
    return RLOOConfig(steps=10, batch_size=8, group_size=8, lr=5e-5, warmup=0)


@dataclass
class SoarConfig:
    """One SOAR run (`soar run`'s teacher-training stage)."""

    model: str = str(DEFAULT_MODEL)
    """base model of both teacher and student: a local directory, a .gguf file, pkg:PACKAGE/FILE or a hub name"""
    world: str = "arithmetic"
    """arithmetic | math (LaTeX answers checked by math-verify; chat template when the tokenizer has one)"""
    load: LoadConfig = field(default_factory=LoadConfig)
    """device, dtype, gradient checkpointing and LoRA of teacher and students"""
    hard_dir: str = "data/hard"
    """folder with the fail@k train.jsonl (Q_R is drawn from it; test.jsonl is never read here)"""
    out: str = "runs/soar"
    reward: str = "grounded"
    """grounded (SOAR) | intrinsic (Intrinsic-T: learnability of X_k for the baseline student)"""
    outer_steps: int = 20
    """paper: at most 200"""
    r: int = 2
    """student copies per dataset (paper 4)"""
    qr_size: int = 64
    """|Q_R| per outer step (paper 64)"""
    qr_metric: str = "partial_sampled"
    """Acc(student, Q_R): greedy (the paper; configs/paper-math.yaml) | sampled (qr_samples at temperature 1) |
    partial (the world's step credit of the greedy answer) | partial_sampled (the mean step credit of
    qr_samples answers at temperature 1; the arithmetic default). Departs from the paper: every tiny student's
    accuracy on fail@128 problems is 0, which would make every reward 0, and the greedy answer takes the
    careless slip (probability 0.97) at every hard step until a student's slip rate falls below one half, so
    greedy step credit does not see the gains that ten inner steps make; sampled step credit does."""
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
    teacher: TeacherConfig = field(default_factory=TeacherConfig)
    inner: RLOOConfig = field(default_factory=_inner_default)
    """the students' RLOO (paper: 10 steps, batch 8, group 32, lr 1e-5; here group 8, lr 5e-5)"""
    eval_max_new_tokens: int = 64
    seed: int = 0
    threads: int = 2
    resume: bool = False
    """continue the run in `out` from its last checkpoint (the config must match)"""
    save_teacher_every: int = 0
    """also keep teacher checkpoints every k outer steps (0 = only the latest)"""

    def __post_init__(self) -> None:
        check_world(self.world)
        if self.qr_metric not in QR_METRICS:
            raise ValueError(f"qr_metric must be one of {', '.join(QR_METRICS)}, got {self.qr_metric!r}")
        if self.reward not in ("grounded", "intrinsic"):
            raise ValueError(f"reward must be 'grounded' or 'intrinsic', got {self.reward!r}")
        if self.teacher.g < 2:
            raise ValueError("teacher.g must be >= 2 (leave-one-out needs two datasets per group)")
        if self.r < 1 or self.qr_size < 1 or self.window < 1:
            raise ValueError("r, qr_size and window must be >= 1")


QR_METRICS = ("greedy", "sampled", "partial", "partial_sampled")


def _seed(*parts: int) -> int:
    """A stable 31-bit seed from integers (Python's hash of ints is stable, but be explicit)."""
    h = 0
    for p in parts:
        h = (h * 1_000_003 + int(p)) % (2**31 - 1)
    return h


def qr_accuracy(model, tokenizer, world: World, problems: list[Problem], cfg: SoarConfig, seed: int) -> float:
    """Acc(student, Q_R) by `cfg.qr_metric`."""
    if cfg.qr_metric == "greedy":
        counts = correct_counts(model, tokenizer, world, problems, 1, 0.0, cfg.eval_max_new_tokens, seed)
        return sum(counts) / len(problems)
    if cfg.qr_metric in ("partial", "partial_sampled"):
        if world.partial_credit is None:
            raise ValueError(f"qr_metric={cfg.qr_metric}: the {world.name} world has no partial credit")
        greedy = cfg.qr_metric == "partial"
        out = sample(
            model,
            tokenizer,
            [world.student_prompt(p.question) for p in problems],
            1 if greedy else cfg.qr_samples,
            temperature=0.0 if greedy else 1.0,
            max_new_tokens=cfg.eval_max_new_tokens,
            seed=seed,
        )
        credit = [world.partial_credit(p.question, s.text) for p, row in zip(problems, out, strict=True) for s in row]
        return sum(credit) / len(credit)
    counts = correct_counts(model, tokenizer, world, problems, cfg.qr_samples, 1.0, cfg.eval_max_new_tokens, seed)
    return sum(counts) / (len(problems) * cfg.qr_samples)


# ------------------------------------------------------------------------------------------------------
# Run state and checkpoints
@dataclass
class RunState:
    step: int = 0
    """the next outer step to run"""
    rhat_since_promotion: list[float] = field(default_factory=list)
    promotions: list[dict] = field(default_factory=list)
    pq_size: int = 0


def save_checkpoint(out: Path, state: RunState, teacher, tokenizer, opt, sched, baseline) -> None:
    """Atomically replace `out/checkpoint` (write to a temporary folder, then rename)."""
    tmp, final, old = out / "checkpoint.tmp", out / "checkpoint", out / "checkpoint.old"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    save_policy(teacher, tokenizer, tmp / "teacher")
    save_policy(baseline, tokenizer, tmp / "baseline")
    torch.save({"opt": opt.state_dict(), "sched": sched.state_dict()}, tmp / "teacher_optim.pt")
    atomic_write_text(tmp / "state.json", json.dumps(asdict(state), indent=1))
    shutil.rmtree(old, ignore_errors=True)
    if final.exists():
        final.rename(old)
    tmp.rename(final)
    shutil.rmtree(old, ignore_errors=True)


def _latest_checkpoint(out: Path) -> Path | None:
    for name in ("checkpoint", "checkpoint.old"):  # .old survives a crash between the two renames
        if (out / name / "state.json").exists():
            return out / name
    return None


def _truncate_logs(out: Path, step: int) -> None:
    """Drop log rows of steps >= `step` (the step in flight when the run was killed)."""
    for name in ("metrics.jsonl", "questions.jsonl", "promotions.jsonl"):
        p = out / name
        if p.exists():
            rows = [r for r in read_jsonl(p) if r.get("step", -1) < step]
            atomic_write_text(p, "".join(json.dumps(r) + "\n" for r in rows))


# ------------------------------------------------------------------------------------------------------
def run_soar(cfg: SoarConfig, world: World | None = None, on_step=None, progress: bool = True) -> Path:
    """Train the teacher; returns the run folder. `on_step(step, metrics)` is called after each step.
    `world` defaults to `cfg.world` (built with the model's tokenizer)."""
    torch.set_num_threads(cfg.threads)
    out = Path(cfg.out)
    hard_train = load_problems(Path(cfg.hard_dir) / "train.jsonl")
    if len(hard_train) < cfg.qr_size:
        raise ValueError(f"qr_size={cfg.qr_size} is larger than the hard train set ({len(hard_train)} problems)")

    ckpt = _latest_checkpoint(out) if cfg.resume else None
    if cfg.resume:
        check_same_config(out / "config.yaml", cfg)
    if ckpt is not None:
        state = RunState(**json.loads((ckpt / "state.json").read_text()))
        teacher, tokenizer = load_policy(ckpt / "teacher", opts=cfg.load)
        baseline, _ = load_policy(ckpt / "baseline", opts=cfg.load)
        _truncate_logs(out, state.step)
        pq = load_problems(out / "pq.jsonl")[: state.pq_size] if state.pq_size else []
    else:
        if cfg.resume:  # killed before the first checkpoint: start over in the same folder
            _truncate_logs(out, 0)
        elif out.exists() and any(out.iterdir()):
            raise FileExistsError(
                f"{out} already holds a run: pass --set resume=true to continue it, or choose another --set out=DIR"
            )
        out.mkdir(parents=True, exist_ok=True)
        dump_config(cfg, out / "config.yaml")
        state = RunState()
        teacher, tokenizer = load_policy(cfg.model, opts=cfg.load)
        baseline = clone_model(teacher)  # LoRA: new adapters over the teacher's frozen base
        pq = []
    world = world or make_world(cfg.world, tokenizer)
    reference = frozen(load_policy(cfg.model, opts=cfg.load)[0]) if cfg.teacher.kl_coef > 0 else None
    tcfg = cfg.teacher
    opt = torch.optim.AdamW([p for p in teacher.parameters() if p.requires_grad], lr=tcfg.lr, weight_decay=0.0)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lr_lambda(RLOOConfig(steps=cfg.outer_steps, lr=tcfg.lr, warmup=tcfg.warmup, schedule=tcfg.schedule))
    )
    if ckpt is not None:
        st = torch.load(ckpt / "teacher_optim.pt", weights_only=False)
        opt.load_state_dict(st["opt"])
        sched.load_state_dict(st["sched"])
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    teacher_prompt_ids = encode_prompts(tokenizer, [world.teacher_prompt + tcfg.prefill])[0]
    tb = _tensorboard(out)

    steps = range(state.step, cfg.outer_steps)
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=cfg.outer_steps, initial=state.step, desc=f"SOAR ({cfg.reward})", dynamic_ncols=True)
    for t in steps:
        t0 = time.time()
        # 1. Q_R and the baseline's accuracy on it.
        qr = random.Random(_seed(cfg.seed, t, 1)).sample(hard_train, cfg.qr_size)
        base_acc = qr_accuracy(baseline, tokenizer, world, qr, cfg, _seed(cfg.seed, t, 2))

        # 2. The teacher writes groups x g datasets.
        datasets, gen_stats = write_datasets(
            teacher,
            tokenizer,
            world,
            tcfg.groups * tcfg.g,
            tcfg.n,
            temperature=tcfg.temperature,
            max_new_tokens=tcfg.max_new_tokens,
            seed=_seed(cfg.seed, t, 3),
            max_attempts=tcfg.max_attempts,
            answer_mode=tcfg.answer_mode,
            answer_max_new_tokens=cfg.eval_max_new_tokens,
            answer_temperature=tcfg.answer_temperature,
            prefill=tcfg.prefill,
            require_box=tcfg.require_box,
        )

        # 3. Inner loop (or the intrinsic reward).
        R: list[float] = []
        student_R: list[list[float]] = []
        students: list[list[dict]] = []  # state dicts, kept for a promotion at the end of this step
        for k, ds in enumerate(datasets):
            problems = as_problems(ds, world.classify)
            if cfg.reward == "intrinsic":
                rates = [
                    c / cfg.intrinsic_samples
                    for c in correct_counts(
                        baseline,
                        tokenizer,
                        world,
                        problems,
                        cfg.intrinsic_samples,
                        1.0,
                        cfg.eval_max_new_tokens,
                        _seed(cfg.seed, t, 4, k),
                    )
                ]
                R.append(learnability_reward(rates))
                student_R.append([R[-1]])
                students.append([])
                continue
            accs, sds = [], []
            for j in range(cfg.r):
                student = clone_model(baseline)
                train_rloo(
                    student,
                    tokenizer,
                    world,
                    cycling_batches(problems, cfg.inner.batch_size),
                    cfg.inner,
                    seed=_seed(cfg.seed, t, 5, k, j),
                )
                accs.append(qr_accuracy(student, tokenizer, world, qr, cfg, _seed(cfg.seed, t, 2)))
                sds.append(trainable_state(student))  # LoRA: the adapters only
                del student
            R.append(dataset_reward(accs, base_acc))
            student_R.append([a - base_acc for a in accs])
            students.append(sds)

        # 4. Teacher RLOO: leave-one-out over the g datasets of each group; every sample of X_k shares it.
        rewards = torch.tensor(R, dtype=torch.float32).view(tcfg.groups, tcfg.g)
        adv = rloo_advantages(rewards).flatten().tolist()
        rows = [(teacher_prompt_ids, s.token_ids, adv[k]) for k, ds in enumerate(datasets) for s in ds]
        rows += [  # two-turn mode: the teacher's own solutions get the same advantage
            (encode_prompts(tokenizer, [s.answer_prompt])[0], s.answer_token_ids, adv[k])
            for k, ds in enumerate(datasets)
            for s in ds
            if s.answer_token_ids is not None
        ]
        tstats = policy_update(
            teacher, reference, opt, sched, rows, tcfg.kl_coef, tcfg.grad_clip, tcfg.micro_batch, pad
        )

        # 5. Promotion.
        rhat = sum(R) / len(R)
        state.rhat_since_promotion.append(rhat)
        decision = promotion_decision(state.rhat_since_promotion, R, student_R, cfg.window, cfg.tau)
        promoted = cfg.promote and cfg.reward == "grounded" and decision.promote
        if promoted:
            k, j = decision.dataset, decision.student
            load_trainable_state(baseline, students[k][j])
            new_pq = as_problems(datasets[k], world.classify)
            pq.extend(new_pq)
            state.pq_size = len(pq)
            save_problems(out / "pq.jsonl", pq)
            ps_dir = out / "promoted" / f"ps{len(state.promotions)}_step{t}"
            save_policy(baseline, tokenizer, ps_dir)
            event = {
                "step": t,
                "rbar": decision.rbar,
                "window": list(state.rhat_since_promotion[-cfg.window :]),
                "dataset": k,
                "student": j,
                "R_k": R[k],
                "pq_size": len(pq),
                "student_dir": str(ps_dir),
            }
            state.promotions.append(event)
            append_jsonl(out / "promotions.jsonl", [event])
            state.rhat_since_promotion = []

        # Logs, then the checkpoint (the step is complete only once the checkpoint exists).
        qrows = []
        for k, ds in enumerate(datasets):
            for i, s in enumerate(ds):
                truth = world.true_answer(s.pair.question) if world.true_answer else None
                cls = world.classify(s.pair.question) if world.classify else None
                qrows.append(
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
        append_jsonl(out / "questions.jsonl", qrows)
        metrics = {
            "step": t,
            "rhat": rhat,
            "rbar": decision.rbar,
            "R": R,
            "baseline_acc": base_acc,
            "promoted": promoted,
            "pq_size": len(pq),
            **gen_stats,
            "teacher_pg_loss": tstats["pg_loss"],
            "teacher_kl": tstats["kl"],
            "teacher_grad_norm": tstats["grad_norm"],
            "teacher_lr": sched.get_last_lr()[0],
            "seconds": round(time.time() - t0, 2),
        }
        append_jsonl(out / "metrics.jsonl", [metrics])
        if tb is not None:
            for key in ("rhat", "rbar", "baseline_acc", "invalid_rate", "teacher_kl", "teacher_grad_norm"):
                tb.add_scalar(f"outer/{key}", metrics[key], t)
            tb.add_scalar("promotion/pq_size", len(pq), t)
            tb.add_scalar("promotion/count", len(state.promotions), t)
            tb.flush()
        state.step = t + 1
        save_checkpoint(out, state, teacher, tokenizer, opt, sched, baseline)
        if cfg.save_teacher_every and (t + 1) % cfg.save_teacher_every == 0:
            save_policy(teacher, tokenizer, out / "teachers" / f"step{t + 1}")
        if on_step is not None:
            on_step(t, metrics)
        if bar is not None:
            bar.update(1)
            bar.set_postfix(rhat=f"{rhat:+.3f}", rbar=f"{decision.rbar:+.3f}", pq=len(pq))
    if bar is not None:
        bar.close()
    if tb is not None:
        tb.close()
    return out


def _tensorboard(out: Path):
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:  # tensorboard is a dependency, but a missing one must not stop a run
        return None
    return SummaryWriter(str(out / "tensorboard"))


def trained_teacher(out: str | Path, opts: LoadConfig | None = None):
    """(teacher model, tokenizer) of a finished or interrupted run."""
    ckpt = _latest_checkpoint(Path(out))
    if ckpt is None:
        raise FileNotFoundError(f"no checkpoint in {out}")
    return load_policy(ckpt / "teacher", opts=opts)


__all__ = ["SoarConfig", "TeacherConfig", "run_soar", "trained_teacher", "ConfigMismatch", "TeacherSample"]
