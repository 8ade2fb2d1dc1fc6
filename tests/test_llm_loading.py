"""Loading Hugging Face causal LMs: dtype, device, gradient checkpointing, LoRA students over one shared
frozen base, adapter checkpoints, stop tokens of chat models."""

import random
from dataclasses import replace

import pytest
import torch

import soar.engine.model as model_module
from soar.engine.model import (
    LoadConfig,
    LoraSettings,
    clone_model,
    frozen,
    load_policy,
    load_trainable_state,
    save_policy,
    trainable_state,
)
from soar.engine.rloo import RLOOConfig, cycling_batches, policy_update, train_rloo
from soar.engine.sampling import sample, stop_ids
from soar.world import ARITHMETIC
from soar.world.arithmetic import make_problem


def checkpointing(model) -> bool:
    return any(getattr(m, "gradient_checkpointing", False) for m in model.modules())


LORA = LoadConfig(device="cpu", dtype="float32", lora=LoraSettings(r=4, alpha=8))


def test_dtype_device_and_gradient_checkpointing(tiny_dir):
    # bf16 compute with float32 master weights (mixed precision), or pure bf16 weights when asked.
    model, _ = load_policy(tiny_dir, opts=LoadConfig(device="cpu", dtype="bfloat16", gradient_checkpointing=True))
    assert next(model.parameters()).dtype == torch.float32 and model.soar_autocast == torch.bfloat16
    assert checkpointing(model)
    pure, _ = load_policy(tiny_dir, opts=LoadConfig(device="cpu", dtype="bfloat16", master_weights=False))
    assert next(pure.parameters()).dtype == torch.bfloat16 and pure.soar_autocast is None
    lora, _ = load_policy(tiny_dir, opts=replace(LORA, dtype="bfloat16"))  # frozen base in bf16, adapters fp32
    dtypes = {p.dtype for n, p in lora.named_parameters() if "lora_" not in n}
    assert dtypes == {torch.bfloat16}
    assert {p.dtype for p in lora.parameters() if p.requires_grad} == {torch.float32}
    model, _ = load_policy(tiny_dir, opts=LoadConfig())  # auto on a CPU machine: float32
    assert next(model.parameters()).dtype == torch.float32 and not checkpointing(model)
    with pytest.raises(ValueError, match="load.dtype"):
        LoadConfig(dtype="fp8")


def test_missing_model_files_are_clear_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_policy(tmp_path / "model.gguf")
    with pytest.raises(FileNotFoundError, match="not installed"):
        load_policy("pkg:no_such_package_here/model.gguf")
    with pytest.raises(FileNotFoundError, match="no config.json"):
        load_policy(tmp_path)


def test_a_missing_model_under_a_local_folder_is_not_looked_up_on_the_hub(tmp_path, monkeypatch):
    """`runs/m19` (one slash, like a hub name) where ./runs exists: an error at once, not network retries."""
    (tmp_path / "runs").mkdir()
    monkeypatch.chdir(tmp_path)

    def hub(*args, **kwargs):
        raise AssertionError("looked up on the hub")

    monkeypatch.setattr(model_module.AutoTokenizer, "from_pretrained", hub)
    with pytest.raises(FileNotFoundError, match="model path runs/m19 does not exist"):
        load_policy("runs/m19")
    with pytest.raises(AssertionError, match="hub"):  # a hub-style name with no such local folder still goes there
        load_policy("someorg/somemodel")


def test_lora_students_share_one_frozen_base_and_train_only_adapters(tiny_dir):
    base, tok = load_policy(tiny_dir, opts=LORA)
    trainable = {n for n, p in base.named_parameters() if p.requires_grad}
    assert trainable and all("lora_" in n for n in trainable)
    student = clone_model(base)
    b_params, s_params = dict(base.named_parameters()), dict(student.named_parameters())
    for n, p in s_params.items():  # frozen weights are the same tensors; adapters are copies
        assert (p.data_ptr() == b_params[n].data_ptr()) == (n not in trainable)
    frozen_before = {n: p.clone() for n, p in s_params.items() if n not in trainable}
    lora_before = trainable_state(student)
    rng = random.Random(0)
    problems = [make_problem("add", 0, rng) for _ in range(4)]
    cfg = RLOOConfig(steps=1, batch_size=2, group_size=2, lr=1e-2)
    train_rloo(student, tok, ARITHMETIC, cycling_batches(problems, 2), cfg, 0, 8)  # runs end to end
    opt = torch.optim.AdamW([p for p in student.parameters() if p.requires_grad], lr=1e-2)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 1.0)
    rows = [([1, 5, 6], [7, 8, 2], 1.0), ([1, 5, 6], [9, 2], -1.0)]  # (prompt ids, completion ids, advantage)
    policy_update(student, None, opt, sched, rows, 0.0, 1.0, 8, tok.pad_token_id)
    after = trainable_state(student)
    assert set(after) == trainable
    assert any(not torch.equal(after[n], lora_before[n]) for n in after)  # the adapters moved
    for n, p in student.named_parameters():
        if n in frozen_before:
            assert torch.equal(p, frozen_before[n])  # the shared base did not
    load_trainable_state(base, after)  # a promotion: the baseline takes the student's adapters
    x = torch.tensor([[1, 5, 6, 7]])
    assert torch.allclose(base(input_ids=x).logits, student(input_ids=x).logits)
    ref = frozen(student)
    assert not any(p.requires_grad for p in ref.parameters())


def test_lora_checkpoint_round_trip(tiny_dir, tmp_path):
    model, tok = load_policy(tiny_dir, opts=LORA)
    with torch.no_grad():
        for n, p in model.named_parameters():
            if "lora_B" in n:
                p.fill_(0.01)  # not the zero init, so the adapters matter
    save_policy(model, tok, tmp_path / "ckpt")
    assert (tmp_path / "ckpt" / "adapter_config.json").exists() and (tmp_path / "ckpt" / "soar_base.json").exists()
    again, _ = load_policy(tmp_path / "ckpt", opts=LORA)
    x = torch.tensor([[1, 5, 6, 7]])
    assert torch.allclose(model(input_ids=x).logits, again(input_ids=x).logits, atol=1e-6)
    assert any(p.requires_grad for p in again.parameters())  # trainable again after a resume


def test_generation_config_eos_ids_also_stop(tiny):
    model, tok = tiny
    plus = tok.convert_tokens_to_ids("+")
    model.generation_config.eos_token_id = [tok.eos_token_id, plus]
    assert stop_ids(model, tok) == [tok.eos_token_id, plus]
    out = sample(model, tok, ["User: 1 +2 Assistant: "], 16, temperature=1.0, max_new_tokens=40, seed=0)[0]
    for s in out:
        if s.finished:
            assert s.token_ids[-1] in (tok.eos_token_id, plus)
            assert plus not in s.token_ids[:-1] and tok.eos_token_id not in s.token_ids[:-1]


def _moved_share(opts: LoadConfig, model_dir, steps: int = 1) -> float:
    """Share of the weights that got a gradient and changed after `steps` AdamW steps at lr 1e-5."""
    model, tok = load_policy(model_dir, opts=opts)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    opt = torch.optim.AdamW(model.parameters(), lr=1e-5, weight_decay=0.0)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda _: 1.0)
    rng = random.Random(0)
    rows = []
    for i in range(8):
        p = make_problem("add", 0, rng)
        rows.append((tok(ARITHMETIC.student_prompt(p.question)).input_ids, tok(p.answer).input_ids, 1.0 - 0.25 * i))
    got_grad = moved = 0
    for _ in range(steps):
        policy_update(model, None, opt, sched, rows, 0.0, 0.0, 4, tok.pad_token_id)
    for n, p in model.named_parameters():
        if p.grad is None:
            continue
        has = p.grad != 0
        got_grad += int(has.sum())
        moved += int(((p.detach() != before[n]) & has).sum())
    return moved / got_grad


def test_mixed_precision_moves_the_weights_that_pure_bf16_rounds_away(tiny_dir):
    """The issue's check: with bf16 compute, one AdamW step at lr 1e-5 moves at least 99% of the weights that got
    a gradient (float32 master weights); pure bf16 weights lose most of that update to rounding."""
    mixed = _moved_share(LoadConfig(device="cpu", dtype="bfloat16"), tiny_dir)
    pure = _moved_share(LoadConfig(device="cpu", dtype="bfloat16", master_weights=False), tiny_dir)
    assert mixed >= 0.99
    assert pure < 0.5
