"""Bad input, as a new user makes it: every case ends in one line on stderr naming the problem, exit code 2,
and no traceback (issue 16's probe table, kept as a test). Each runs `soar.cli.main` in this process."""

import json
import random
import shutil

import pytest

from soar.cli import main
from soar.core.problems import save_problems
from soar.engine.model import DEFAULT_MODEL
from soar.world.arithmetic import make_problem


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("bad")
    rng = random.Random(0)
    save_problems(d / "hard" / "train.jsonl", [make_problem("mix", 5, rng) for _ in range(6)])
    save_problems(d / "hard" / "test.jsonl", [make_problem("mix", 5, rng) for _ in range(3)])
    (d / "empty").mkdir()
    (d / "small").mkdir()
    save_problems(d / "small" / "train.jsonl", [make_problem("mix", 5, rng) for _ in range(2)])
    (d / "grammar").mkdir()
    good = (d / "hard" / "train.jsonl").read_text()
    (d / "grammar" / "train.jsonl").write_text(good + json.dumps({"question": "what is love", "answer": "3"}) + "\n")
    (d / "binary").mkdir()
    (d / "binary" / "train.jsonl").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR")
    (d / "config.bin").write_bytes(b"\xff\xfe\x00m\x00o\x00d")
    (d / "list.yaml").write_text("- a\n- b\n")
    shutil.copytree(DEFAULT_MODEL, d / "torn-model")
    weights = d / "torn-model" / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:1000])
    return d


T = "teach"
SMALL_TEACH = ["--set", "outer_steps=1", "--set", "teacher.n=2", "--set", "qr_size=2"]

CASES = {
    "config file missing": (T, ["--config", "{d}/nope.yaml"], "does not exist"),
    "config file is a folder": (T, ["--config", "{d}/empty"], "is a folder"),
    "config file is binary": (T, ["--config", "{d}/config.bin"], "not UTF-8 text"),
    "config top level a list": (T, ["--config", "{d}/list.yaml"], "top level must be a mapping"),
    "unknown key": (T, ["--set", "teacher.nn=3"], "valid"),
    "float for an int": (T, ["--set", "qr_size=3.7"], "qr_size"),
    "boolean for an int": (T, ["--set", "r=true"], "r"),
    "null for a string": (T, ["--set", "world=null"], "world"),
    "threads=0": (T, ["--set", "threads=0"], "threads"),
    "teacher.n=0": (T, ["--set", "teacher.n=0"], "config.teacher: n must be at least 1"),
    "negative temperature": (T, ["--set", "teacher.temperature=-1"], "temperature"),
    "tau=nan": (T, ["--set", "tau=nan"], "tau"),
    "unknown world": (T, ["--set", "world=chess"], "valid worlds: arithmetic, math"),
    "seeds=[]": ("run", ["--set", "seeds=[]"], "seeds"),
    "k=0": ("make-hard", ["--set", "k=0"], "k"),
    "unknown stone family": ("premise", ["--set", "stones=[cube:1]"], "cube"),
    "unknown premise mode": ("premise", ["--set", "mode=interleaved"], "mode must be one of curriculum, mixed"),
    "mixed_stones as large as the batch": (
        "premise",
        ["--set", "mode=mixed", "--set", "mixed_stones=8"],
        "mixed_stones must be 1 to rloo.batch_size - 1 (7)",
    ),
    "student.mixed_questions as large as the batch": (
        "run",
        ["--set", "student.mode=mixed", "--set", "student.mixed_questions=8"],
        "student.mixed_questions must be 0 (pool) to rloo.batch_size - 1 (7)",
    ),
    "parallel.workers=0": (T, ["--set", "parallel.workers=0"], "parallel.workers must be at least 1"),
    "hard_dir without files": (T, ["--set", "hard_dir={d}/empty", "--set", "out={d}/o1"], "train.jsonl"),
    "hard set smaller than qr_size": (
        T,
        ["--set", "hard_dir={d}/small", "--set", "out={d}/o2", "--set", "qr_size=4"],
        "larger than the hard train set",
    ),
    "question outside the grammar": (
        T,
        ["--set", "hard_dir={d}/grammar", "--set", "out={d}/o3", *SMALL_TEACH],
        "train.jsonl:7: the question 'what is love' is outside the world's grammar",
    ),
    "binary hard set": (T, ["--set", "hard_dir={d}/binary", "--set", "out={d}/o4"], "train.jsonl:1: not UTF-8 text"),
    "load.device=cuda without a GPU": (
        T,
        ["--set", "hard_dir={d}/hard", "--set", "out={d}/o5", "--set", "load.device=cuda", *SMALL_TEACH],
        "no CUDA GPU is visible",
    ),
    "truncated model weights": (
        T,
        ["--set", "hard_dir={d}/hard", "--set", "out={d}/o6", "--set", "model={d}/torn-model", *SMALL_TEACH],
        "model.safetensors",
    ),
    "resume of a folder with no run": (T, ["--resume", "{d}/empty"], "nothing to resume"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_bad_input_is_one_line_and_exit_code_2(files, case, capsys, monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)  # the same on a GPU machine
    command, args, needle = CASES[case]
    argv = [command, *(a.format(d=files) for a in args)]
    code = main(argv)
    err = capsys.readouterr().err
    assert code == 2, err
    assert "Traceback" not in err
    assert needle in err, err
    assert err.strip().splitlines()[-1].startswith(f"soar {command}:")


def test_print_config_appends_to_a_log(tmp_path):
    import subprocess
    import sys

    log = tmp_path / "log.txt"
    log.write_text("earlier lines\n")
    with open(log, "a") as f:
        subprocess.run([sys.executable, "-m", "soar.cli", "teach", "--print-config"], stdout=f, check=True)
    text = log.read_text()
    assert text.startswith("earlier lines\n") and "outer_steps:" in text
