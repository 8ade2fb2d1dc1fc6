"""End-to-end smoke tests of the real `soar` CLI in subprocesses, on a tiny random model."""

import json
import subprocess
import sys

import pytest


def soar(*args, check=True):
    r = subprocess.run([sys.executable, "-m", "soar.cli", *args], capture_output=True, text=True, timeout=600)
    if check and r.returncode != 0:
        raise AssertionError(f"soar {' '.join(args)} failed ({r.returncode}):\n{r.stdout}\n{r.stderr}")
    return r


@pytest.mark.parametrize("cmd", ["pretrain", "make-hard", "eval", "premise", "teach", "run", "judge"])
def test_help(cmd):
    r = soar(cmd, "--help")
    assert "--config" in r.stdout and "--set" in r.stdout


def test_unknown_key_exits_2_and_names_valid_keys():
    r = soar("premise", "--set", "rloo.lrr=1", check=False)
    assert r.returncode == 2
    assert "unknown key(s) lrr" in r.stderr and "valid keys:" in r.stderr and "group_size" in r.stderr


def test_bad_problem_file_names_line(tmp_path):
    bad = tmp_path / "p.jsonl"
    bad.write_text('{"question": "1+2", "answer": "3"}\n{oops\n')
    r = soar("eval", "--set", f"problems={bad}", check=False)
    assert r.returncode == 2 and "p.jsonl:2:2: invalid JSON" in r.stderr


def test_make_hard_premise_eval_pipeline(tiny_dir, tmp_path):
    hard = tmp_path / "hard"
    soar(
        "make-hard",
        "--set",
        f"model={tiny_dir}",
        "--set",
        "pool=6",
        "--set",
        "k=4",
        "--set",
        "chunk=2",
        "--set",
        "levels=4",
        "--set",
        f"out={hard}",
        "--set",
        "max_new_tokens=8",
        "--set",
        "threads=1",
    )
    manifest = json.loads((hard / "manifest.json").read_text())
    assert manifest["train"] + manifest["test"] == manifest["fail_both_passes"] <= 6
    assert (hard / "train.jsonl").exists()
    out = tmp_path / "premise"
    tiny_run = [
        "--set",
        "seeds=0",
        "--set",
        "rloo.steps=2",
        "--set",
        "curriculum_steps=1",
        "--set",
        "rloo.batch_size=2",
        "--set",
        "rloo.group_size=2",
        "--set",
        "max_new_tokens=8",
        "--set",
        "eval.n=2",
        "--set",
        "eval.ks=1,2",
        "--set",
        "edge_problems=1",
        "--set",
        "threads=1",
    ]
    r = soar("premise", "--set", f"model={tiny_dir}", "--set", f"hard_dir={hard}", "--set", f"out={out}", *tiny_run)
    assert "Hard-Only" in r.stdout
    assert (out / "premise.png").stat().st_size > 1000
    rows = [json.loads(x) for x in (out / "results.jsonl").read_text().splitlines()]
    assert sorted(r["arm"] for r in rows) == ["base", "curriculum", "hard_only", "self_answered"]
    # resumable: a second call finds every (arm, seed) done and only rewrites the report
    r2 = soar("premise", "--set", f"model={tiny_dir}", "--set", f"hard_dir={hard}", "--set", f"out={out}", *tiny_run)
    assert "] training " not in r2.stdout  # the "[seed S] training ARM for N steps" line of a trained pair
    assert "] training hard_only for" in r.stdout
    assert len((out / "results.jsonl").read_text().splitlines()) == 4
    ev = tmp_path / "eval"
    r = soar(
        "eval",
        "--set",
        f"model={tiny_dir}",
        "--set",
        f"problems={hard / 'test.jsonl'}",
        "--set",
        f"out={ev}",
        "--set",
        "seeds=0,1",
        "--set",
        "eval.n=2",
        "--set",
        "eval.ks=1,2",
        "--set",
        "max_new_tokens=8",
    )
    summary = json.loads((ev / "summary.json").read_text())
    assert len(summary["per_seed"]) == 2 and "pass@2" in summary["mean_sd"]
