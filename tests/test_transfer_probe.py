"""research/transfer_probe.py at tiny sizes: the stone phase's curve, measured where it claims."""

import json

import pytest
from conftest import load_probe


def _probe():
    return load_probe("transfer_probe")


ARGS = ["--steps", "2", "--every", "1", "--care-n", "2", "--care-k", "2", "--hard-n", "2", "--hard-k", "2",
        "--set", "rloo.batch_size=2", "--set", "rloo.group_size=2", "--set", "mode=curriculum"]  # fmt: skip


def test_curve_has_a_point_at_start_and_every_few_steps(tmp_path):
    out = tmp_path / "tp.json"
    r = _probe().main(["--arm", "self_answered", *ARGS, "--out", str(out)])
    assert [c["step"] for c in r["curve"]] == [0, 1, 2]
    assert "trained_on_match" not in r["curve"][0]  # nothing trained yet
    for c in r["curve"]:
        assert set(c["care"]) == set(c["designed_slip_share"]) == {"L2", "L3", "L4"}
        assert 0.0 <= c["stone_pass1"] <= 1.0 and c["hard"]["mean"] >= 0.0
    assert 0.0 <= r["curve"][1]["trained_on_match"] <= 1.0
    assert json.loads(out.read_text())["arm"] == "self_answered"


def test_the_stone_phase_stops_where_the_premise_switches_and_keeps_its_schedule():
    r = _probe().main(["--arm", "curriculum", *ARGS, "--steps", "3", "--every", "2"])
    assert [c["step"] for c in r["curve"]] == [0, 2, 3]  # every 2 steps, and the last
    assert r["steps"] == 3


def test_table_prints_one_row_per_point(tmp_path, capsys):
    out = tmp_path / "tp.json"
    _probe().main(["--arm", "curriculum", *ARGS, "--seed", "7", "--out", str(out)])
    capsys.readouterr()
    assert _probe().main(["--table", str(out)]) is None
    rows = [line for line in capsys.readouterr().out.splitlines() if line.startswith("| curriculum")]
    assert [row.split(" | ")[1:3] for row in rows] == [["7", "0"], ["7", "1"], ["7", "2"]]  # seed, step


def test_a_bad_config_is_a_usage_error_not_a_traceback(tmp_path, capsys):
    with pytest.raises(SystemExit) as e:
        _probe().main(["--config", str(tmp_path / "missing.yaml")])
    assert e.value.code == 2 and "missing.yaml" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        _probe().main(["--set", "stone_max_run=7"])
    with pytest.raises(SystemExit):
        _probe().main(["--set", "model=no/such/model"])


def test_out_holds_the_curve_so_far_after_every_point(tmp_path, monkeypatch):
    probe = _probe()
    out = tmp_path / "tp.json"
    seen = []
    measure = probe.measure

    def spy(*a, **k):  # before each new point, --out holds every earlier one
        seen.append(len(json.loads(out.read_text())["curve"]) if out.exists() else 0)
        return measure(*a, **k)

    monkeypatch.setattr(probe, "measure", spy)
    probe.main(["--arm", "curriculum", *ARGS, "--out", str(out)])
    assert seen == [0, 1, 2]
    assert len(json.loads(out.read_text())["curve"]) == 3


def test_steps_below_one_is_a_usage_error():
    with pytest.raises(SystemExit):
        _probe().main(["--steps", "0"])


def test_table_of_a_missing_file_is_a_usage_error(tmp_path):
    with pytest.raises(SystemExit):
        _probe().main(["--table", str(tmp_path / "none.json")])
