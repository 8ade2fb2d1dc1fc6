"""Bad input: malformed JSONL names file and line; unknown config keys name the valid ones."""

import re
from dataclasses import dataclass, field

import pytest

from soar.core.config import ConfigError, load_config
from soar.core.io import DataError, read_jsonl
from soar.core.problems import load_problems


def test_malformed_jsonl_names_file_and_line(tmp_path):
    p = tmp_path / "bad.jsonl"
    p.write_text('{"question": "1+2", "answer": "3"}\n\n{"question": oops}\n')
    with pytest.raises(DataError, match=r"bad\.jsonl:3:14: invalid JSON"):  # line 3, column 14: the o of oops
        read_jsonl(p)


def test_missing_field_names_line(tmp_path):
    p = tmp_path / "p.jsonl"
    p.write_text('{"question": "1+2", "answer": "3"}\n{"question": "2+2"}\n')
    with pytest.raises(DataError, match=r"p\.jsonl:2: missing field\(s\) answer"):
        load_problems(p)


def test_non_object_line(tmp_path):
    p = tmp_path / "p.jsonl"
    p.write_text("[1, 2]\n")
    with pytest.raises(DataError, match="p.jsonl:1: expected a JSON object"):
        read_jsonl(p)


GOOD = '{"family": "add", "level": 0, "question": "50494 +95475 +98414 +08873 +15506 +85723", "answer": "54485"}\n'


@pytest.mark.parametrize(
    "line, message",
    [
        ('{"question": null, "answer": "3"}', "p.jsonl:2: field 'question' must be non-empty text, got None"),
        ('{"question": "1 +2", "answer": null}', "p.jsonl:2: field 'answer' must be non-empty text"),
        ('{"question": "1 +2", "answer": true}', "p.jsonl:2: field 'answer' must be non-empty text, got True"),
        ('{"question": "  ", "answer": "3"}', "p.jsonl:2: field 'question' must be non-empty text"),
        ('{"question": "1 +2", "answer": NaN}', "p.jsonl:2: NaN is not a number JSON allows"),
        ('{"question": "1 +2", "answer": "3", "level": 2.5}', "p.jsonl:2: field 'level' must be an integer"),
        ('{"question": "1 +2", "answer": "3", "level": Infinity}', "p.jsonl:2: Infinity is not a number"),
        ('{"question": "what is love", "answer": "3"}', "p.jsonl:2: the question 'what is love' is outside"),
    ],
)
def test_problem_files_refuse_null_nan_and_out_of_grammar_questions(tmp_path, line, message):
    from soar.world import ARITHMETIC

    p = tmp_path / "p.jsonl"
    p.write_text(GOOD + line + "\n")
    with pytest.raises(DataError, match=re.escape(message)):
        load_problems(p, ARITHMETIC.in_grammar)
    assert len(load_problems(_write(tmp_path, GOOD), ARITHMETIC.in_grammar)) == 1


def _write(tmp_path, text):
    p = tmp_path / "ok.jsonl"
    p.write_text(text)
    return p


def test_binary_non_utf8_and_folder_inputs_are_named(tmp_path):
    binary = tmp_path / "model.jsonl"
    binary.write_bytes(GOOD.encode() + b"\x00\x01\x02PK\x03\x04")
    with pytest.raises(DataError, match="model.jsonl:2: a NUL byte"):
        read_jsonl(binary)
    latin = tmp_path / "latin.jsonl"
    latin.write_bytes(GOOD.encode() + '{"question": "caf\u00e9"}\n'.encode("latin-1"))
    with pytest.raises(DataError, match=r"latin.jsonl:2: not UTF-8 text \(byte 0xe9\)"):
        read_jsonl(latin)
    (tmp_path / "dir.jsonl").mkdir()
    with pytest.raises(DataError, match="dir.jsonl: is a folder; expected a JSONL file"):
        read_jsonl(tmp_path / "dir.jsonl")


def test_atomic_writes_keep_the_mode_a_plain_write_gives(tmp_path):
    import os

    from soar.core.io import atomic_write_text

    old = os.umask(0o022)
    try:
        atomic_write_text(tmp_path / "a.txt", "x")
        assert (tmp_path / "a.txt").stat().st_mode & 0o777 == 0o644
        (tmp_path / "a.txt").chmod(0o640)
        atomic_write_text(tmp_path / "a.txt", "y")  # a replaced file keeps its own mode
        assert (tmp_path / "a.txt").stat().st_mode & 0o777 == 0o640
    finally:
        os.umask(old)


def test_a_cuda_device_without_a_gpu_is_a_clear_error(monkeypatch):
    import torch

    from soar.engine.model import DEFAULT_MODEL, LoadConfig, load_policy

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(DataError, match="load.device=cuda: no CUDA GPU is visible"):
        load_policy(DEFAULT_MODEL, opts=LoadConfig(device="cuda"))


def test_missing_file():
    with pytest.raises(DataError, match="file not found"):
        read_jsonl("/nonexistent/x.jsonl")


@dataclass
class Inner:
    lr: float = 1e-3
    ks: tuple[int, ...] = (1, 2)


@dataclass
class Outer:
    name: str = "x"
    flag: bool = False
    inner: Inner = field(default_factory=Inner)


def test_unknown_key_names_valid_keys(tmp_path):
    f = tmp_path / "c.yaml"
    f.write_text("inner:\n  lrr: 0.1\n")
    with pytest.raises(ConfigError, match=r"unknown key\(s\) lrr for Inner; valid keys: lr, ks"):
        load_config(Outer, f)


def test_overrides_and_types(tmp_path):
    f = tmp_path / "c.yaml"
    f.write_text("name: y\n")
    cfg = load_config(Outer, f, ["inner.lr=0.5", "inner.ks=4,8", "flag=true"])
    assert cfg.name == "y" and cfg.inner.lr == 0.5 and cfg.inner.ks == (4, 8) and cfg.flag is True


def test_bad_values():
    with pytest.raises(ConfigError, match="expected a number"):
        load_config(Outer, None, ["inner.lr=fast"])
    with pytest.raises(ConfigError, match="key=value"):
        load_config(Outer, None, ["inner.lr"])
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(Outer, "/nope.yaml")


def test_scalar_for_a_list_field():
    assert load_config(Outer, None, ["inner.ks=5"]).inner.ks == (5,)


SHIPPED_CONFIGS = [
    ("configs/demo.yaml", "run"),
    ("configs/main.yaml", "run"),
    ("configs/paper-math.yaml", "run"),
    ("configs/paper-math-lora.yaml", "run"),
    ("configs/paper-harp.yaml", "run"),
    ("configs/paper-olympiadbench-hard.yaml", "make-hard"),
    ("configs/smollm2-cpu.yaml", "run"),
    ("configs/premise.yaml", "premise"),
    ("configs/teacher-moves.yaml", "run"),
]


def test_every_shipped_config_is_checked():
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    assert sorted(str(p.relative_to(root)) for p in (root / "configs").glob("*.yaml")) == sorted(
        p for p, _ in SHIPPED_CONFIGS
    )


@pytest.mark.parametrize("path,kind", SHIPPED_CONFIGS)
def test_shipped_configs_load(path, kind):
    """Every shipped config parses into its command's dataclass (a renamed field would fail here)."""
    from pathlib import Path

    from soar.jobs.hardset import HardSetConfig
    from soar.jobs.main import RunConfig
    from soar.jobs.premise import PremiseConfig

    root = Path(__file__).resolve().parents[1]
    cls = {"run": RunConfig, "premise": PremiseConfig, "make-hard": HardSetConfig}[kind]
    cfg = load_config(cls, root / path)
    assert cfg.out


@pytest.mark.parametrize(
    "override,message",
    [
        ("soar.r=3.7", "soar.r: expected an integer, got 3.7"),
        ("soar.r=true", "soar.r: expected an integer, got True"),
        ("out=null", "out: expected a string, got None"),
        ("soar.tau=nan", "soar.tau: expected a finite number"),
        ("soar.promote=1", "soar.promote: expected true or false"),
        ("soar.teacher.n=0", "n must be at least 1"),
        ("threads=0", "threads must be at least 1"),
        ("seeds=[]", "seeds must name at least one"),
        ("eval.ks=[]", "ks must name at least one k"),
        ("soar.teacher.temperature=-1", "temperature must be at least 0"),
        ("student.synthetic_steps=500", "synthetic_steps \\(500\\) is more than student.rloo.steps"),
        ("hardset.k=0", "k must be at least 1"),
        ("soar.report_to=[mlflow]", "unknown backend"),
    ],
)
def test_bad_values_are_refused_before_any_work(override, message):
    from soar.jobs.main import RunConfig

    with pytest.raises(ConfigError, match=message):
        load_config(RunConfig, None, [override])


def test_strict_scalars_still_read_what_yaml_and_the_command_line_give():
    from soar.jobs.main import RunConfig

    cfg = load_config(RunConfig, None, ["soar.r=3", "soar.tau=1e-2", "out=2024", "soar.promote=false", "seeds=0,1"])
    assert (cfg.soar.r, cfg.soar.tau, cfg.out, cfg.soar.promote, cfg.seeds) == (3, 0.01, "2024", False, (0, 1))


def test_a_config_file_can_include_another_and_override_it(tmp_path):
    (tmp_path / "base.yaml").write_text("name: base\ninner:\n  lr: 0.5\n  ks: [1, 2]\n")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "top.yaml").write_text("include: ../base.yaml\ninner:\n  lr: 0.25\n")
    cfg = load_config(Outer, tmp_path / "sub" / "top.yaml", ["name=cli"])
    assert (cfg.name, cfg.inner.lr, cfg.inner.ks) == ("cli", 0.25, (1, 2))  # file over include, --set over both
    (tmp_path / "loop.yaml").write_text("include: loop2.yaml\n")
    (tmp_path / "loop2.yaml").write_text("include: loop.yaml\n")
    with pytest.raises(ConfigError, match="includes itself"):
        load_config(Outer, tmp_path / "loop.yaml")
    (tmp_path / "gone.yaml").write_text("include: nope.yaml\n")
    with pytest.raises(ConfigError, match="nope.yaml does not exist \\(included by .*gone.yaml\\)"):
        load_config(Outer, tmp_path / "gone.yaml")


def test_resume_check_takes_a_key_the_saved_config_lacks_as_its_default(tmp_path):
    """A run started before a config key existed resumes with the key at its default, not refused."""
    import yaml

    from soar.core.config import ConfigMismatch, check_same_config, dump_config

    saved = tmp_path / "config.yaml"
    dump_config(Outer(name="run"), saved)
    old = yaml.safe_load(saved.read_text())
    del old["flag"], old["inner"]["ks"]  # as an older soar would have written it
    saved.write_text(yaml.safe_dump(old))
    check_same_config(saved, Outer(name="run"))
    with pytest.raises(ConfigMismatch, match="flag"):
        check_same_config(saved, Outer(name="run", flag=True))  # not the default: a real change
    with pytest.raises(ConfigMismatch, match="inner"):
        check_same_config(saved, Outer(name="run", inner=Inner(ks=(3,))))
