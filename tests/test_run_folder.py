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
        with pytest.raises(DataError, match="teacher_optim.pt"):
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
