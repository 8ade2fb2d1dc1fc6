"""The SOAR loop on the shipped tiny model at toy sizes: artifacts, promotion, Intrinsic-T, and resume."""

import json
import math
import os
import random
import time
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

import soar.method.loop as loop
from soar.core.problems import load_problems, save_problems
from soar.engine.model import DEFAULT_MODEL, load_policy
from soar.engine.rloo import RLOOConfig
from soar.method.loop import QR_METRICS, ConfigMismatch, SoarConfig, TeacherConfig, qr_accuracy, run_soar
from soar.method.teacher import TeacherFormatError, valid_pair, write_datasets
from soar.world import ARITHMETIC
from soar.world.arithmetic import make_problem


@pytest.fixture(scope="module")
def hard_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("hard")
    rng = random.Random(0)
    save_problems(d / "train.jsonl", [make_problem("mix", 5, rng) for _ in range(12)])
    save_problems(d / "test.jsonl", [make_problem("mix", 5, rng) for _ in range(4)])
    return d


@pytest.fixture(scope="module")
def straight(hard_dir, tmp_path_factory):
    """The toy run, uninterrupted, logging to both tracking backends (W&B offline: no network)."""
    old = {k: os.environ.get(k) for k in ("WANDB_MODE", "WANDB_SILENT")}
    os.environ.update(WANDB_MODE="offline", WANDB_SILENT="true")
    try:
        out = tmp_path_factory.mktemp("straight") / "run"
        return run_soar(toy(hard_dir, out, report_to=("tensorboard", "wandb")), progress=False)
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _written(path: Path, needles: tuple[bytes, ...], timeout: float = 30.0) -> bytes:
    """The file's bytes once they hold every needle, or after `timeout` s: W&B's service process writes its offline
    log on its own schedule, and on a busy machine a read right after `finish()` has met only its 7-byte header."""
    deadline = time.monotonic() + timeout
    while True:
        data = path.read_bytes()
        if all(n in data for n in needles) or time.monotonic() > deadline:
            return data
        time.sleep(0.2)


def toy(hard_dir, out, **kw) -> SoarConfig:
    base = dict(
        model=str(DEFAULT_MODEL),
        hard_dir=str(hard_dir),
        out=str(out),
        outer_steps=3,
        r=2,
        qr_size=4,
        qr_metric="sampled",
        qr_samples=2,
        tau=-1.0,
        window=1,
        threads=1,
        teacher=TeacherConfig(n=3, g=2, max_new_tokens=200, lr=1e-4, warmup=0),
        inner=RLOOConfig(steps=2, batch_size=2, group_size=2),
        max_new_tokens=56,
    )
    base.update(kw)
    return SoarConfig(**base)


def test_qr_metrics_on_the_shipped_careless_model():
    """Greedy step credit takes the careless slip at the first hard step of every Q_R problem; sampled step
    credit sees how often a student gets past it. Both lie in [0, 1]; an unknown metric names the valid ones."""
    model, tok = load_policy(DEFAULT_MODEL)
    rng = random.Random(3)
    qr = [make_problem("mix", 1, rng) for _ in range(12)]
    acc = {
        m: qr_accuracy(model, tok, ARITHMETIC, qr, SoarConfig(qr_metric=m, qr_samples=16), 0, 64) for m in QR_METRICS
    }
    assert all(0.0 <= a <= 1.0 for a in acc.values())
    assert acc["sampled"] < acc["partial_sampled"]  # a wrong final box still earns the steps before the slip
    with pytest.raises(ValueError, match="partial_sampled"):
        SoarConfig(qr_metric="partial-sampled")


def test_valid_pair_table():
    good = "<question>11111 +11111 +11111 +11111 +11111 +11111</question><answer>\\boxed{66666}</answer>"
    assert valid_pair(ARITHMETIC, good).answer == "66666"
    assert valid_pair(ARITHMETIC, good.replace("</question>", "<question>")) is not None  # paper's tag
    for bad in [
        "",
        "<question>1</question>",
        "<question>1</question><answer>66666</answer>",
        "<question>1</question><answer>\\boxed{six}</answer>",
        "<answer>\\boxed{1}</answer>",
        "<question></question><answer>\\boxed{1}</answer>",
        "\\boxed{" * 50,
    ]:
        assert valid_pair(ARITHMETIC, bad) is None, bad


def test_untrained_random_teacher_hits_the_attempt_cap(tiny):
    model, tok = tiny
    with pytest.raises(TeacherFormatError, match="valid question/answer pairs"):
        write_datasets(
            model, tok, ARITHMETIC, TeacherConfig(n=2, max_new_tokens=8, max_attempts=2, answer_mode="inline"), 2, 0
        )


def test_shipped_teacher_writes_valid_datasets():
    from soar.engine.model import load_policy

    model, tok = load_policy(DEFAULT_MODEL)
    ds, stats = write_datasets(
        model, tok, ARITHMETIC, TeacherConfig(n=3, max_new_tokens=200, answer_mode="inline"), 2, 0
    )
    assert [len(d) for d in ds] == [3, 3]
    assert stats["attempts"] >= 6 and 0 <= stats["invalid_rate"] < 1
    assert all(valid_pair(ARITHMETIC, s.text) == s.pair for d in ds for s in d)


def test_soar_run_writes_artifacts_and_promotes(straight):
    out = straight
    metrics = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    assert [m["step"] for m in metrics] == [0, 1, 2]
    assert all(len(m["R"]) == 2 for m in metrics)
    questions = [json.loads(x) for x in (out / "questions.jsonl").read_text().splitlines()]
    assert len(questions) == 3 * 2 * 3
    assert {"question", "answer", "step", "dataset", "reward", "valid", "answer_correct", "level"} <= set(questions[0])
    # tau = -1: every step promotes; PQ grows by n each time and a promoted student is saved.
    promos = [json.loads(x) for x in (out / "promotions.jsonl").read_text().splitlines()]
    assert len(promos) == 3 and promos[-1]["pq_size"] == 9
    assert len((out / "pq.jsonl").read_text().splitlines()) == 9
    assert (out / "promoted").is_dir() and len(list((out / "promoted").iterdir())) == 3
    assert (out / "checkpoint" / "teacher" / "model.safetensors").exists()
    assert list((out / "tensorboard").iterdir())
    (wandb_log,) = (out / "wandb").glob("offline-run-*/run-*.wandb")
    logged = _written(wandb_log, (b"outer/rhat", b"promotion/count"))
    assert b"outer/rhat" in logged and b"promotion/count" in logged
    # The teacher moves exactly when some dataset's leave-one-out advantage is non-zero (toy rewards are
    # often all 0, and then RLOO has nothing to learn from: the KL term is 0 at the reference).
    moved = teacher_moved(out)
    assert moved == any(q["advantage"] != 0 for q in questions)


def teacher_moved(out) -> bool:
    base = load_file(DEFAULT_MODEL / "model.safetensors")
    trained = load_file(out / "checkpoint" / "teacher" / "model.safetensors")
    return any(not torch.equal(base[k], trained[k]) for k in base)


def test_intrinsic_reward_runs_without_students(hard_dir, tmp_path):
    cfg = toy(
        hard_dir,
        tmp_path / "intr",
        reward="intrinsic",
        outer_steps=1,
        intrinsic_samples=8,
        teacher=TeacherConfig(n=12, g=4, max_new_tokens=200, lr=1e-4, warmup=0),  # 4 datasets: a tie of all is unlikely
    )
    out = run_soar(cfg, progress=False)
    m = json.loads((out / "metrics.jsonl").read_text().splitlines()[0])
    assert all(0.0 <= r <= 1.0 for r in m["R"])
    assert len(set(m["R"])) > 1 and teacher_moved(out)
    assert not (out / "promotions.jsonl").exists()


def test_resume_after_a_crash_equals_an_uninterrupted_run(hard_dir, straight, tmp_path, monkeypatch):

    calls = {"n": 0}
    real = loop.policy_update

    def crash_on_third(*a, **k):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt("killed in the middle of outer step 2")
        return real(*a, **k)

    monkeypatch.setattr(loop, "policy_update", crash_on_third)
    with pytest.raises(KeyboardInterrupt):
        run_soar(toy(hard_dir, tmp_path / "b"), progress=False)
    monkeypatch.setattr(loop, "policy_update", real)
    assert json.loads((tmp_path / "b" / "checkpoint" / "state.json").read_text())["step"] == 2

    with pytest.raises(ConfigMismatch, match="outer_steps"):
        run_soar(toy(hard_dir, tmp_path / "b", resume=True, outer_steps=5), progress=False)
    with pytest.raises(FileExistsError, match="resume"):
        run_soar(toy(hard_dir, tmp_path / "b"), progress=False)

    resumed = run_soar(toy(hard_dir, tmp_path / "b", resume=True), progress=False)
    a = load_file(straight / "checkpoint" / "teacher" / "model.safetensors")
    b = load_file(resumed / "checkpoint" / "teacher" / "model.safetensors")
    assert all(torch.equal(a[k], b[k]) for k in a)

    def strip(p):
        return [
            {k: v for k, v in json.loads(x).items() if k != "seconds" and not k.startswith("time_")}
            for x in p.read_text().splitlines()
        ]

    assert strip(straight / "metrics.jsonl") == strip(resumed / "metrics.jsonl")
    assert (straight / "questions.jsonl").read_text() == (resumed / "questions.jsonl").read_text()
    assert (straight / "pq.jsonl").read_text() == (resumed / "pq.jsonl").read_text()


def test_two_turn_answers_sampled_at_temperature_one_are_seeded_and_vary():
    from soar.engine.model import load_policy

    model, tok = load_policy(DEFAULT_MODEL)

    def pairs(temperature):
        tcfg = TeacherConfig(n=8, max_new_tokens=200, answer_mode="two_turn", answer_temperature=temperature)
        ds, _ = write_datasets(model, tok, ARITHMETIC, tcfg, 1, 1)
        return [(s.pair.question, s.pair.answer) for s in ds[0]]

    sampled, greedy = pairs(1.0), pairs(0.0)
    assert sampled == pairs(1.0)  # seeded: a resumed run writes the same answers
    assert [q for q, _ in sampled] == [q for q, _ in greedy]  # the question turn does not depend on it
    assert [a for _, a in sampled] != [a for _, a in greedy]


def test_two_turn_answers_are_the_teachers_own_greedy_solutions():
    from soar.engine.model import load_policy
    from soar.engine.sampling import sample
    from soar.world.verifiers import extract_boxed

    model, tok = load_policy(DEFAULT_MODEL)
    tcfg = TeacherConfig(n=4, max_new_tokens=200, answer_mode="two_turn", answer_temperature=0.0)
    ds, _ = write_datasets(model, tok, ARITHMETIC, tcfg, 1, 1)
    for s in ds[0]:
        assert s.answer_prompt == ARITHMETIC.student_prompt(s.pair.question) and s.answer_token_ids
        again = sample(model, tok, [s.answer_prompt], 1, temperature=0.0, max_new_tokens=64)[0][0].text
        assert s.pair.answer == extract_boxed(again).strip()


def test_two_turn_answers_in_the_answer_key_prompt():
    from soar.engine.model import load_policy
    from soar.engine.sampling import sample
    from soar.world.verifiers import extract_boxed

    model, tok = load_policy(DEFAULT_MODEL)
    tcfg = TeacherConfig(n=4, max_new_tokens=200, answer_temperature=0.0, answer_prompt="key")
    ds, _ = write_datasets(model, tok, ARITHMETIC, tcfg, 1, 1)
    for s in ds[0]:
        assert s.answer_prompt == f"<question>{s.pair.question}</question>" and s.answer_token_ids
        again = sample(model, tok, [s.answer_prompt], 1, temperature=0.0, max_new_tokens=64)[0][0].text
        assert s.pair.answer == (extract_boxed(again) or "").strip()
    with pytest.raises(ValueError, match="answer_prompt must be one of student, key"):
        TeacherConfig(answer_prompt="chat")


def test_premise_self_answered_stones_take_the_answer_prompt():
    """The premise's self-answered arm asks the base model in the prompt the loop's teacher would use."""
    import random

    from soar.engine.evaluate import own_answers
    from soar.engine.model import load_policy
    from soar.jobs.premise import PremiseConfig, self_answered_batches, stone_batches

    model, tok = load_policy(DEFAULT_MODEL)
    stones = stone_batches([("mix", 1)], 6, 2, 2)
    for which in ("student", "key"):
        got = self_answered_batches(stones, model, tok, 64, which)(0, random.Random(3))
        rng = random.Random(3)
        problems = stones(0, rng)
        want = own_answers(model, tok, ARITHMETIC, problems, rng.randrange(2**31), 64,
                           prompt_of=ARITHMETIC.answer_prompt(which))  # fmt: skip
        assert got == want
    with pytest.raises(ValueError, match="answer_prompt must be one of student, key"):
        PremiseConfig(answer_prompt="chat")


@pytest.mark.slow
def test_kill_9_then_resume_from_the_cli(hard_dir, tmp_path):
    """A real `kill -9` of `soar teach` in the middle of a run; `--resume` finishes it (slow tier)."""
    import os
    import signal
    import subprocess
    import sys
    import time

    out = tmp_path / "k9"
    args = [
        sys.executable,
        "-m",
        "soar.cli",
        "teach",
        "--set",
        f"hard_dir={hard_dir}",
        "--set",
        f"out={out}",
        "--set",
        "outer_steps=4",
        "--set",
        "r=1",
        "--set",
        "qr_size=4",
        "--set",
        "threads=1",
        "--set",
        "teacher.n=3",
        "--set",
        "teacher.g=2",
        "--set",
        "inner.steps=2",
        "--set",
        "inner.batch_size=2",
        "--set",
        "inner.group_size=2",
    ]
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    while time.time() < deadline and not (out / "checkpoint" / "state.json").exists():
        time.sleep(0.2)
    time.sleep(0.5)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    step = json.loads((out / "checkpoint" / "state.json").read_text())["step"]
    assert 1 <= step <= 4
    r = subprocess.run(
        [sys.executable, "-m", "soar.cli", "teach", "--resume", str(out)], capture_output=True, text=True
    )
    assert r.returncode == 0, r.stderr[-2000:]
    rows = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    assert [m["step"] for m in rows] == [0, 1, 2, 3]


def test_inner_loop_defaults_are_the_students_lr_without_warmup_and_evaluations_warm_up():
    """Measured (docs/world-design.md): at 2e-4 one step broke the shipped model; at the paper's 1e-5 ten
    inner steps could not tell stepping stones from the hard set; at 5e-5 (the students' lr) they can. The
    paper: warm-up 0 inner / 20 in evaluations."""
    inner = SoarConfig().inner
    assert (inner.lr, inner.warmup, inner.steps) == (RLOOConfig().lr, 0, 10) == (5e-5, 0, 10)
    assert RLOOConfig().warmup == 20


def test_the_promoted_student_trains_promotion_steps_more(hard_dir, tmp_path, monkeypatch):
    """promotion_steps (paper 5): after the inner loop, one more RLOO run of that many steps, on the promoted
    dataset, with its own seed stream; none with promotion_steps=0. The step's rewards do not change."""
    calls = []
    real = loop.train_rloo

    def spy(model, tok, world, batches, cfg, seed, max_new_tokens, *a, **kw):
        calls.append((cfg.steps, seed, [p.question for p in batches(0, random.Random(0))]))
        return real(model, tok, world, batches, cfg, seed, max_new_tokens, *a, **kw)

    monkeypatch.setattr(loop, "train_rloo", spy)
    rewards = {}
    for steps in (0, 3):
        calls.clear()
        out = run_soar(toy(hard_dir, tmp_path / f"p{steps}", outer_steps=1, promotion_steps=steps), progress=False)
        rewards[steps] = json.loads((out / "metrics.jsonl").read_text().splitlines()[0])["R"]
        inner = [c for c in calls if c[0] == 2]  # the toy inner loop: 2 steps, r = 2 copies x g = 2 datasets
        extra = [c for c in calls if c[0] != 2]
        assert len(inner) == 4
        pq = {json.loads(x)["question"] for x in (out / "pq.jsonl").read_text().splitlines()}
        if steps == 0:
            assert extra == []
        else:
            assert len(extra) == 1 and extra[0][0] == 3
            assert extra[0][1] == loop.seeds.derive(0, 0, loop.seeds.PROMOTION)
            assert set(extra[0][2]) <= pq  # trained on the promoted dataset
    assert rewards[0] == rewards[3]


def test_as_problems_keeps_the_teachers_answer_or_puts_the_truth_in_its_place():
    from soar.method.teacher import TeacherConfig, TeacherSample, as_problems
    from soar.world import ARITHMETIC
    from soar.world.arithmetic import make_problem
    from soar.world.formats import QAPair

    p = make_problem("add", 1, random.Random(3))
    wrong = str(int(p.answer) + 1)
    samples = [TeacherSample(QAPair(p.question, wrong), "", []), TeacherSample(QAPair("what is love", "42"), "", [])]
    own = as_problems(samples, ARITHMETIC)
    assert [(q.family, q.level, q.answer) for q in own] == [("add", 1, wrong), ("teacher", -1, "42")]
    oracle = as_problems(samples, ARITHMETIC, "oracle")
    assert oracle[0].answer == p.answer != wrong  # the truth replaces the teacher's wrong answer
    assert oracle[1].answer == "42"  # no truth for a question outside the grammar: the teacher's stays
    with pytest.raises(ValueError, match="teacher.answers must be one of own, oracle"):
        TeacherConfig(answers="truth")


def test_span_tokens_hand_checked():
    from soar.engine.evaluate import span_tokens

    # tokens "ab", "c", "=", "de", "f": characters [0,2) [2,3) [3,4) [4,6) [6,7)
    offsets = [(0, 2), (2, 3), (3, 4), (4, 6), (6, 7)]
    assert span_tokens(offsets, [(0, 3), (4, 7), (1, 5), (7, 9)]) == [[0, 1], [3, 4], [0, 1, 2, 3], []]


def test_forced_step_credit_is_the_probability_of_each_true_step():
    """Deterministic; the careless model is near-sure of easy steps and rarely careful at look-ahead-4 steps;
    one problem's credit equals the mean over its steps of exp(sum of the step's token log-probs)."""
    from soar.engine.evaluate import forced_step_credit
    from soar.engine.rloo import token_logprobs
    from soar.engine.sampling import encode_prompts

    model, tok = load_policy(DEFAULT_MODEL)
    rng = random.Random(5)
    easy = [make_problem("mix", 0, rng) for _ in range(8)]
    hard = load_problems(Path(__file__).parents[1] / "data/hard/train.jsonl")[:8]
    e, h = (forced_step_credit(model, tok, ARITHMETIC, ps, batch_size=3) for ps in (easy, hard))
    assert e > 0.8 > 0.2 > h > 0.0
    assert forced_step_credit(model, tok, ARITHMETIC, hard, batch_size=8) == pytest.approx(h, abs=1e-9)
    # by hand for one problem: each value is five one-character tokens after "x0 =" / " ="
    q = hard[0].question
    sol = ARITHMETIC.worked_solution(q)
    ids = tok(sol, add_special_tokens=False).input_ids
    lp, _ = token_logprobs(model, encode_prompts(tok, [ARITHMETIC.student_prompt(q)]), [ids], tok.pad_token_id)
    lp = lp[0].tolist()
    by_hand = [math.exp(sum(lp[a:b])) for a, b in ARITHMETIC.step_spans(q)[1]]
    got = forced_step_credit(model, tok, ARITHMETIC, hard[:1])
    assert got == pytest.approx(sum(by_hand) / 5, rel=1e-6)
    with pytest.raises(ValueError, match="worked solutions"):
        forced_step_credit(model, tok, replace(ARITHMETIC, step_spans=None), hard)
