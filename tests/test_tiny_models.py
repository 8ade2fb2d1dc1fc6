"""Component tests on tiny local models: HF round-trip, the sampling seam, log-probs, and an RLOO run
that raises reward on a trivial task."""

import random

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from soar.core.problems import Problem
from soar.engine.model import DEFAULT_MODEL
from soar.engine.rloo import RLOOConfig, cycling_batches, token_logprobs, train_rloo
from soar.engine.sampling import encode_prompts, sample
from soar.jobs.pretrain import make_batch
from soar.world import ARITHMETIC, World


def test_hf_roundtrip(tiny_dir):
    model = AutoModelForCausalLM.from_pretrained(tiny_dir)
    tok = AutoTokenizer.from_pretrained(tiny_dir)
    text = "User: 61044 +34966 -28188 +10000 -12345 +00001 Assistant: 61044 =96010 =67822 \\boxed{65478}"
    ids = tok(text).input_ids
    assert ids[0] == tok.bos_token_id
    assert tok.decode(ids, skip_special_tokens=True) == text
    assert model.config.vocab_size == len(tok)


def test_shipped_model_loads_and_solves_easy_problems():
    if not (DEFAULT_MODEL / "model.safetensors").exists():
        pytest.fail(f"the shipped model is missing at {DEFAULT_MODEL}")
    model = AutoModelForCausalLM.from_pretrained(DEFAULT_MODEL)
    tok = AutoTokenizer.from_pretrained(DEFAULT_MODEL)
    tok.padding_side = "left"
    rng = random.Random(0)
    from soar.world.arithmetic import make_problem
    from soar.world.verifiers import extract_boxed

    def greedy_right(level: int) -> int:
        probs = [make_problem("mix", level, rng) for _ in range(32)]
        out = sample(model, tok, [ARITHMETIC.student_prompt(p.question) for p in probs], 1, temperature=0)
        texts = [extract_boxed(o[0].text) or "" for o in out]
        return sum(ARITHMETIC.is_equal(p.answer, t) for p, t in zip(probs, texts, strict=True))

    easy, hard = greedy_right(0), greedy_right(5)
    # Measured at ship time: about 60% greedy on level 0 and under 10% on level 5 (README edge table).
    assert easy >= 12, f"the shipped model solved only {easy}/32 problems without hard steps (greedy)"
    assert hard < easy / 2, f"level 5 ({hard}/32) should be far harder than level 0 ({easy}/32)"


def test_sample_shapes_and_seed(tiny):
    model, tok = tiny
    out = sample(model, tok, ["User: 1+2 Assistant: ", "User: 123 Assistant: "], 3, max_new_tokens=8, seed=1)
    assert len(out) == 2 and all(len(r) == 3 for r in out)
    assert all(len(s.token_ids) <= 8 for r in out for s in r)
    again = sample(model, tok, ["User: 1+2 Assistant: ", "User: 123 Assistant: "], 3, max_new_tokens=8, seed=1)
    assert [[s.token_ids for s in r] for r in out] == [[s.token_ids for s in r] for r in again]


def test_left_padding_does_not_change_greedy_output(tiny):
    model, tok = tiny
    short, long = "User: 1 Assistant: ", "User: 1234567890123 Assistant: "
    alone = sample(model, tok, [short], 1, temperature=0, max_new_tokens=12)[0][0].token_ids
    batched = sample(model, tok, [long, short], 1, temperature=0, max_new_tokens=12)[1][0].token_ids
    assert alone == batched


def test_token_logprobs_match_unbatched(tiny):
    model, tok = tiny
    p = encode_prompts(tok, ["User: 1 Assistant: ", "User: 12345678 Assistant: "])
    c = [[5, 6, 7], [8]]
    lp, mask = token_logprobs(model, p, c, tok.pad_token_id)
    assert mask.sum().item() == 4
    with torch.no_grad():
        ids = torch.tensor([p[0] + c[0]])
        ref = torch.log_softmax(model(input_ids=ids).logits[0, len(p[0]) - 1 : -1], -1)
        expected = ref.gather(-1, torch.tensor(c[0])[:, None]).squeeze(-1)
    assert torch.allclose(lp[0][mask[0]], expected, atol=1e-5)


def test_rloo_raises_reward_on_a_trivial_task(tiny):
    """Warm-start the format '\\boxed{d}' with d uniform, then RLOO with the reference answer 7."""
    model, tok = tiny
    rng = random.Random(0)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    model.train()
    for _ in range(150):
        docs = [(f"User: {rng.randint(0, 99)} Assistant: ", f"\\boxed{{{rng.randint(0, 9)}}}") for _ in range(32)]
        ids, mask, lab = make_batch(tok, docs)
        loss = model(input_ids=ids, attention_mask=mask, labels=lab).loss
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    world = World("seven", ARITHMETIC.student_prompt, ARITHMETIC.is_equal, "")
    problems = [Problem("t", 0, str(i), "7") for i in range(20)]
    before = {k: v.clone() for k, v in model.state_dict().items()}
    cfg = RLOOConfig(steps=30, batch_size=4, group_size=8, lr=5e-3, kl_coef=0.001)
    hist = train_rloo(model, tok, world, cycling_batches(problems, 4), cfg, 0, 6)
    first = sum(h["accuracy"] for h in hist[:5]) / 5
    last = sum(h["accuracy"] for h in hist[-5:]) / 5
    print("accuracy first 5 / last 5 steps:", first, last)
    assert last > first + 0.3, (first, last)
    changed = [k for k, v in model.state_dict().items() if not torch.equal(v, before[k])]
    assert changed, "RLOO did not change any parameter"
    assert all(h["kl"] >= 0 for h in hist)


def test_nan_loss_stops_with_a_clear_message(tiny, monkeypatch):
    import soar.engine.rloo

    model, tok = tiny
    real = soar.engine.rloo.token_logprobs

    def poisoned(*a, **k):
        lp, mask = real(*a, **k)
        return lp * float("nan"), mask

    monkeypatch.setattr(soar.engine.rloo, "token_logprobs", poisoned)
    problems = [Problem("t", 0, "1", "1")]
    cfg = RLOOConfig(steps=1, batch_size=1, group_size=2, kl_coef=0.0)
    with pytest.raises(FloatingPointError, match="RLOO loss became nan"):
        train_rloo(model, tok, ARITHMETIC, cycling_batches(problems, 1), cfg, 0, 3)


def test_nan_weights_stop_sampling_with_a_clear_message(tiny):
    model, tok = tiny
    with torch.no_grad():
        for p in model.parameters():
            p.fill_(float("nan"))
    with pytest.raises(FloatingPointError, match="non-finite logits"):
        sample(model, tok, ["User: 1 Assistant: "], 2, max_new_tokens=3)
