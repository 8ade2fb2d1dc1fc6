"""research/rl_probe.py at tiny sizes: both probes run on the shipped model and report what they claim."""

import statistics
from pathlib import Path

import pytest
from conftest import load_probe

ROOT = Path(__file__).resolve().parent.parent


def _probe():
    return load_probe("rl_probe")


def test_bins_average_consecutive_steps():
    assert _probe().bins([0.0, 1.0, 0.5, 0.5, 1.0], 2) == [0.5, 0.5, 1.0]


def test_curve_probe_reports_one_bin_per_width(tmp_path):
    out = tmp_path / "curve.json"
    r = _probe().main(["--lrs", "1e-5,2e-4", "--steps", "2", "--bin", "1", "--batch", "2", "--group", "2",
                       "--threads", "1", "--out", str(out)])  # fmt: skip
    assert [run["lr"] for run in r["runs"]] == [1e-5, 2e-4]
    for run in r["runs"]:
        assert len(run["accuracy_bins"]) == 2 and len(run["kl_bins"]) == 2
        assert all(0.0 <= a <= 1.0 for a in run["accuracy_bins"])
        assert run["kl_bins"][0] == 0.0  # the first step samples from the start policy itself
    assert out.exists()


def test_inner_probe_gives_R_per_source_and_copy():
    r = _probe().main(["--mode", "inner", "--lrs", "2e-4", "--steps", "1", "--copies", "2", "--batch", "2",
                       "--group", "2", "--qr-size", "4", "--threads", "1"])  # fmt: skip
    run = r["runs"][0]
    assert set(run["R"]) == {"stones", "easy", "hard"}
    assert all(len(v) == 2 and all(-1.0 <= x <= 1.0 for x in v) for v in run["R"].values())


def test_inner_probe_adds_dataset_shaped_sources_and_question_files(tmp_path):
    qs = tmp_path / "q.jsonl"
    qs.write_text('{"family": "add", "level": 0, "question": "00001 +00002 +00003 +00004 +00005 +00006", '
                  '"answer": "00021", "meta": {}}\n')  # fmt: skip
    r = _probe().main(["--mode", "inner", "--lrs", "2e-4", "--steps", "1", "--copies", "1", "--batch", "2",
                       "--group", "2", "--qr-size", "4", "--threads", "1", "--dataset-size", "3",
                       "--sets", f"mine={qs}"])  # fmt: skip
    assert set(r["runs"][0]["R"]) == {"stones", "easy", "hard", "stones_fixed", "stones_selfanswered", "mine"}


def test_self_answered_keeps_questions_and_replaces_answers_with_the_models():
    import random

    from soar.engine.model import DEFAULT_MODEL, load_policy
    from soar.world.arithmetic import make_problem

    probe = _probe()
    model, tok = load_policy(DEFAULT_MODEL)
    rng = random.Random(0)
    fixed = [make_problem("add", 0, rng) for _ in range(4)]
    answered = probe.self_answered(model, tok, fixed, seed=1)
    assert [p.question for p in answered] == [p.question for p in fixed]
    assert all(p.answer and p.answer != "" for p in answered)
    assert answered == probe.self_answered(model, tok, fixed, seed=1)  # seeded


def test_separation_pairs_copies_and_counts_sds():
    r = {"good": [0.03, 0.02, 0.04], "easy": [0.0, 0.01, 0.01], "same": [0.03, 0.02, 0.04]}
    sep = _probe().separation(r, "good")
    assert set(sep) == {"easy", "same"}
    # paired differences .03, .01, .03: mean .0233, SD .0115, 2.02 SDs, good higher in all three copies
    assert sep["easy"] == {"diff": 0.0233, "sd": 0.0115, "higher": 3, "sds": 2.02}
    assert sep["same"]["sds"] is None and sep["same"]["higher"] == 0  # no spread: no SD to count in


def test_a_probe_split_with_only_merges_into_the_unsplit_run(tmp_path):
    common = ["--mode", "inner", "--lrs", "2e-4", "--steps", "1", "--copies", "2", "--batch", "2", "--group", "2",
              "--qr-size", "4", "--threads", "1"]  # fmt: skip
    whole = _probe().main(common)["runs"][0]["R"]
    a, b = tmp_path / "a.json", tmp_path / "b.json"
    _probe().main([*common, "--only", "easy", "--out", str(a)])
    _probe().main([*common, "--only", "stones,hard", "--out", str(b)])
    merged = _probe().main(["--merge", str(a), str(b), "--good", "stones"])["runs"][0]
    assert merged["R"] == whole
    assert set(merged["separation"]["stones"]) == {"easy", "hard"}
    with pytest.raises(SystemExit, match="the sources are stones, easy, hard"):
        _probe().main([*common, "--only", "nope"])


def test_workers_split_the_sources_over_processes_and_give_the_one_process_result(tmp_path):
    common = ["--mode", "inner", "--lrs", "2e-4", "--steps", "1", "--copies", "2", "--batch", "2", "--group", "2",
              "--qr-size", "4", "--threads", "1"]  # fmt: skip
    whole = _probe().main(common)["runs"][0]["R"]
    out = tmp_path / "split.json"
    split = _probe().main([*common, "--workers", "2", "--good", "stones", "--out", str(out)])
    assert split["runs"][0]["R"] == whole  # stones + hard in one process, easy in the other
    assert set(split["runs"][0]["separation"]["stones"]) == {"easy", "hard"}
    assert out.exists()
    with pytest.raises(SystemExit, match="curve probe runs in one process"):
        _probe().main(["--workers", "2"])


def test_without_drops_options_and_their_values():
    drop = _probe()._without
    assert drop(["--a", "1", "--only", "x", "--b", "--out=o.json"], ("--only", "--out")) == ["--a", "1", "--b"]


def test_noise_splits_the_spread_of_R_into_scoring_and_copies():
    # copy 0 scored .01 and .03 (mean .02, variance .0002), copy 1 .05 and .05 (mean .05, variance 0)
    n = _probe().noise({"good": [[0.01, 0.03], [0.05, 0.05]]})
    assert n["good"]["eval_sd"] == 0.01  # sqrt of the pooled variance (.0002 + 0) / 2
    assert n["good"]["copy_sd"] == 0.0212  # SD of the means .02 and .05


def test_eval_repeats_average_the_scorings_and_keep_the_first_scorings_seed():
    common = ["--mode", "inner", "--lrs", "2e-4", "--steps", "1", "--copies", "2", "--batch", "2", "--group", "2",
              "--qr-size", "4", "--threads", "1", "--only", "easy"]  # fmt: skip
    once = _probe().main(common)["runs"][0]
    thrice = _probe().main([*common, "--eval-repeats", "3"])["runs"][0]
    assert "R_evals" not in once and set(thrice["noise"]["easy"]) == {"eval_sd", "copy_sd"}
    evals = thrice["R_evals"]["easy"]
    assert [len(e) for e in evals] == [3, 3]
    assert [e[0] for e in evals] == once["R"]["easy"]  # repeat 0 is the single scoring
    assert thrice["R"]["easy"] == [round(statistics.mean(e), 4) for e in evals]


def test_own_answers_at_temperature_0_are_the_greedy_answers_whatever_the_seed():
    import random

    from soar.engine.evaluate import own_answers
    from soar.engine.model import DEFAULT_MODEL, load_policy
    from soar.engine.sampling import sample
    from soar.world import ARITHMETIC
    from soar.world.arithmetic import make_problem

    model, tok = load_policy(DEFAULT_MODEL)
    rng = random.Random(3)
    probs = [make_problem("mix", 1, rng, min_run=2, max_run=2) for _ in range(6)]
    a, b = (own_answers(model, tok, ARITHMETIC, probs, seed, 64, temperature=0.0) for seed in (1, 2))
    greedy = sample(model, tok, [ARITHMETIC.student_prompt(p.question) for p in probs], 1, temperature=0.0,
                    max_new_tokens=64)  # fmt: skip
    assert [p.answer for p in a] == [p.answer for p in b]
    assert all(p.answer in o[0].text for p, o in zip(a, greedy, strict=True))


def test_several_metrics_score_the_same_students():
    """`--qr-metric a,b`: R of the first metric under the source's name, of the others as `source@metric`; the
    first metric's R equals a run with that metric alone (scoring does not touch training), and separation
    compares a good source only with sources scored by the same metric."""
    common = ["--mode", "inner", "--lrs", "2e-4", "--steps", "1", "--copies", "2", "--batch", "2", "--group", "2",
              "--qr-size", "4", "--threads", "1", "--good", "stones"]  # fmt: skip
    both = _probe().main([*common, "--qr-metric", "partial_sampled,forced"])["runs"][0]
    alone = _probe().main([*common, "--qr-metric", "forced"])["runs"][0]
    assert set(both["R"]) == {"stones", "easy", "hard", "stones@forced", "easy@forced", "hard@forced"}
    assert [both["R"][f"{k}@forced"] for k in ("stones", "easy", "hard")] == [alone["R"][k] for k in alone["R"]]
    assert set(both["separation"]) == {"stones", "stones@forced"}
    assert set(both["separation"]["stones@forced"]) == {"easy@forced", "hard@forced"}
    with pytest.raises(SystemExit, match="choose from"):
        _probe().main([*common, "--qr-metric", "forced,nope"])


def test_classes_pool_their_members_per_copy_under_each_metric():
    probe = _probe()
    r = {"a": [1.0, 2.0], "b": [3.0, 4.0], "c": [0.0, 5.0], "a@forced": [0.0, 0.0], "b@forced": [2.0, 2.0],
         "c@forced": [1.0, 1.0]}  # fmt: skip
    pooled = probe.with_classes(r, "g=a+b")
    assert pooled["g"] == [2.0, 3.0] and pooled["g@forced"] == [1.0, 1.0]
    assert {k: pooled[k] for k in r} == r  # the members stay sources of their own
    # the class's separation is that of its per-copy means: against c the paired differences are 2 and -2
    assert probe.separation(pooled, "g")["c"]["higher"] == 1
    with pytest.raises(SystemExit, match="no source d"):
        probe.with_classes(r, "g=a+d")
    with pytest.raises(SystemExit, match="name=a"):
        probe.with_classes(r, "g=")


def test_inner_probe_reports_a_class_as_a_source():
    r = _probe().main(["--mode", "inner", "--lrs", "2e-4", "--steps", "1", "--copies", "2", "--batch", "2",
                       "--group", "2", "--qr-size", "4", "--threads", "1", "--classes", "both=stones+easy",
                       "--good", "both"])  # fmt: skip
    run = r["runs"][0]
    assert run["R"]["both"] == [
        statistics.mean(pair) for pair in zip(run["R"]["stones"], run["R"]["easy"], strict=True)
    ]
    assert set(run["separation"]["both"]) == {"stones", "easy", "hard"}
