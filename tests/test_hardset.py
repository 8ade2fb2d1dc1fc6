"""The sampling-free hard-set screen: log p(worked solution) against an independent computation."""

import dataclasses
import json
import math
import random

import pytest
import torch

from soar.core.problems import Problem
from soar.jobs.hardset import HardSetConfig, make_hard, solution_logprobs, success_estimates
from soar.world import ARITHMETIC, make_world
from soar.world.arithmetic import final_split, make_problem, worked_solution


def _direct_logprob(model, tok, question: str) -> float:
    """One unpadded forward over prompt + solution, summing log softmax of each solution token."""
    prompt = tok(ARITHMETIC.student_prompt(question)).input_ids
    sol = tok(worked_solution(question), add_special_tokens=False).input_ids
    ids = torch.tensor([prompt + sol])
    with torch.no_grad():
        logits = model(input_ids=ids).logits[0].double()
    lsm = torch.log_softmax(logits, dim=-1)
    return sum(float(lsm[len(prompt) - 1 + i, t]) for i, t in enumerate(sol))


def test_solution_logprobs_match_an_unpadded_forward_pass_in_mixed_length_batches(tiny):
    model, tok = tiny
    rng = random.Random(0)
    problems = [make_problem(f, lvl, rng) for f, lvl in [("add", 0), ("mix", 5), ("mul", 2), ("sub", 3)]]
    # questions are fixed-width; leading spaces make the prompts differ in length, so left padding is exercised
    p = problems[1]
    problems[1] = Problem(p.family, p.level, "   " + p.question, p.answer)
    got = solution_logprobs(model, tok, ARITHMETIC, problems, batch_size=3)
    want = [_direct_logprob(model, tok, p.question) for p in problems]
    assert all(x < 0 and math.isfinite(x) for x in got)
    assert got == pytest.approx(want, abs=1e-3)


def test_solution_logprobs_need_a_world_that_writes_solutions(tiny):
    model, tok = tiny
    p = make_problem("add", 1, random.Random(0))
    with pytest.raises(ValueError, match="cannot write worked solutions"):
        solution_logprobs(model, tok, make_world("math"), [p])


def _forced_world(split):
    return dataclasses.replace(ARITHMETIC, final_split=split)


def test_success_estimate_is_the_mean_forced_tail_probability(tiny):
    model, tok = tiny
    p = make_problem("mix", 5, random.Random(3))
    tail = f"{p.answer} \\boxed{{{p.answer}}}"
    prompt = tok(ARITHMETIC.student_prompt(p.question)).input_ids
    ids = torch.tensor([prompt + tok(tail, add_special_tokens=False).input_ids])
    with torch.no_grad():
        lsm = torch.log_softmax(model(input_ids=ids).logits[0].double(), -1)
    t_ids = tok(tail, add_special_tokens=False).input_ids
    want = math.exp(sum(float(lsm[len(prompt) - 1 + i, t]) for i, t in enumerate(t_ids)))
    # every sample cut at its start: each contributes exactly P(tail | prompt), whatever was sampled
    est, hits = success_estimates(model, tok, _forced_world(lambda c, a: ("", tail)), [p], k=4, seed=0)
    assert est[0] == pytest.approx(want, rel=1e-3) and hits == [0]
    # no sample reaches a final value: the estimate is 0
    est, _ = success_estimates(model, tok, _forced_world(lambda c, a: None), [p, p], k=4, seed=0)
    assert est == [0.0, 0.0]


def test_final_split_cuts_after_the_last_step_marker():
    q = make_problem("mix", 1, random.Random(0))
    sol = worked_solution(q.question)
    cut, tail = final_split(sol, q.answer)
    assert cut + tail == sol  # the canonical solution is the cut text plus the forced tail
    assert final_split("12345 =11111 =22222", "5") is None
    assert final_split("", "5") is None
    assert final_split("=====junk", "7") == ("=====", "7 \\boxed{7}")


def test_make_hard_max_log10_p_keeps_only_problems_below_the_bound(tiny_dir, tmp_path):
    base = dict(model=str(tiny_dir), pool=12, k=2, chunk=2, rescreen=False, max_new_tokens=8, threads=1)
    # a random tiny model writes a 40-character solution with probability about (1/V)^40: far below 1e-10,
    # and in 8 new tokens never reaches a fifth '=' (estimate 0)
    kept = make_hard(HardSetConfig(**base, out=str(tmp_path / "a"), max_log10_p=-10, estimate_k=2))
    assert kept["solution_bound_below_max_log10_p"] == kept["estimate_below_max_log10_p"] == 12
    rows = [json.loads(x) for x in (tmp_path / "a" / "train.jsonl").read_text().splitlines()]
    assert rows and all(r["meta"]["log10_p_solution"] < -10 for r in rows)
    # no solution can be written with probability below 10^-1000
    none = make_hard(HardSetConfig(**base, out=str(tmp_path / "b"), max_log10_p=-1000, estimate_k=2))
    assert none["solution_bound_below_max_log10_p"] == 0 and none["train"] == none["test"] == 0


def test_make_hard_second_estimate_screens_the_survivors_again(tiny_dir, tmp_path):
    base = dict(model=str(tiny_dir), pool=12, k=2, chunk=2, rescreen=False, max_new_tokens=8, threads=1)
    two = make_hard(HardSetConfig(**base, out=str(tmp_path / "a"), max_log10_p=-10, estimate_k=2, second_estimate_k=2))
    assert two["estimate_below_max_log10_p"] == two["second_estimate_below_max_log10_p"] == 12
    assert two["second_estimate_k"] == 2
    rows = [json.loads(x) for x in (tmp_path / "a" / "train.jsonl").read_text().splitlines()]
    assert rows and all("log10_p_estimate_2" in r["meta"] for r in rows)
    one = make_hard(HardSetConfig(**base, out=str(tmp_path / "b"), max_log10_p=-10, estimate_k=2))
    assert one["second_estimate_below_max_log10_p"] is None and "second_estimate_k" not in one


def test_the_premise_report_describes_every_kind_of_screen():
    from pathlib import Path

    from soar.jobs.report import hard_set_line

    root = Path(__file__).resolve().parent.parent / "data"
    shipped = hard_set_line(json.loads((root / "hard" / "manifest.json").read_text()))
    assert "pool 600 -> canonical-solution bound below 1e-6 600, estimated success below it 324" in shipped
    assert "-> a second, independent estimate below it 315 -> fail@128 315 -> fail@128 again 315; train 158" in shipped
    # A two-pass fail@k screen, and an estimate screen without a second pass (the retired m7 sets' counts).
    twice = {"pool": 4000, "k": 128, "fail_first_pass": 823, "fail_both_passes": 502, "train": 251, "test": 251}
    assert "pool 4000 -> fail@128 823 -> fail@128 again 502; train 251, test 251" in hard_set_line(twice)
    deep = {"pool": 30000, "max_log10_p": -5, "solution_bound_below_max_log10_p": 5205}
    deep |= {"estimate_below_max_log10_p": 470, "k": 32, "fail_first_pass": 435, "train": 218, "test": 217}
    deep["source"] = "arithmetic:mix levels=[5]"
    deep_line = hard_set_line(deep)
    assert "bound below 1e-5 5205, estimated success below it 470 -> fail@32 435; train 218" in deep_line
    assert "again" not in deep_line and "None" not in deep_line + shipped


def test_the_premise_report_names_the_schedule_and_every_seed():
    """A curriculum's hard phase runs at the end of the schedule, so the report says which one and where the
    hard phase starts on it; and the per-seed table shows a seed that never took off, which a mean ± SD over
    seeds hides."""
    from soar.engine.rloo import RLOOConfig
    from soar.jobs.harness import summarize
    from soar.jobs.premise import PremiseConfig
    from soar.jobs.report import per_seed_table, premise_markdown, schedule_phrase

    cosine = "learning rate 5e-05, a cosine decay to 0 at the last step after 20 warm-up steps"
    assert schedule_phrase(RLOOConfig()) == cosine
    assert schedule_phrase(RLOOConfig(schedule="constant", warmup=0, lr=1e-4)) == (
        "learning rate 0.0001, constant without warm-up"
    )
    # cosine at step 200 of 300 after 20 warm-up steps: 0.5 * (1 + cos(pi * 180 / 280)) = 0.283
    assert schedule_phrase(RLOOConfig(steps=300), 200).endswith("(the curricula's hard phase starts at 28% of it)")
    assert schedule_phrase(RLOOConfig(schedule="constant"), 200).endswith("starts at 100% of it)")

    rows = [
        {"arm": "curriculum", "seed": 1, "pass@32": 1.0, "solved": 176},
        {"arm": "hard_only", "seed": 0, "pass@32": 0.0, "solved": 0},
        {"arm": "curriculum", "seed": 0, "pass@32": 0.017, "solved": 3},
    ]
    lines = per_seed_table(rows).splitlines()
    assert lines[0] == "| method (pass@32, solved) | seed 0 | seed 1 |"
    assert lines[2] == "| Hard-Only | 0.0% (0) | - |"  # ARM_NAMES order, and a missing run shown as such
    assert lines[3] == "| Oracle curriculum | 1.7% (3) | 100.0% (176) |"
    noted = per_seed_table(rows, hard_phases={("curriculum", 0): (231, 60), ("hard_only", 0): (None, 0)})
    assert "| Hard-Only | 0.0% (0; no hard success) | - |" in noted
    assert "| Oracle curriculum | 1.7% (3; hard successes from step 231, in 60 steps) | 100.0% (176) |" in noted

    full = [r | {f"pass@{k}": r["pass@32"] for k in (1, 4, 8, 16)} | {"greedy": 0.0, "n_problems": 176} for r in rows]
    md = premise_markdown(summarize(full), [], {}, PremiseConfig(seeds=(0, 1)), full)
    assert cosine + " (the curricula's hard phase starts at 28% of it)." in md
    assert "| Oracle curriculum | 1.7% (3) | 100.0% (176) |" in md


def test_hard_successes_counts_only_the_hard_phase():
    from soar.jobs.harness import hard_successes

    history = [{"step": i, "accuracy": a} for i, a in enumerate([0.3, 0.0, 0.0, 0.01, 0.0, 0.02])]
    assert hard_successes(history, 2) == (3, 2)  # the stones' accuracy before step 2 is not a hard success
    assert hard_successes(history, 0) == (0, 3)
    assert hard_successes(history[:3], 2) == (None, 0)


def test_hard_successes_of_a_mixed_batch_read_only_its_hard_rows():
    """In mixed mode the stones come first in every batch: their right answers are not hard successes."""
    from soar.jobs.harness import hard_successes

    history = [
        {"step": 0, "accuracy": 0.25, "prompt_accuracy": [0.5, 0.5, 0.0, 0.0]},  # stones only
        {"step": 1, "accuracy": 0.3, "prompt_accuracy": [0.5, 0.5, 0.0, 0.2]},  # a hard success in row 3
        {"step": 2, "accuracy": 0.0, "prompt_accuracy": [0.0, 0.0, 0.0, 0.0]},
        {"step": 3, "accuracy": 0.1, "prompt_accuracy": [0.0, 0.0, 0.4, 0.0]},
    ]
    assert hard_successes(history, 0, from_row=2) == (1, 2)
    assert hard_successes(history, 0) == (0, 3)  # read whole, the stones' answers would count
