"""The sampling seam's two decoders: the lean Llama forward (`fused`) gives the tokens of the Hugging Face one."""

import inspect

import pytest
import torch
from transformers import LlamaConfig, LlamaForCausalLM

from soar.engine.decode import CACHE_KEY, HFDecoder, LlamaDecoder, decoder, supports
from soar.engine.model import DEFAULT_MODEL, LoadConfig, LoraSettings, load_policy
from soar.engine.sampling import _left_pad, sample
from soar.world import ARITHMETIC
from soar.world.arithmetic import make_problem


def _prompts(n: int, seed: int = 0) -> list[str]:
    import random

    rng = random.Random(seed)
    questions = [make_problem(fam, None, rng, natural=True).question for fam in ("mix", "add", "sub", "mul") * (n // 8)]
    questions += [f"What is {i}+{n}?" for i in range(n // 2)]  # shorter prompts: left padding
    return [ARITHMETIC.student_prompt(q) for q in questions]


@pytest.fixture(scope="module")
def shipped():
    return load_policy(DEFAULT_MODEL)


@pytest.mark.parametrize("k", [1, 2])  # 1: each row keeps its prompt's keys; 2: a prompt's keys shared by its rows
@pytest.mark.parametrize("temperature", [0.0, 1.0])
def test_fused_and_hf_write_the_same_completions_on_the_shipped_model(shipped, temperature, k):
    model, tok = shipped
    prompts = _prompts(16)
    assert len({len(tok(p).input_ids) for p in prompts}) > 1  # left padding is exercised
    hf = sample(model, tok, prompts, k, temperature=temperature, seed=7, backend="hf", max_new_tokens=64)
    fused = sample(model, tok, prompts, k, temperature=temperature, seed=7, backend="fused", max_new_tokens=64)
    assert [[s.token_ids for s in row] for row in fused] == [[s.token_ids for s in row] for row in hf]
    assert [[s.finished for s in row] for row in fused] == [[s.finished for s in row] for row in hf]
    lengths = {len(s.token_ids) for row in hf for s in row}
    assert len(lengths) > 1  # rows finish at different steps: the padding after EOS is exercised


def _gqa_llama() -> LlamaForCausalLM:
    torch.manual_seed(0)
    cfg = LlamaConfig(
        vocab_size=50, hidden_size=64, intermediate_size=96, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=2, max_position_embeddings=64, rope_theta=500.0,
    )  # fmt: skip
    return LlamaForCausalLM(cfg).eval()


@pytest.mark.parametrize(
    "prompts, group",
    [
        ([[1, 5, 6, 7, 8], [1, 9, 10], [1, 11, 12, 13], [1, 9, 10]], 0),  # rows 1 and 3 share a prompt
        ([[1, 9, 10], [1, 9, 10], [1, 5, 6, 7, 8], [1, 5, 6, 7, 8]], 2),  # k = 2 consecutive rows per prompt
    ],
)
def test_fused_logits_match_hf_step_by_step_with_grouped_query_attention(prompts, group):
    model = _gqa_llama()
    ids, mask = _left_pad(prompts, pad_id=0)
    pos = (mask.cumsum(-1) - 1).clamp(min=0)
    hf, fused = HFDecoder(model), LlamaDecoder(model, batch=4, capacity=ids.shape[1] + 4)
    with torch.no_grad():
        a, b = hf.prefill(ids, mask, pos), fused.prefill(ids, mask, pos)
        assert fused.group == group  # the shared-prompt product is the path under test
        torch.testing.assert_close(b, a, atol=1e-5, rtol=1e-5)
        nxt = pos[:, -1:] + 1
        keep = torch.tensor([True, False, True, True])  # row 1 has finished: its new token is padding
        for _ in range(3):
            tok = a.argmax(-1)
            tok[3] = (tok[3] + 1) % 50  # rows of one prompt now continue differently
            a, b = hf.step(tok, keep, nxt), fused.step(tok, keep, nxt)
            torch.testing.assert_close(b, a, atol=1e-5, rtol=1e-5)
            nxt = nxt + 1


def test_fused_follows_the_weights_of_a_model_in_training():
    model = _gqa_llama()
    ids, mask = _left_pad([[1, 5, 6]], pad_id=0)
    pos = (mask.cumsum(-1) - 1).clamp(min=0)
    with torch.no_grad():
        before = LlamaDecoder(model, 1, 8).prefill(ids, mask, pos)
        model.model.layers[0].mlp.down_proj.weight.mul_(3.0)  # an optimizer step changes weights in place
        after = LlamaDecoder(model, 1, 8).prefill(ids, mask, pos)
        torch.testing.assert_close(after, HFDecoder(model).prefill(ids, mask, pos), atol=1e-5, rtol=1e-5)
    assert not torch.allclose(before, after)


def test_auto_picks_fused_for_llama_and_lora_on_cpu_and_hf_for_what_it_cannot_run(tiny_dir):
    from peft import LoraConfig, get_peft_model

    plain, _ = load_policy(tiny_dir, opts=LoadConfig())
    assert plain.soar_sampler == "auto"
    assert isinstance(decoder(plain, 2, 8), LlamaDecoder)
    assert isinstance(decoder(plain, 2, 8, "hf"), HFDecoder)
    lora, _ = load_policy(tiny_dir, opts=LoadConfig(lora=LoraSettings(r=4)))
    assert supports(lora)  # plain adapters: the lean forward adds them
    assert isinstance(decoder(lora, 2, 8), LlamaDecoder)
    base, _ = load_policy(tiny_dir)
    dora = get_peft_model(base, LoraConfig(r=4, target_modules=["q_proj"], use_dora=True))
    assert not supports(dora)  # DoRA's magnitudes would be ignored by the lean forward
    assert isinstance(decoder(dora, 2, 8), HFDecoder)
    with pytest.raises(ValueError, match="plain LoRA adapters"):
        decoder(dora, 2, 8, "fused")


def test_sampler_setting_is_checked():
    with pytest.raises(ValueError, match="auto, hf, fused"):
        LoadConfig(sampler="vllm")
    with pytest.raises(ValueError, match="auto, hf, fused"):
        decoder(_gqa_llama(), 1, 4, "fast")


def test_row_spans_of_copies():
    from soar.engine.decode import row_spans

    assert row_spans([3, 0, 2]) == [(0, 3), (3, 3), (3, 5)]
    assert row_spans([4]) == [(0, 4)]
    assert row_spans([]) == []


def _logprobs_and_grads(model, prompts, completions, shared: bool, monkeypatch):
    """token_logprobs of `model` (with the shared-prompt forward or without it) and the gradient of their sum."""
    from soar.engine import rloo

    with monkeypatch.context() as m:
        if not shared:
            m.setattr(rloo, "shares_prompts", lambda model: False)
        model.zero_grad()
        lp, mask = rloo.token_logprobs(model, prompts, completions, pad_id=0)
        lp.sum().backward()
    return lp.detach(), mask, {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}


@pytest.mark.parametrize("model_name", ["gqa", "shipped"])
def test_shared_prompt_forward_gives_the_log_probs_and_gradients_of_the_model_own(model_name, shipped, monkeypatch):
    """Rows that share prompts (of different lengths: left padding) with completions of different lengths (one
    empty): the same right-aligned log-probs, mask and parameter gradients as the Hugging Face forward over
    the concatenated rows, to float32 rounding; grouped-query attention and the shipped model alike."""
    from soar.engine.decode import shares_prompts

    model = _gqa_llama() if model_name == "gqa" else shipped[0]
    model.train()
    assert shares_prompts(model)
    prompts = [[1, 5, 6, 7, 8]] * 3 + [[1, 9, 10]] * 2 + [[1, 11, 12, 13]]
    completions = [[20, 21, 22, 23], [24, 25], [26], [27, 28, 29, 30, 31], [], [32, 33, 34]]
    a = _logprobs_and_grads(model, prompts, completions, False, monkeypatch)
    b = _logprobs_and_grads(model, prompts, completions, True, monkeypatch)
    model.eval()
    assert torch.equal(a[1], b[1]) and a[1].sum() == sum(len(c) for c in completions)
    torch.testing.assert_close(b[0], a[0], atol=2e-5, rtol=0)
    assert a[2].keys() == b[2].keys()
    for name in a[2]:  # float32 rounding of sums over rows: an absolute tolerance at the gradient's own scale
        atol = max(1e-5, 2e-6 * a[2][name].abs().max().item())
        torch.testing.assert_close(b[2][name], a[2][name], atol=atol, rtol=1e-4, msg=name)


def test_shared_prompt_forward_is_for_plain_llamas_on_a_cpu_only():
    from soar.engine.decode import shares_prompts

    model = _gqa_llama()
    assert shares_prompts(model)
    getattr(model, "activation_checkpointing_enable", model.gradient_checkpointing_enable)()
    assert not shares_prompts(model)  # it does not recompute layers: the Hugging Face forward does
    lora, _ = load_policy(DEFAULT_MODEL, opts=LoadConfig(lora=LoraSettings(r=4)))
    assert not shares_prompts(lora)


def test_fused_rope_table_gives_the_rotation_of_the_model_own_and_dynamic_rope_is_computed_per_step():
    from soar.engine.decode import _rotate, _rotate_signed

    model = _gqa_llama()
    fused = LlamaDecoder(model, batch=1, capacity=8)
    cos_t, signed_t = fused._rope_table(20)
    x = torch.randn(2, 4, 20, 16)
    with torch.no_grad():
        cos, sin = model.model.rotary_emb(x, position_ids=torch.arange(20)[None])
    assert torch.equal(cos_t, cos[0])  # a lookup gives the values the model computes, bit for bit
    assert torch.equal(_rotate_signed(x, cos_t, signed_t), _rotate(x, cos, sin))
    cfg = model.config
    cfg.rope_parameters = {"rope_type": "dynamic", "factor": 2.0, "rope_theta": 500.0}
    torch.manual_seed(0)
    dynamic = LlamaForCausalLM(cfg).eval()
    assert LlamaDecoder(dynamic, batch=1, capacity=8)._rope_table(20) is None  # frequencies depend on length


@pytest.mark.parametrize("backend", ["hf", "fused"])
def test_sampling_never_records_gradients(shipped, backend, monkeypatch):
    import soar.engine.sampling as sampling

    seen, draw = [], sampling._draw
    monkeypatch.setattr(sampling, "_draw", lambda *a: seen.append(torch.is_grad_enabled()) or draw(*a))
    model, tok = shipped
    sample(model, tok, _prompts(2), 2, max_new_tokens=4, seed=0, backend=backend)
    assert seen and not any(seen)


def test_the_hf_decoder_names_the_kv_cache_as_the_installed_transformers_does():
    # `past_key_values` before transformers 5.24, `cache` since; a wrong name fails the first sampling call
    assert CACHE_KEY in inspect.signature(LlamaForCausalLM.forward).parameters
