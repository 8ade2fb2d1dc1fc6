"""`soar run` end to end at toy sizes, and the question-set analysis."""

import json
import random
import subprocess
import sys

import pytest
import torch

from soar.core.io import DataError
from soar.core.parallel import ParallelConfig
from soar.core.problems import Problem, save_problems
from soar.engine.evaluate import EvalConfig
from soar.engine.model import DEFAULT_MODEL
from soar.engine.rloo import RLOOConfig
from soar.jobs.main import RunConfig, StudentConfig, question_stats, run_main
from soar.method.loop import ConfigMismatch, SoarSettings, TeacherConfig
from soar.world import ARITHMETIC
from soar.world.arithmetic import make_problem


def test_question_stats_counts_correct_answers_and_levels():
    rng = random.Random(0)
    ps = [make_problem("add", 0, rng) for _ in range(3)]
    wrong = Problem("add", 0, ps[0].question, "00000" if ps[0].answer != "00000" else "00001")
    junk = Problem("teacher", -1, "what is love", "42")
    s = question_stats([*ps, wrong, junk], ARITHMETIC, RunConfig(vendi_size=4, vendi_samples=3))
    assert s["n"] == 5
    assert s["answer_correct"] == pytest.approx(3 / 4)  # the junk question has no known truth
    assert s["histogram"] == {"add:0": 4, "unparsed": 1}
    assert 1.0 <= s["vendi"] <= 4.0 + 1e-9


def toy_run(hard_dir, out, **kw) -> RunConfig:
    base = dict(
        model=str(DEFAULT_MODEL),
        hard_dir=str(hard_dir),
        out=str(out),
        seeds=(0,),
        questions=4,
        threads=1,
        vendi_size=4,
        vendi_samples=2,
        soar=SoarSettings(
            outer_steps=2,
            r=1,
            qr_size=4,
            qr_metric="sampled",
            qr_samples=2,
            tau=-1.0,
            window=1,
            intrinsic_samples=2,
            teacher=TeacherConfig(n=2, g=2, max_new_tokens=200),
            inner=RLOOConfig(steps=1, batch_size=2, group_size=2),
        ),
        student=StudentConfig(synthetic_steps=1, rloo=RLOOConfig(steps=2, batch_size=2, group_size=2)),
        eval=EvalConfig(n=2, ks=(1, 2)),
        max_new_tokens=56,
    )
    base.update(kw)
    return RunConfig(**base)


@pytest.fixture(scope="module")
def hard_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("hard")
    rng = random.Random(0)
    save_problems(d / "train.jsonl", [make_problem("mix", 5, rng) for _ in range(8)])
    save_problems(d / "test.jsonl", [make_problem("mix", 5, rng) for _ in range(3)])
    return d


def test_main_job_at_toy_sizes_writes_the_report(hard_dir, tmp_path):
    out = tmp_path / "main"
    table = run_main(toy_run(hard_dir, out))
    assert set(table) == {"base", "hard_only", "base_t", "grounded_t", "intrinsic_t", "pq", "ps"}
    report = (out / "report.md").read_text()
    for name in ("Hard-Only", "Base-T", "Grounded-T", "Intrinsic-T", "PQ", "PS", "Vendi", "Promotions"):
        assert name in report
    # The students' schedule in words, and a row per arm and seed; a trained arm's row counts its hard phase.
    assert "a cosine decay to 0 at the last step" in report and "hard phase starts at" in report
    per_seed = {line.split(" | ")[0]: line for line in report.splitlines() if "% (" in line}  # "0.0% (0; ...)"
    assert len(per_seed) == 7
    assert "hard success" in per_seed["| Hard-Only"] and "hard success" in per_seed["| PQ"]
    assert "hard success" not in per_seed["| PS"]  # evaluated as it is
    assert (out / "pass_at_k.png").stat().st_size > 0 and (out / "teacher_reward.png").stat().st_size > 0
    stats = json.loads((out / "question_stats.json").read_text())
    assert stats["pq"]["n"] == 2 * 2  # tau = -1: both outer steps promote one dataset of n = 2
    rows = [json.loads(x) for x in (out / "results.jsonl").read_text().splitlines()]
    assert len(rows) == 7
    # Resuming a finished run redoes nothing; a changed config is refused.
    run_main(toy_run(hard_dir, out, resume=True))
    assert len((out / "results.jsonl").read_text().splitlines()) == 7
    with pytest.raises(ConfigMismatch, match="questions"):
        run_main(toy_run(hard_dir, out, resume=True, questions=5))
    # The question analysis may change on resume: it is recomputed, and the saved config follows it.
    run_main(toy_run(hard_dir, out, resume=True, vendi_size=3))
    assert "vendi_size: 3" in (out / "config.yaml").read_text()
    assert len((out / "results.jsonl").read_text().splitlines()) == 7
    with pytest.raises(FileExistsError, match="--resume"):
        run_main(toy_run(hard_dir, out))
    # Students redone on two worker processes (which read the run folder back) give the same rows, and a
    # resumed run may change parallel.workers.
    (out / "results.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows[:2]))
    run_main(toy_run(hard_dir, out, resume=True, parallel=ParallelConfig(workers=2)))
    redone = [json.loads(x) for x in (out / "results.jsonl").read_text().splitlines()]
    key = lambda r: (r["seed"], r["arm"])  # noqa: E731
    drop = lambda r: {k: v for k, v in r.items() if k != "seconds"}  # noqa: E731
    assert sorted(map(drop, redone), key=key) == sorted(map(drop, rows), key=key)


def test_a_resumed_main_job_may_add_arms_and_seeds_but_not_drop_them(hard_dir, tmp_path):
    out = tmp_path / "main"
    run_main(toy_run(hard_dir, out, arms=("pq",)))
    first = [json.loads(x) for x in (out / "results.jsonl").read_text().splitlines()]
    assert [(r["arm"], r["seed"]) for r in first] == [("pq", 0)]
    assert not (out / "intrinsic").exists()  # no arm asked for the learnability teacher
    table = run_main(toy_run(hard_dir, out, resume=True, arms=("pq", "hard_only", "intrinsic_t"), seeds=(0, 1)))
    assert set(table) == {"pq", "hard_only", "intrinsic_t"}
    rows = [json.loads(x) for x in (out / "results.jsonl").read_text().splitlines()]
    assert rows[0] == first[0]  # the finished student is kept, not redone
    assert sorted((r["arm"], r["seed"]) for r in rows[1:]) == [
        ("hard_only", 0), ("hard_only", 1), ("intrinsic_t", 0), ("intrinsic_t", 1), ("pq", 1)
    ]  # fmt: skip
    assert (out / "intrinsic").is_dir() and "intrinsic_t" in (out / "config.yaml").read_text()
    with pytest.raises(ConfigMismatch, match=r"arms \['pq'\].*seeds \[1\]"):
        run_main(toy_run(hard_dir, out, resume=True, arms=("hard_only", "intrinsic_t"), seeds=(0,)))


def test_cli_run_resume_refuses_a_missing_folder(tmp_path):
    r = subprocess.run(
        [sys.executable, "-m", "soar.cli", "run", "--resume", str(tmp_path / "nope")], capture_output=True, text=True
    )
    assert r.returncode == 2 and "nothing to resume" in r.stderr


def test_ps_is_the_promoted_student_with_the_best_acc_ties_to_the_later(monkeypatch):
    import soar.jobs.main as run_mod

    accs = iter([0.02, 0.01, 0.02, 0.0])
    monkeypatch.setattr(run_mod, "load_policy", lambda path, opts=None: (path, None))
    monkeypatch.setattr(run_mod, "qr_accuracy", lambda model, tok, world, probs, cfg, seed, max_new: next(accs))
    promos = [{"student_dir": f"ps{i}"} for i in range(4)]
    assert run_mod.best_promoted(promos, None, ARITHMETIC, [], RunConfig()) == "ps2"


def test_the_extra_arms_hard_only_group_128_grounded_t_without_promotion_and_oracle_answers(hard_dir, tmp_path):
    """The paper's two further arms, on request: Hard-Only at a larger group, and Grounded-T from a third
    teacher run that never promotes (tau = -1 would promote at every step in the SOAR run); and PQ of a SOAR
    run whose students see the world's true answers (teacher.answers=oracle)."""
    out = tmp_path / "extra"
    table = run_main(
        toy_run(
            hard_dir,
            out,
            arms=("hard_only_g128", "grounded_t_np", "pq_oracle"),
            student=StudentConfig(
                synthetic_steps=1, hard_only_group=3, rloo=RLOOConfig(steps=2, batch_size=2, group_size=2)
            ),
        )
    )
    assert set(table) == {"hard_only_g128", "grounded_t_np", "pq_oracle"}
    history = [json.loads(x) for x in (out / "train_hard_only_g128_seed0.jsonl").read_text().splitlines()]
    assert history[0]["completion_tokens"] > 0
    assert not (out / "soar_np" / "promotions.jsonl").exists()  # the no-promotion run
    assert (out / "soar" / "promotions.jsonl").exists()  # the SOAR run still promotes (PQ, PS)
    assert (out / "questions" / "grounded_t_np.jsonl").exists()
    assert "Grounded-T (no promotion)" in (out / "report.md").read_text()
    assert "PQ (oracle answers)" in (out / "report.md").read_text()
    assert "| soar_oracle | 1 |" in (out / "report.md").read_text()  # its promotions are in the table too
    # The oracle run's PQ holds the true answer wherever the world knows one.
    oracle_pq = [json.loads(x) for x in (out / "soar_oracle" / "pq.jsonl").read_text().splitlines()]
    known = [(ARITHMETIC.true_answer(r["question"]), r["answer"]) for r in oracle_pq]
    known = [(t, a) for t, a in known if t is not None]
    assert known and all(t == a for t, a in known)
    assert "answers: oracle" in (out / "soar_oracle" / "config.yaml").read_text()
    assert "answers: own" in (out / "soar" / "config.yaml").read_text()
    with pytest.raises(ValueError, match="valid: .*hard_only_g128"):
        toy_run(hard_dir, out, arms=("hard_only_128",))


def test_checkpoint_result_averages_the_evaluations_after_the_slope_stop():
    from soar.jobs.main import checkpoint_result

    rewards = [0.0] * 10 + [i / 10 for i in range(10)] + [1.0] * 30  # rises over steps 10-19, then flat
    history = [{"reward": r} for r in rewards]
    evals = [(s, ({"pass@1": s / 100, "solved": s}, [{"step": s}])) for s in range(10, 51, 10)]
    summary, records = checkpoint_result(history, evals, window=20)
    stop = summary["checkpoint_step"]
    assert 15 <= stop <= 35  # after the steepest rise, where the smoothed slope falls below 15% of its peak
    used = [s for s in range(10, 51, 10) if stop < s <= stop + 20]
    assert summary["evaluations_averaged"] == len(used) and used
    assert summary["pass@1"] == pytest.approx(sum(used) / len(used) / 100)
    assert records == [{"step": used[-1]}]
    # No evaluation after the stop: the last one stands in.
    summary, _ = checkpoint_result(history, evals[:1], window=5)
    assert summary["evaluations_averaged"] == 1 and summary["pass@1"] == pytest.approx(0.1)


def test_the_slope_checkpoint_rule_runs_in_the_main_job(hard_dir, tmp_path):
    out = tmp_path / "slope"
    student = StudentConfig(
        synthetic_steps=1,
        checkpoint_rule="slope",
        eval_every=1,
        report_window=2,
        rloo=RLOOConfig(steps=3, batch_size=2, group_size=2),
    )
    run_main(toy_run(hard_dir, out, arms=("hard_only", "base_t"), student=student))
    rows = {r["arm"]: r for r in map(json.loads, (out / "results.jsonl").read_text().splitlines())}
    for arm in ("hard_only", "base_t"):
        assert 0 <= rows[arm]["checkpoint_step"] <= 2 and rows[arm]["evaluations_averaged"] >= 1
    with pytest.raises(ValueError, match="checkpoint_rule"):
        StudentConfig(checkpoint_rule="best")


def test_transfer_sets_are_evaluated_at_the_transfer_step_for_every_arm(hard_dir, tmp_path):
    """The paper's transfer evaluation: each arm's student also on another benchmark, at a fixed step."""
    rng = random.Random(5)
    other = tmp_path / "other.jsonl"
    save_problems(other, [make_problem("add", 1, rng) for _ in range(3)])
    out = tmp_path / "transfer"
    student = StudentConfig(synthetic_steps=1, transfer_step=1, rloo=RLOOConfig(steps=2, batch_size=2, group_size=2))
    table = run_main(
        toy_run(hard_dir, out, arms=("base", "hard_only", "pq"), transfer={"other": str(other)}, student=student)
    )
    for arm in ("base", "hard_only", "pq"):
        assert table[arm]["transfer/other/n_problems"][0] == 3
    report = (out / "report.md").read_text()
    assert "## Transfer: other" in report and "evaluated at training step 1" in report
    with pytest.raises(DataError, match="transfer set.*nope.jsonl"):
        run_main(toy_run(hard_dir, tmp_path / "bad", arms=("base",), transfer={"x": str(tmp_path / "nope.jsonl")}))


@pytest.mark.parametrize("transfer_step, steps_after", [(1, 2), (5, 0)])
def test_train_student_calls_the_transfer_evaluation_once_at_its_step(transfer_step, steps_after):
    from soar.engine.model import load_policy
    from soar.jobs.main import train_student

    base, tok = load_policy(DEFAULT_MODEL)
    rng = random.Random(1)
    mixed = [make_problem("mix", 1, rng) for _ in range(4)]  # some right, some wrong: the updates are not zero
    cfg = StudentConfig(
        synthetic_steps=0, transfer_step=transfer_step, rloo=RLOOConfig(steps=3, batch_size=4, group_size=4, warmup=0)
    )
    seen = []

    def transfer_fn(model):
        seen.append({k: v.detach().clone() for k, v in model.named_parameters()})
        return {"transfer/x/pass@1": 0.5}

    trained = train_student(base, tok, ARITHMETIC, mixed, None, cfg, 0, 60, False, None, transfer_fn)
    assert len(seen) == 1 and trained.extra == {"transfer/x/pass@1": 0.5}
    final = dict(trained.model.named_parameters())
    moved = any(not torch.equal(seen[0][k], final[k]) for k in final)
    assert moved == (steps_after > 0)  # evaluated before the last steps, or (transfer_step >= steps) at the end


def test_the_teacher_arms_spread_over_teacher_seeds_of_student_seed_means():
    from soar.engine.metrics import mean_sd
    from soar.jobs.main import summarize_teacher_seeds

    rows = [
        {"arm": "hard_only", "seed": 0, "pass@1": 0.0},
        {"arm": "hard_only", "seed": 1, "pass@1": 0.2},
        {"arm": "pq@t0", "seed": 0, "pass@1": 0.1},
        {"arm": "pq@t0", "seed": 1, "pass@1": 0.3},
        {"arm": "pq@t1", "seed": 0, "pass@1": 0.4},
        {"arm": "pq@t1", "seed": 1, "pass@1": 0.6},
    ]
    table = summarize_teacher_seeds(rows)
    assert set(table) == {"hard_only", "pq"}
    assert table["hard_only"]["pass@1"] == pytest.approx(mean_sd([0.0, 0.2]))  # over student seeds
    assert table["pq"]["pass@1"] == pytest.approx(mean_sd([0.2, 0.5]))  # over teacher seeds of seed means


def test_several_teacher_seeds_make_one_teacher_run_and_one_arm_each(hard_dir, tmp_path):
    out = tmp_path / "tseeds"
    cfg = toy_run(hard_dir, out, arms=("hard_only", "grounded_t", "pq", "ps"), teacher_seeds=(0, 1))
    table = run_main(cfg)
    assert set(table) == {"hard_only", "grounded_t", "pq", "ps"}
    for t in (0, 1):
        assert f"seed: {t}\n" in (out / f"soar_t{t}" / "config.yaml").read_text()
        assert (out / "questions" / f"grounded_t_t{t}.jsonl").exists()
    rows = [json.loads(x) for x in (out / "results.jsonl").read_text().splitlines()]
    assert sorted(r["arm"] for r in rows) == sorted(
        ["hard_only", "grounded_t@t0", "grounded_t@t1", "pq@t0", "pq@t1", "ps@t0", "ps@t1"]
    )
    report = (out / "report.md").read_text()
    assert "mean ± SD over 2 teacher seeds [0, 1]" in report and "| soar_t1 |" in report
    assert not (out / "soar").exists()
    with pytest.raises(ValueError, match="teacher_seeds must not repeat"):
        toy_run(hard_dir, out, teacher_seeds=(1, 1))


def test_question_mix_counts_kinds_and_right_answers_per_outer_step():
    from soar.jobs.main import question_mix
    from soar.jobs.report import question_mix_table

    rows = [
        {"step": 0, "question": "a", "answer_correct": True},
        {"step": 0, "question": "b", "answer_correct": False},
        {"step": 0, "question": "?", "answer_correct": None},
        {"step": 0, "question": "a", "answer_correct": False},
        {"step": 1, "question": "b", "answer_correct": True},
    ]
    mix = question_mix(rows, {"a": "easy", "b": "stone L2"}.get)
    assert mix[0] == {
        "step": 0,
        "n": 4,
        "shares": {"easy": 0.5, "stone L2": 0.25, "unparsed": 0.25},
        "answer_correct": 1 / 3,
    }
    assert mix[1] == {"step": 1, "n": 1, "shares": {"stone L2": 1.0}, "answer_correct": 1.0}
    table = question_mix_table({"soar": mix}, edge=1)
    assert "| soar | easy | 50.0% | 0.0% |" in table and "| soar | stone L2 | 25.0% | 100.0% |" in table
    assert "| soar | (teacher answers right) | 33.3% | 100.0% |" in table


def test_hard_phase_of_the_main_jobs_arms():
    from soar.jobs.main import hard_phase

    student = StudentConfig(synthetic_steps=150)
    assert hard_phase("hard_only", student) == (0, 0)
    assert hard_phase("pq", student) == hard_phase("grounded_t@t1", student) == (150, 0)
    assert hard_phase("ps", student) is None and hard_phase("base", student) is None
    mixed = StudentConfig(synthetic_steps=150, mode="mixed")  # questions pooled with the hard problems
    assert hard_phase("pq", mixed) is None and hard_phase("hard_only", mixed) == (0, 0)
    shared = StudentConfig(mode="mixed", mixed_questions=3)  # every batch: 3 questions, then 5 hard problems
    assert hard_phase("pq@t1", shared) == hard_phase("grounded_t@t1", shared) == (0, 3)
    assert hard_phase("hard_only", shared) == (0, 0)
    assert hard_phase("pq", StudentConfig(mode="curriculum", mixed_questions=3, synthetic_steps=7)) == (7, 0)


@pytest.mark.parametrize("mixed_questions", [0, 1])
def test_a_mixed_student_meets_questions_and_hard_problems_in_its_batches(mixed_questions, monkeypatch):
    """mixed_questions=N: every batch is N questions, then hard problems; 0 pools the two sets (the paper)."""
    import soar.jobs.main as main_mod
    from soar.engine.model import load_policy

    base, tok = load_policy(DEFAULT_MODEL)
    rng = random.Random(2)
    questions = [make_problem("add", 1, rng) for _ in range(2)]
    hard = [make_problem("mix", 3, rng) for _ in range(6)]
    seen: list[list[bool]] = []

    def spy(model, tok, world, batches, cfg, seed, *a, **k):
        r = random.Random(0)
        seen.extend([p in hard for p in batches(step, r)] for step in range(cfg.steps))
        return []

    monkeypatch.setattr(main_mod, "train_rloo", spy)
    cfg = StudentConfig(mode="mixed", mixed_questions=mixed_questions, rloo=RLOOConfig(steps=4, batch_size=4))
    main_mod.train_student(base, tok, ARITHMETIC, hard, questions, cfg, 0, 60, False)
    if mixed_questions:
        assert seen == [[False, True, True, True]] * 4
    else:  # 4 batches of 4 walk the 8 pooled problems twice: each epoch holds both questions
        assert sum(row.count(False) for row in seen) == 4 and len(seen) == 4


def test_the_report_says_how_a_student_meets_its_questions():
    from soar.jobs.report import student_mode_phrase

    assert student_mode_phrase(StudentConfig(synthetic_steps=150)) == "curriculum; 150 on synthetic questions first"
    shared = StudentConfig(mode="mixed", mixed_questions=3)
    assert student_mode_phrase(shared) == "mixed; every batch of 8 holding 3 questions and 5 hard train problems"
    assert "pooled" in student_mode_phrase(StudentConfig(mode="mixed"))
