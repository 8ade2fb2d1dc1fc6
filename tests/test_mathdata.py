"""Loading real math problem sets (MATH, HARP, OlympiadBench, CHAMP, field maps) and make-hard on them."""

import json
from pathlib import Path

import pytest

from soar.cli import main
from soar.core.io import DataError
from soar.core.problems import load_problems
from soar.jobs.hardset import HardSetConfig, make_hard
from soar.world.mathdata import load_math_problems

FIX = Path(__file__).parent / "fixtures" / "math"


def test_math_answers_come_from_the_last_box_and_levels_from_the_text():
    ps = load_math_problems(str(FIX / "math.jsonl"), "math")
    assert [p.answer for p in ps] == ["\\frac{3}{4}", "4", "6", "5\\sqrt{2}"]  # the unboxed one is left out
    assert [p.level for p in ps] == [2, 1, 3, 5]
    assert ps[0].family == "Prealgebra" and ps[0].meta["source"].endswith("math.jsonl:1")


def test_harp_fields():
    ps = load_math_problems(str(FIX / "harp.jsonl"), "harp")
    assert [(p.family, p.level, p.answer) for p in ps] == [
        ("algebra", 2, "1"),
        ("number_theory", 5, "2"),
        ("geometry", 3, "2"),
    ]


def test_olympiadbench_keeps_english_text_only_and_joins_multiple_answers():
    ps = load_math_problems(str(FIX / "olympiadbench.jsonl"), "olympiadbench")
    assert [p.answer for p in ps] == ["-2, 2", "\\frac{3}{4}"]
    assert ps[1].family == "Number Theory"


def test_parquet_and_json_list_read_like_jsonl(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    recs = [json.loads(line) for line in (FIX / "harp.jsonl").read_text().splitlines()]
    pq.write_table(pa.Table.from_pylist(recs), tmp_path / "harp.parquet")
    (tmp_path / "harp.json").write_text(json.dumps(recs))
    want = [p.answer for p in load_math_problems(str(FIX / "harp.jsonl"), "harp")]
    assert [p.answer for p in load_math_problems(str(tmp_path / "harp.parquet"), "harp")] == want
    assert [p.answer for p in load_math_problems(str(tmp_path / "harp.json"), "harp")] == want
    recs[1].pop("answer")
    pq.write_table(pa.Table.from_pylist(recs[1:2]), tmp_path / "bad.parquet")
    with pytest.raises(DataError, match=r"bad\.parquet: row 1: missing field\(s\) answer"):
        load_math_problems(str(tmp_path / "bad.parquet"), "harp")


def test_field_map_for_other_datasets():
    ps = load_math_problems(
        str(FIX / "custom.jsonl"), "fields", fields={"question": "prompt", "answer": "target", "level": "difficulty"}
    )
    assert [(p.question, p.answer, p.level) for p in ps] == [
        ("What is 6 times 7?", "42", 1),
        ("What is 10 minus 3?", "7", 1),
    ]
    with pytest.raises(DataError, match="needs fields.question"):
        load_math_problems(str(FIX / "custom.jsonl"), "fields", fields={"answer": "target"})


def test_missing_fields_name_the_file_and_line():
    with pytest.raises(DataError, match=r"math_missing_solution\.jsonl:3: missing field\(s\) solution"):
        load_math_problems(str(FIX / "math_missing_solution.jsonl"), "math")
    with pytest.raises(DataError, match=r"harp\.jsonl:1: missing field\(s\) question, final_answer"):
        load_math_problems(str(FIX / "harp.jsonl"), "olympiadbench")
    with pytest.raises(DataError, match="file not found"):
        load_math_problems(str(FIX / "nope.jsonl"), "math")
    with pytest.raises(DataError, match="valid formats: problems, math"):
        load_math_problems(str(FIX / "math.jsonl"), "mathh")


def test_hub_names_need_datasets(monkeypatch):
    import builtins

    real = builtins.__import__

    def no_datasets(name, *a, **k):
        if name == "datasets":
            raise ImportError(name)
        return real(name, *a, **k)

    monkeypatch.setattr(builtins, "__import__", no_datasets)
    with pytest.raises(DataError, match=r"soar\[hub\]"):
        load_math_problems("hf:someone/math", "math")


def test_champ_numeric_subset_ships_offline():
    ps = load_math_problems("champ", "champ")
    assert len(ps) == 79
    assert all(p.answer.lstrip("-").replace(".", "").isdigit() for p in ps)
    assert {p.family for p in ps} == {"Combinatorics", "Inequality", "Number-Theory", "Polynomial", "Sequence"}


def test_make_hard_on_a_math_pool(tiny_dir, tmp_path):
    out = tmp_path / "hard"
    cfg = HardSetConfig(
        model=str(tiny_dir),
        world="math",
        out=str(out),
        pool_file=str(FIX / "math.jsonl"),
        pool_format="math",
        k=2,
        chunk=2,
        max_new_tokens=4,
        rescreen=False,
        threads=1,
    )
    m = make_hard(cfg)
    assert (m["pool"], m["train"], m["test"]) == (4, 2, 2)  # a random tiny model solves nothing: 50/50
    assert m["source"] == f"math:{FIX / 'math.jsonl'}"
    train = load_problems(out / "train.jsonl")
    assert all(p.meta["provenance"]["k"] == 2 for p in train)


def test_make_hard_cli_rejects_an_unknown_world_and_format(capsys):
    assert main(["make-hard", "--set", "world=chess"]) == 2
    assert "valid worlds: arithmetic, math" in capsys.readouterr().err
    assert main(["make-hard", "--set", "pool_format=csv"]) == 2
    assert "pool_format must be one of" in capsys.readouterr().err
