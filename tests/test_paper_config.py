"""The paper's config (configs/paper-math.yaml) end to end, up to the model download: a tiny local stand-in
chat model replaces Llama-3.2-3B-Instruct, a MATH-format fixture replaces the MATH test split, and every size
is overridden tiny; everything else (world, chat template, make-hard, one SOAR outer step, the students,
evaluation, the report) runs the paper config's path."""

import json
from pathlib import Path

import math_verify  # noqa: F401,E402  (a dev dependency: a missing install fails here, never skips)
import pytest
import torch

from soar.cli import main
from soar.engine.model import TinyModelConfig, build_char_tokenizer, build_tiny_model, save_policy
from soar.world import PromptSettings, make_world
from soar.world.verifiers import math_parses

ROOT = Path(__file__).resolve().parent.parent
FIX = Path(__file__).parent / "fixtures" / "math"
DOC = "<question>What is 2+2?</question><answer>\\boxed{4}</answer>"


@pytest.fixture(scope="module")
def standin(tmp_path_factory):
    """A tiny chat model taught (by overfitting) to answer the math teacher prompt with one valid pair (the
    paper configs use the paper's plain prompts, not the chat template)."""
    tok = build_char_tokenizer()
    tok.chat_template = "{% for m in messages %}<{{ m.role }}>{{ m.content }}</{{ m.role }}>{% endfor %}<assistant>"
    torch.manual_seed(0)
    model = build_tiny_model(
        tok,
        TinyModelConfig(hidden_size=32, num_layers=2, num_heads=2, intermediate_size=64, max_positions=1024),
        seed=0,
    )
    ids = torch.tensor(
        [
            tok(make_world("math", tok, PromptSettings(chat_template=False)).teacher_prompt + DOC).input_ids
            + [tok.eos_token_id]
        ]
    )
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(120):
        loss = model(input_ids=ids, labels=ids).loss
        opt.zero_grad()
        loss.backward()
        opt.step()
    path = tmp_path_factory.mktemp("standin")
    save_policy(model, tok, path)
    return path


@pytest.fixture(scope="module")
def transfer_set(standin, tmp_path_factory):
    """OlympiadBench's fail@k sets from configs/paper-olympiadbench-hard.yaml (a fixture pool, k = 2)."""
    out = tmp_path_factory.mktemp("ob") / "hard"
    argv = ["make-hard", "--config", str(ROOT / "configs" / "paper-olympiadbench-hard.yaml")]
    for o in [f"model={standin}", f"pool_file={FIX / 'olympiadbench.jsonl'}", f"out={out}", "k=2", "chunk=2"]:
        argv += ["--set", o]
    argv += ["--set", "max_new_tokens=8", "--set", "threads=1"]
    assert main(argv) == 0
    return out / "test.jsonl"


TINY_SIZES = [
    "hardset.k=2",
    "hardset.chunk=2",
    "seeds=[0]",
    "questions=2",
    "vendi_size=2",
    "vendi_samples=2",
    "threads=1",
    "soar.outer_steps=1",
    "soar.r=1",
    "soar.qr_size=2",
    "soar.intrinsic_samples=2",
    "soar.teacher.n=2",
    "soar.teacher.g=2",
    "soar.teacher.groups=1",
    "soar.teacher.max_new_tokens=64",
    "soar.inner.steps=1",
    "soar.inner.batch_size=2",
    "soar.inner.group_size=2",
    "student.rloo.steps=2",
    "student.synthetic_steps=1",
    "student.rloo.batch_size=2",
    "student.rloo.group_size=2",
    "eval.n=2",
    "eval.ks=[1,2]",
    "max_new_tokens=8",
]


@pytest.mark.parametrize("config, pool", [("paper-math.yaml", "math.jsonl"), ("paper-harp.yaml", "harp.jsonl")])
def test_paper_config_runs_end_to_end_with_a_tiny_standin(standin, transfer_set, tmp_path, config, pool):
    """MATH and HARP (which includes the MATH config), each with the transfer evaluation on OlympiadBench."""
    overrides = [
        f"model={standin}",
        f"hard_dir={tmp_path / 'hard'}",
        f"hardset.pool_file={FIX / pool}",
        f"out={tmp_path / 'run'}",
        f"transfer={{olympiadbench: {transfer_set}}}",
        *TINY_SIZES,
    ]
    argv = ["run", "--config", str(ROOT / "configs" / config)]
    for o in overrides:
        argv += ["--set", o]
    assert main(argv) == 0
    out = tmp_path / "run"
    manifest = json.loads((tmp_path / "hard" / "manifest.json").read_text())
    n = {"math.jsonl": 4, "harp.jsonl": 3}[pool]  # the fixture's records with a reference answer
    assert (manifest["pool"], manifest["train"] + manifest["test"]) == (n, n)
    metrics = [json.loads(x) for x in (out / "soar" / "metrics.jsonl").read_text().splitlines()]
    assert len(metrics) == 1  # one outer step
    questions = [json.loads(x) for x in (out / "soar" / "questions.jsonl").read_text().splitlines()]
    assert questions and all(math_parses(q["answer"]) for q in questions)  # valid pairs, parsed by math-verify
    report = (out / "report.md").read_text()
    assert "Hard-Only" in report and "Grounded-T" in report
    saved = (out / "config.yaml").read_text()
    assert "world: math" in saved and "gradient_checkpointing: true" in saved
    assert "## Transfer: olympiadbench" in report
    rows = [json.loads(x) for x in (out / "results.jsonl").read_text().splitlines()]
    n_transfer = len(transfer_set.read_text().splitlines())
    assert rows and n_transfer and all(r["transfer/olympiadbench/n_problems"] == n_transfer for r in rows)


def test_lora_config_runs_one_outer_step_with_the_standin(standin, tmp_path):
    argv = ["run", "--config", str(ROOT / "configs" / "paper-math-lora.yaml")]
    for o in [
        f"model={standin}",
        f"hard_dir={tmp_path / 'hard'}",
        f"hardset.pool_file={FIX / 'math.jsonl'}",
        f"out={tmp_path / 'run'}",
        "load.lora.r=2",
        "arms=[base,hard_only]",
        "transfer={}",
        *TINY_SIZES,
    ]:
        argv += ["--set", o]
    assert main(argv) == 0
    ckpt = tmp_path / "run" / "soar" / "checkpoint" / "teacher"
    assert (ckpt / "adapter_config.json").exists() and (ckpt / "soar_base.json").exists()
