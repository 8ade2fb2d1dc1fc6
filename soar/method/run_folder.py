"""A teacher run's folder: everything `run_soar` reads and writes, in one place.

    config.yaml          the run's config (a resume must match it)
    checkpoint/          the last complete outer step: teacher/, baseline/, teacher_optim.pt, state.json
    metrics.jsonl        one row per outer step
    questions.jsonl      every question the teacher wrote, its dataset, reward and advantage
    promotions.jsonl     one row per promotion
    pq.jsonl             the Promotion Questions
    promoted/psI_stepT/  each promoted student
    teachers/stepT/      optional teacher snapshots (`save_teacher_every`)

A step is complete only once its checkpoint exists: on resume, log rows of later steps are dropped.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

from soar.core.config import check_same_config, dump_config
from soar.core.io import DataError, append_jsonl, atomic_write_text, read_log
from soar.core.lock import LOCK_NAME
from soar.core.problems import Problem, load_problems, save_problems
from soar.engine.model import LoadConfig, load_policy, save_policy

LOGS = ("metrics.jsonl", "questions.jsonl", "promotions.jsonl")


@dataclass
class RunState:
    """What a checkpoint holds besides the models and the optimizer."""

    step: int = 0
    """the next outer step to run"""
    rhat_since_promotion: list[float] = field(default_factory=list)
    """the promotion rule's window: R-hat of every step since the last promotion"""
    promotions: list[dict] = field(default_factory=list)
    pq_size: int = 0


@dataclass
class Resumed:
    """A run folder opened for a resume: its state and its checkpoint's models."""

    state: RunState
    checkpoint: Path
    pq: list[Problem]


class RunFolder:
    def __init__(self, path: str | Path):
        self.path = Path(path)

    # -- opening ---------------------------------------------------------------------------------------
    def open(self, cfg, resume: bool) -> Resumed | None:
        """Start a new run (the folder must be empty) or resume one (the saved config must match `cfg`).
        Returns the checkpoint to continue from, or None for a fresh start."""
        if not resume:
            if self.path.exists() and any(p.name != LOCK_NAME for p in self.path.iterdir()):
                raise FileExistsError(
                    f"{self.path} already holds a run: pass --set resume=true to continue it, "
                    "or choose another --set out=DIR"
                )
            self.path.mkdir(parents=True, exist_ok=True)
            dump_config(cfg, self.path / "config.yaml")
            return None
        check_same_config(self.path / "config.yaml", cfg)
        dump_config(cfg, self.path / "config.yaml")  # the same config; `out` says where the folder is now
        ckpt = self.latest_checkpoint()
        if ckpt is None:  # killed before the first checkpoint: start over in the same folder
            self._truncate_logs(0)
            return None
        state = RunState(**json.loads((ckpt / "state.json").read_text()))
        self._truncate_logs(state.step)
        pq = load_problems(self.path / "pq.jsonl")[: state.pq_size] if state.pq_size else []
        return Resumed(state, ckpt, pq)

    def latest_checkpoint(self) -> Path | None:
        for name in ("checkpoint", "checkpoint.old"):  # .old survives a crash between the two renames
            if (self.path / name / "state.json").exists():
                return self.path / name
        return None

    def steps_done(self) -> int:
        """Outer steps completed (0 without a checkpoint)."""
        ckpt = self.latest_checkpoint()
        return json.loads((ckpt / "state.json").read_text())["step"] if ckpt else 0

    def _truncate_logs(self, step: int) -> None:
        """Drop log rows of steps >= `step` (the step in flight when the run was killed)."""
        for name in LOGS:
            p = self.path / name
            if p.exists():
                rows = [r for r in read_log(p) if r.get("step", -1) < step]
                atomic_write_text(p, "".join(json.dumps(r) + "\n" for r in rows))

    # -- writing a step --------------------------------------------------------------------------------
    def log_step(self, metrics: dict, questions: list[dict]) -> None:
        append_jsonl(self.path / "questions.jsonl", questions)
        append_jsonl(self.path / "metrics.jsonl", [metrics])

    def save_promotion(self, index: int, event: dict, pq: list[Problem], student, tokenizer) -> dict:
        """Save promotion number `index`: the student, the grown PQ and the event; returns the event with
        the student's folder."""
        save_problems(self.path / "pq.jsonl", pq)
        ps_dir = self.path / "promoted" / f"ps{index}_step{event['step']}"
        save_policy(student, tokenizer, ps_dir)
        event = {**event, "student_dir": str(ps_dir)}
        append_jsonl(self.path / "promotions.jsonl", [event])
        return event

    def save_checkpoint(self, state: RunState, teacher, tokenizer, opt, sched, baseline) -> None:
        """Atomically replace `checkpoint/` (write to a temporary folder, then rename)."""
        tmp, final, old = self.path / "checkpoint.tmp", self.path / "checkpoint", self.path / "checkpoint.old"
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

    def save_teacher_snapshot(self, teacher, tokenizer, step: int) -> None:
        save_policy(teacher, tokenizer, self.path / "teachers" / f"step{step}")

    # -- reading ---------------------------------------------------------------------------------------
    def load_optim(self, ckpt: Path, opt, sched) -> None:
        path = ckpt / "teacher_optim.pt"
        try:
            st = torch.load(path, weights_only=True)  # tensors and numbers only: a folder never runs code
        except Exception as e:  # noqa: BLE001 - any unreadable or unsafe file is the same refusal
            raise DataError(
                f"{path}: not a checkpoint soar can load safely ({type(e).__name__}); refusing to resume"
            ) from e
        opt.load_state_dict(st["opt"])
        sched.load_state_dict(st["sched"])

    def teacher(self, opts: LoadConfig | None = None):
        """(teacher model, tokenizer) of a finished or interrupted run."""
        ckpt = self.latest_checkpoint()
        if ckpt is None:
            raise FileNotFoundError(f"no checkpoint in {self.path}")
        return load_policy(ckpt / "teacher", opts=opts)

    def metrics(self) -> list[dict]:
        p = self.path / "metrics.jsonl"
        return read_log(p) if p.exists() else []

    def promotions(self) -> list[dict]:
        p = self.path / "promotions.jsonl"
        return read_log(p) if p.exists() else []

    def pq(self) -> list[Problem]:
        p = self.path / "pq.jsonl"
        return load_problems(p) if p.exists() else []
