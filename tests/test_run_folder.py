"""Run folders that cannot be turned against their user: a copy resumes the copy, nothing is unpickled,
and one folder is written by one run at a time."""

import json
import os
import pickle
import random
import shutil
import signal
import subprocess
import sys

import pytest
import torch

import soar.method.loop as loop
from soar.cli import main
from soar.core.config import load_config
from soar.core.io import DataError
from soar.core.lock import RunLocked, run_lock
from soar.core.problems import save_problems
from soar.engine.model import DEFAULT_MODEL
from soar.engine.rloo import RLOOConfig
from soar.method.loop import SoarConfig, TeacherConfig, run_soar
from soar.method.run_folder import RunFolder, sha256
from soar.world.arithmetic import make_problem


@pytest.fixture(scope="module")
def interrupted(tmp_path_factory):
    """A toy teacher run of 2 outer steps, killed during step 1 (its checkpoint says step 1)."""
    root = tmp_path_factory.mktemp("folder")
    rng = random.Random(0)
    save_problems(root / "hard" / "train.jsonl", [make_problem("mix", 5, rng) for _ in range(6)])
    cfg = SoarConfig(
        model=str(DEFAULT_MODEL),
        hard_dir=str(root / "hard"),
        out=str(root / "run"),
        outer_steps=2,
        r=1,
        qr_size=2,
        qr_metric="sampled",
        qr_samples=2,
        threads=1,
        max_new_tokens=56,
        teacher=TeacherConfig(n=2, g=2),
        inner=RLOOConfig(steps=1, batch_size=2, group_size=2),
    )
    real, calls = loop.policy_update, {"n": 0}

    def crash_on_second(*a, **k):
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt("killed in outer step 1")
        return real(*a, **k)

    loop.policy_update = crash_on_second
    try:
        with pytest.raises(KeyboardInterrupt):
            run_soar(cfg, progress=False)
    finally:
        loop.policy_update = real
    return root / "run"


def step_of(folder) -> int:
    return json.loads((folder / "checkpoint" / "state.json").read_text())["step"]


def test_resume_of_a_copy_continues_the_copy_not_the_original(interrupted, tmp_path, capsys):
    copy = tmp_path / "copy"
    shutil.copytree(interrupted, copy)
    assert main(["teach", "--resume", str(copy)]) == 0
    assert step_of(copy) == 2 and step_of(interrupted) == 1
    assert [json.loads(x)["step"] for x in (copy / "metrics.jsonl").read_text().splitlines()] == [0, 1]
    assert len((interrupted / "metrics.jsonl").read_text().splitlines()) <= 1


def test_resume_refuses_a_planted_pickle_without_running_it(interrupted, tmp_path):
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    writers = {"pickle": lambda f: pickle.dump({"opt": Evil()}, f), "torch": lambda f: torch.save({"opt": Evil()}, f)}
    for name, write in writers.items():
        copy = tmp_path / name
        shutil.copytree(interrupted, copy)
        with open(copy / "checkpoint" / "teacher_optim.pt", "wb") as f:
            write(f)
        cfg = load_config(SoarConfig, copy / "config.yaml", [f"out={copy}", "resume=true"])  # as --resume does
        with pytest.raises(DataError, match="teacher_optim.pt does not match its checksum"):
            run_soar(cfg, progress=False)
        # The manifest is integrity, not authentication: with a forged checksum the unpickler still refuses.
        manifest = json.loads((copy / "checkpoint" / "manifest.json").read_text())
        manifest["files"]["teacher_optim.pt"] = sha256(copy / "checkpoint" / "teacher_optim.pt")
        (copy / "checkpoint" / "manifest.json").write_text(json.dumps(manifest))
        with pytest.raises(DataError, match="not a checkpoint soar can load safely"):
            run_soar(cfg, progress=False)
        assert not marker.exists()


def test_a_folder_is_held_by_one_process_and_a_dead_holder_is_taken_over(tmp_path):
    code = (
        "import sys, time\nfrom soar.core.lock import run_lock\n"
        "with run_lock(sys.argv[1]):\n    print('held', flush=True)\n    time.sleep(120)"
    )
    holder = subprocess.Popen([sys.executable, "-c", code, str(tmp_path)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(RunLocked, match=f"process {holder.pid}"):
            with run_lock(tmp_path):
                pass
        with pytest.raises(RunLocked):  # every command that writes the folder takes the lock first
            run_soar(SoarConfig(out=str(tmp_path), resume=True), progress=False)
    finally:
        os.kill(holder.pid, signal.SIGKILL)
        holder.wait()
    with run_lock(tmp_path):  # the kernel dropped the dead holder's lock
        assert f"process {os.getpid()}" in (tmp_path / ".lock").read_text()


def test_a_torn_last_log_line_is_dropped_on_resume(interrupted, tmp_path):
    copy = tmp_path / "torn"
    shutil.copytree(interrupted, copy)
    with open(copy / "metrics.jsonl", "a") as f:
        f.write('{"step": 1, "rhat": 0.0')  # a crash in the middle of a write
    with open(copy / "questions.jsonl", "a") as f:
        f.write('{"step": 1, "quest')
    assert main(["teach", "--resume", str(copy)]) == 0
    assert [json.loads(x)["step"] for x in (copy / "metrics.jsonl").read_text().splitlines()] == [0, 1]
    questions = [json.loads(x) for x in (copy / "questions.jsonl").read_text().splitlines()]
    assert sorted({q["step"] for q in questions}) == [0, 1]


def test_a_bad_line_inside_a_log_is_still_an_error(tmp_path):
    from soar.core.io import read_log

    log = tmp_path / "metrics.jsonl"
    log.write_text('{"step": 0}\n{oops\n{"step": 1}\n')
    with pytest.raises(DataError, match="metrics.jsonl:2"):
        read_log(log)
    log.write_text('{"step": 0}\n{"step": 1')
    assert read_log(log) == [{"step": 0}] and log.read_text() == '{"step": 0}\n'
    log.write_text('{"step": 0}\n{"step": 1}')  # whole, only its newline lost
    assert read_log(log) == [{"step": 0}, {"step": 1}] and log.read_text().endswith('{"step": 1}\n')


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """A toy run of 2 outer steps, both promoting: checkpoint/ is step 2, checkpoint.old/ step 1."""
    root = tmp_path_factory.mktemp("finished")
    return run_soar(two_steps(root, root / "run"), progress=False)


def two_steps(root, out, **kw) -> SoarConfig:
    if not (root / "hard" / "train.jsonl").exists():
        rng = random.Random(0)
        save_problems(root / "hard" / "train.jsonl", [make_problem("mix", 5, rng) for _ in range(6)])
    return SoarConfig(
        model=str(DEFAULT_MODEL),
        hard_dir=str(root / "hard"),
        out=str(out),
        outer_steps=2,
        r=1,
        qr_size=2,
        qr_metric="sampled",
        qr_samples=2,
        tau=-1.0,
        window=1,
        promotion_steps=0,
        threads=1,
        max_new_tokens=56,
        teacher=TeacherConfig(n=2, g=2),
        inner=RLOOConfig(steps=1, batch_size=2, group_size=2),
        **kw,
    )


def _reopen(folder):
    """Open a copied folder for a resume, as `--resume DIR` does."""
    cfg = load_config(SoarConfig, folder / "config.yaml", [f"out={folder}", "resume=true"])
    return RunFolder(folder).open(cfg, resume=True)


def _damage(kind: str, path):
    if kind == "zeroed":
        path.write_bytes(b"\0" * path.stat().st_size)
    elif kind == "truncated":
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    else:
        path.unlink()


@pytest.mark.parametrize(
    "kind, rel",
    [
        ("zeroed", "teacher/model.safetensors"),
        ("truncated", "baseline/model.safetensors"),
        ("truncated", "state.json"),
        ("deleted", "state.json"),
        ("deleted", "teacher_optim.pt"),
    ],
)
def test_a_damaged_newest_checkpoint_falls_back_to_the_previous_one(finished, tmp_path, capsys, kind, rel):
    copy = tmp_path / "copy"
    shutil.copytree(finished, copy)
    assert step_of(copy) == 2
    _damage(kind, copy / "checkpoint" / rel)
    resumed = _reopen(copy)
    assert resumed.checkpoint == copy / "checkpoint.old" and resumed.state.step == 1
    assert "damaged" in capsys.readouterr().err
    assert [json.loads(x)["step"] for x in (copy / "metrics.jsonl").read_text().splitlines()] == [0]
    assert len(resumed.pq) == resumed.state.pq_size == 2  # the PQ of step 1's checkpoint


def test_no_intact_checkpoint_is_an_error_not_a_silent_restart(finished, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(finished, copy)
    _damage("deleted", copy / "checkpoint" / "state.json")
    _damage("zeroed", copy / "checkpoint.old" / "teacher" / "model.safetensors")
    with pytest.raises(DataError, match="no intact checkpoint.*checkpoint.old/: teacher/model.safetensors"):
        _reopen(copy)


def test_a_truncated_pq_or_an_edited_config_is_refused(finished, tmp_path):
    copy = tmp_path / "pq"
    shutil.copytree(finished, copy)
    lines = (copy / "pq.jsonl").read_text().splitlines(keepends=True)
    (copy / "pq.jsonl").write_text("".join(lines[:-1]))
    with pytest.raises(DataError, match="pq.jsonl: does not hold the 4 Promotion Questions"):
        _reopen(copy)
    (copy / "pq.jsonl").write_text("".join(lines[:-1]) + lines[0])  # as many rows, other contents
    with pytest.raises(DataError, match="with other contents"):
        _reopen(copy)
    copy = tmp_path / "config"
    shutil.copytree(finished, copy)
    text = (copy / "config.yaml").read_text()
    assert "tau: -1.0" in text
    (copy / "config.yaml").write_text(text.replace("tau: -1.0", "tau: -0.5"))
    with pytest.raises(DataError, match="edited by hand"):
        _reopen(copy)


class Killed(BaseException):
    """A crash that no `except Exception` catches (as close to kill -9 as one process gets)."""


def _crash_at(monkeypatch, target, name: str, call: int):
    """Make `target.name` raise Killed on its `call`-th call (1-based)."""
    real, count = getattr(target, name), {"n": 0}

    def wrapper(*a, **k):
        count["n"] += 1
        if count["n"] == call:
            raise Killed(f"{name} call {call}")
        return real(*a, **k)

    monkeypatch.setattr(target, name, wrapper)


def _outcome(folder):
    drop = ("seconds", "student_dir")
    rows = {}
    for log in ("metrics.jsonl", "questions.jsonl", "promotions.jsonl"):
        rows[log] = [
            {k: v for k, v in json.loads(x).items() if k not in drop and not k.startswith("time_")}
            for x in (folder / log).read_text().splitlines()
        ]
    from safetensors.torch import load_file

    teacher = load_file(str(folder / "checkpoint" / "teacher" / "model.safetensors"))
    return rows, (folder / "pq.jsonl").read_text(), teacher


@pytest.mark.parametrize(
    "moment",
    [
        "teacher sampling, step 0",
        "inner loop, step 1",
        "between the renames of a save",
        "promotion, step 1",
        "logging, step 1",
    ],
)
def test_a_run_crashed_at_any_moment_resumes_to_the_same_result(finished, tmp_path, monkeypatch, moment):
    import soar.method.run_folder as rf

    with monkeypatch.context() as m:
        if moment == "teacher sampling, step 0":
            _crash_at(m, loop, "write_datasets", 1)
        elif moment == "inner loop, step 1":
            _crash_at(m, loop, "train_copy", 3)  # g = 2 datasets x r = 1: the first copy of step 1
        elif moment == "between the renames of a save":
            _crash_at(m, rf.Path, "rename", 3)  # save 1: tmp -> checkpoint; save 2: checkpoint -> .old, then this
        elif moment == "promotion, step 1":
            _crash_at(m, rf, "append_jsonl", 4)  # per step: promotion, questions, metrics; PQ and student saved
        else:
            _crash_at(m, rf, "append_jsonl", 5)  # step 1's promotion is logged, its questions and metrics not
        with pytest.raises(Killed):
            run_soar(two_steps(tmp_path, tmp_path / "run"), progress=False)
    run_soar(two_steps(tmp_path, tmp_path / "run", resume=True), progress=False)
    (rows_a, pq_a, t_a), (rows_b, pq_b, t_b) = _outcome(finished), _outcome(tmp_path / "run")
    assert rows_a == rows_b and pq_a == pq_b
    assert all(torch.equal(t_a[k], t_b[k]) for k in t_a)


def test_a_run_from_before_a_config_key_existed_resumes(finished, tmp_path):
    """A key added to soar after a checkpoint was written (here teacher.answers, removed from the saved config
    and the manifest's settings as an older soar wrote them) takes its default, and the run resumes."""
    import yaml

    copy = tmp_path / "old"
    shutil.copytree(finished, copy)
    saved = yaml.safe_load((copy / "config.yaml").read_text())
    del saved["teacher"]["answers"]
    (copy / "config.yaml").write_text(yaml.safe_dump(saved))
    for ckpt in ("checkpoint", "checkpoint.old"):
        path = copy / ckpt / "manifest.json"
        manifest = json.loads(path.read_text())
        del manifest["settings"]["teacher"]["answers"]
        manifest["config"] = "the hash an older soar wrote"  # stale: the settings are what is compared
        path.write_text(json.dumps(manifest))
    assert _reopen(copy).state.step == 2
    # A real difference is still refused.
    path = copy / "checkpoint" / "manifest.json"
    manifest = json.loads(path.read_text())
    manifest["settings"]["tau"] = 0.5
    path.write_text(json.dumps(manifest))
    with pytest.raises(DataError, match="edited by hand"):
        _reopen(copy)
