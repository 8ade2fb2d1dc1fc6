"""A teacher run's folder: everything `run_soar` reads and writes, in one place.

    config.yaml          the run's config (a resume must match it)
    checkpoint/          the last complete outer step: teacher/, baseline/, teacher_optim.pt, state.json, and
                         manifest.json (a SHA-256 of every file, of the config and of the PQ it counts)
    checkpoint.old/      the step before it, kept until a newer checkpoint is complete and verified
    metrics.jsonl        one row per outer step
    questions.jsonl      every question the teacher wrote, its dataset, reward and advantage
    promotions.jsonl     one row per promotion
    pq.jsonl             the Promotion Questions
    promoted/psI_stepT/  each promoted student
    teachers/stepT/      optional teacher snapshots (`save_teacher_every`)

A step is complete only once its checkpoint exists: on resume, log rows of later steps are dropped. A
checkpoint whose files do not match its manifest is not used: resume falls back to the previous one with a
warning, and refuses a folder whose config.yaml or pq.jsonl no longer match the checkpoint.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

from soar.core.config import check_same_config, dump_config, merge, to_dict
from soar.core.io import DataError, append_jsonl, atomic_write_text, read_log
from soar.core.lock import LOCK_NAME
from soar.core.problems import Problem, load_problems, save_problems
from soar.engine.model import LoadConfig, load_policy, save_policy

LOGS = ("metrics.jsonl", "questions.jsonl", "promotions.jsonl")
MANIFEST = "manifest.json"
CONFIG_FREE = ("out", "resume", "threads", "parallel")
"""config keys that may differ on resume (where the folder lies, how it runs), so not in the config hash"""


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def config_hash(data: dict) -> str:
    """SHA-256 of a config's settings (keys of CONFIG_FREE left out), as canonical JSON."""
    kept = {k: v for k, v in data.items() if k not in CONFIG_FREE}
    return hashlib.sha256(json.dumps(kept, sort_keys=True).encode()).hexdigest()


def pq_hash(problems: list[Problem]) -> str:
    return hashlib.sha256(json.dumps([asdict(p) for p in problems], sort_keys=True).encode()).hexdigest()


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
        ckpt = self.latest_checkpoint(warn=True)
        if ckpt is not None:
            self._check_config_unchanged(ckpt, cfg)
        dump_config(cfg, self.path / "config.yaml")  # the same config; `out` says where the folder is now
        if ckpt is None:  # killed before the first checkpoint: start over in the same folder
            self._truncate_logs(0)
            return None
        state = RunState(**json.loads((ckpt / "state.json").read_text()))
        self._truncate_logs(state.step)
        pq = self._checked_pq(ckpt, state)
        return Resumed(state, ckpt, pq)

    def _check_config_unchanged(self, ckpt: Path, cfg) -> None:
        """The config the checkpoint was written under is the one resumed (a hand edit of config.yaml that
        the command line then repeats is still a different run)."""
        manifest = json.loads((ckpt / MANIFEST).read_text()) if (ckpt / MANIFEST).exists() else {}
        saved = manifest.get("config")
        if "settings" in manifest:  # a key added to soar after the checkpoint counts as its default
            saved = config_hash(merge(json.loads(json.dumps(to_dict(type(cfg)()))), manifest["settings"]))
        if saved is not None and saved != config_hash(json.loads(json.dumps(to_dict(cfg)))):
            raise DataError(
                f"{self.path / 'config.yaml'}: the config differs from the one {ckpt.name}/ was written under "
                "(edited by hand?); restore it, or start a new run in another folder"
            )

    def _checked_pq(self, ckpt: Path, state: RunState) -> list[Problem]:
        if not state.pq_size:
            return []
        path = self.path / "pq.jsonl"
        pq = load_problems(path)[: state.pq_size] if path.exists() else []
        manifest = json.loads((ckpt / MANIFEST).read_text()) if (ckpt / MANIFEST).exists() else {}
        if len(pq) < state.pq_size or ("pq" in manifest and manifest["pq"] != pq_hash(pq)):
            raise DataError(
                f"{path}: does not hold the {state.pq_size} Promotion Questions that {ckpt.name}/ counts "
                f"(found {len(pq)}{'' if len(pq) < state.pq_size else ', with other contents'}); restore it"
            )
        return pq

    def latest_checkpoint(self, warn: bool = False) -> Path | None:
        """The newest checkpoint whose files match its manifest (checkpoint/, else checkpoint.old/, which
        also survives a crash between the two renames of a save)."""
        problems = []
        for name in ("checkpoint", "checkpoint.old"):
            ckpt = self.path / name
            if not ckpt.exists():
                continue
            problem = verify_checkpoint(ckpt)
            if problem is None:
                return ckpt
            problems.append(f"{name}/: {problem}")
            if warn:
                print(f"warning: {ckpt} is damaged ({problem}); trying an older checkpoint", file=sys.stderr)
        if warn and problems:
            raise DataError(f"{self.path}: no intact checkpoint to resume from ({'; '.join(problems)})")
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

    def save_checkpoint(self, state: RunState, teacher, tokenizer, opt, sched, baseline, cfg, pq) -> None:
        """Write the new checkpoint beside the old one, verify it against its manifest, then rotate:
        checkpoint/ becomes checkpoint.old/ (kept until the next save is verified), the new one checkpoint/."""
        tmp, final, old = self.path / "checkpoint.tmp", self.path / "checkpoint", self.path / "checkpoint.old"
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        save_policy(teacher, tokenizer, tmp / "teacher")
        save_policy(baseline, tokenizer, tmp / "baseline")
        torch.save({"opt": opt.state_dict(), "sched": sched.state_dict()}, tmp / "teacher_optim.pt")
        atomic_write_text(tmp / "state.json", json.dumps(asdict(state), indent=1))
        files = {str(f.relative_to(tmp)): sha256(f) for f in sorted(tmp.rglob("*")) if f.is_file()}
        settings = json.loads(json.dumps(to_dict(cfg)))
        manifest = {"files": files, "config": config_hash(settings), "settings": settings, "pq": pq_hash(pq)}
        atomic_write_text(tmp / MANIFEST, json.dumps(manifest, indent=1))
        problem = verify_checkpoint(tmp)
        if problem is not None:
            raise OSError(f"{tmp}: the checkpoint just written does not read back ({problem}); disk full?")
        if final.exists():
            shutil.rmtree(old, ignore_errors=True)
            final.rename(old)
        tmp.rename(final)

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

    def questions(self) -> list[dict]:
        """every question the teacher wrote, one row each (soar.method.loop.question_rows)"""
        p = self.path / "questions.jsonl"
        return read_log(p) if p.exists() else []

    def promotions(self) -> list[dict]:
        p = self.path / "promotions.jsonl"
        return read_log(p) if p.exists() else []

    def pq(self) -> list[Problem]:
        p = self.path / "pq.jsonl"
        return load_problems(p) if p.exists() else []


def verify_checkpoint(ckpt: Path) -> str | None:
    """None when every file of `ckpt` matches its manifest; else what is wrong. A checkpoint written before
    manifests existed counts as intact when it has its state.json."""
    if not (ckpt / "state.json").exists():
        return "no state.json"
    if not (ckpt / MANIFEST).exists():
        try:
            json.loads((ckpt / "state.json").read_text())
        except (ValueError, UnicodeDecodeError):
            return "state.json is not valid JSON"
        return None
    try:
        files = json.loads((ckpt / MANIFEST).read_text())["files"]
    except (ValueError, KeyError, UnicodeDecodeError):
        return f"{MANIFEST} is not readable"
    for rel, digest in files.items():
        f = ckpt / rel
        if not f.is_file():
            return f"{rel} is missing"
        if sha256(f) != digest:
            return f"{rel} does not match its checksum"
    return None
