"""LoRA students in lockstep: copies over one frozen base sampled in one batch draw what each draws alone,
and a teacher run with `soar.lockstep` is the run without it."""

import json

import pytest
import torch
from safetensors.torch import load_file

from soar.engine.decode import LlamaDecoder, decoder, supports
from soar.engine.model import DEFAULT_MODEL, LoadConfig, LoraSettings, clone_model, load_policy
from soar.engine.rloo import RLOOConfig
from soar.engine.sampling import sample, sample_copies
from soar.method.loop import SoarConfig, SoarSettings, run_soar
from tests.test_decode import _prompts
from tests.test_loop import hard_dir, toy  # noqa: F401 (a fixture)


def _copies(n: int, r: int = 4):
    """n LoRA copies over the shipped model's one base, each with its own nonzero adapters."""
    base, tok = load_policy(DEFAULT_MODEL, opts=LoadConfig(lora=LoraSettings(r=r)))
    copies = [clone_model(base) for _ in range(n)]
    gen = torch.Generator().manual_seed(0)
    for c, m in enumerate(copies):
        with torch.no_grad():
            for p in m.parameters():
                if p.requires_grad:
                    p.copy_(torch.randn(p.shape, generator=gen) * (0.05 + 0.05 * c))
    return copies, tok


def test_a_lora_model_decodes_fused_with_the_tokens_of_its_hf_forward():
    (model,), tok = _copies(1)
    assert supports(model)
    prompts = _prompts(16)
    hf = sample(model, tok, prompts, 2, temperature=1.0, seed=3, backend="hf", max_new_tokens=48)
    fused = sample(model, tok, prompts, 2, temperature=1.0, seed=3, backend="fused", max_new_tokens=48)
    assert [[s.token_ids for s in row] for row in fused] == [[s.token_ids for s in row] for row in hf]
    plain, _ = load_policy(DEFAULT_MODEL)
    differs = sample(plain, tok, prompts, 2, temperature=1.0, seed=3, max_new_tokens=48)
    assert [[s.token_ids for s in row] for row in differs] != [
        [s.token_ids for s in row] for row in hf
    ]  # adapters count


@pytest.mark.parametrize("temperature, batch_size, max_rows", [(1.0, 256, 2048), (1.0, 12, 30), (0.0, 256, 2048)])
def test_copies_sampled_in_one_batch_draw_what_each_draws_alone(temperature, batch_size, max_rows):
    copies, tok = _copies(3)
    prompts = [_prompts(8, seed=c) for c in range(3)]  # different prompts and lengths per copy
    together = sample_copies(
        copies, tok, prompts, 3, temperature=temperature, max_new_tokens=40, seeds=[11, 12, 13],
        batch_size=batch_size, max_rows=max_rows,
    )  # fmt: skip
    for c, m in enumerate(copies):
        alone = sample(
            m, tok, prompts[c], 3, temperature=temperature, max_new_tokens=40, seed=11 + c, batch_size=batch_size
        )
        assert [[s.token_ids for s in row] for row in together[c]] == [[s.token_ids for s in row] for row in alone]
        assert [[s.text for s in row] for row in together[c]] == [[s.text for s in row] for row in alone]
    if temperature > 0:  # the copies really differ: the test would see rows sampled with the wrong adapters
        assert together[0] != together[1]


def test_copies_of_different_bases_are_refused():
    (a,), _ = _copies(1)
    (b,), _ = _copies(1)  # its own base, loaded again
    with pytest.raises(ValueError, match="share one frozen base"):
        LlamaDecoder([a, b], 2, 8, torch.tensor([0, 1]))
    with pytest.raises(ValueError, match="copies in order"):
        LlamaDecoder([a, clone_model(a)], 2, 8, torch.tensor([1, 0]))
    plain, _ = load_policy(DEFAULT_MODEL)
    assert isinstance(decoder(plain, 2, 8), LlamaDecoder)


def _outcome(folder):
    rows = [json.loads(line) for line in (folder / "metrics.jsonl").read_text().splitlines()]
    teacher = load_file(str(folder / "checkpoint" / "teacher" / "adapter_model.safetensors"))
    promotions = [json.loads(line) for line in (folder / "promotions.jsonl").read_text().splitlines()]
    return [r["R"] for r in rows], [(p["step"], p["dataset"], p["student"]) for p in promotions], teacher


def test_a_lora_teacher_run_is_the_same_in_lockstep(hard_dir, tmp_path):  # noqa: F811
    lora = LoadConfig(lora=LoraSettings(r=4))
    inner = RLOOConfig(steps=2, batch_size=2, group_size=4, lr=3e-2)  # adapters that move in two steps
    # step credit, so that R_k is not 0; tau = -1: every step promotes, so step 1 starts from a student
    kw = dict(load=lora, outer_steps=2, r=2, inner=inner, qr_metric="partial_sampled", qr_samples=4)
    one = run_soar(toy(hard_dir, tmp_path / "one", **kw), progress=False)
    both = run_soar(toy(hard_dir, tmp_path / "both", lockstep=True, **kw), progress=False)
    r1, p1, t1 = _outcome(one)
    r2, p2, t2 = _outcome(both)
    assert r1 == r2 and len(r1) == 2
    assert any(r != 0 for step in r1 for r in step)  # the students learned something to compare
    assert p1 == p2 and len(p1) == 2
    assert t1.keys() == t2.keys() and all(torch.equal(t1[k], t2[k]) for k in t1)


def test_lockstep_needs_lora_and_the_fused_decoder():
    with pytest.raises(ValueError, match="load.lora.r > 0"):
        SoarConfig(lockstep=True)
    with pytest.raises(ValueError, match="fused decoder"):
        SoarConfig(lockstep=True, load=LoadConfig(sampler="hf", lora=LoraSettings(r=4)))


def test_fresh_lora_adapters_are_seeded_and_leave_the_global_generator_alone():
    """Unseeded, PEFT's initialisation of A drew from the global generator: two runs of one config (or the
    lockstep and one-at-a-time runs above) started from different adapters."""
    opts = LoadConfig(lora=LoraSettings(r=4))
    torch.manual_seed(1)
    a, _ = load_policy(DEFAULT_MODEL, opts=opts)
    state = torch.random.get_rng_state()
    torch.manual_seed(2)
    b, _ = load_policy(DEFAULT_MODEL, opts=opts)
    torch.manual_seed(1)
    assert torch.equal(torch.random.get_rng_state(), state)  # loading a did not move the generator
    for (n, p), (_, q) in zip(a.named_parameters(), b.named_parameters(), strict=True):
        assert torch.equal(p, q), n
    other, _ = load_policy(DEFAULT_MODEL, opts=LoadConfig(lora=LoraSettings(r=4, init_seed=1)))
    assert not all(torch.equal(p, q) for p, q in zip(a.parameters(), other.parameters(), strict=True))


def test_the_main_job_checks_lockstep_when_its_config_is_read():
    from soar.jobs.main import RunConfig

    with pytest.raises(ValueError, match="load.lora.r > 0"):
        RunConfig(soar=SoarSettings(lockstep=True))
    RunConfig(soar=SoarSettings(lockstep=True), load=LoadConfig(lora=LoraSettings(r=4)))
