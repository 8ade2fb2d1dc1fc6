"""The one sampling seam: k completions per prompt, batched, with a KV cache.

Training, evaluation, hard-set screening and the teacher all sample through `sample`; nothing else in
the package knows how generation is done.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from soar.engine.decode import decoder
from soar.engine.model import compute_precision


@dataclass
class Sample:
    """One completion: its text (special tokens removed) and its token ids (up to and including EOS)."""

    text: str
    token_ids: list[int]
    finished: bool
    """True if the model emitted EOS before max_new_tokens"""


def encode_prompts(tokenizer: PreTrainedTokenizerBase, prompts: list[str]) -> list[list[int]]:
    """Token ids of each prompt, with the tokenizer's own special tokens (e.g. BOS)."""
    return [tokenizer(p).input_ids for p in prompts]


def _left_pad(seqs: list[list[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    width = max(len(s) for s in seqs)
    ids = torch.full((len(seqs), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(seqs), width), dtype=torch.long)
    for i, s in enumerate(seqs):
        ids[i, width - len(s) :] = torch.tensor(s, dtype=torch.long)
        mask[i, width - len(s) :] = 1
    return ids, mask


def stop_ids(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase) -> list[int]:
    """Token ids that end a completion: the tokenizer's EOS and the model's generation-config EOS ids
    (chat models such as Llama-3-Instruct end a turn with <|eot_id|>, not <|end_of_text|>)."""
    ids = [tokenizer.eos_token_id]
    gen_eos = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
    ids += gen_eos if isinstance(gen_eos, list) else [gen_eos]
    return list(dict.fromkeys(i for i in ids if i is not None))


@torch.no_grad()
def _generate(
    model: PreTrainedModel,
    prompt_ids: list[list[int]],
    temperature: float,
    max_new_tokens: int,
    eos_ids: list[int],
    pad_id: int,
    generator: torch.Generator | None,
    backend: str,
) -> tuple[list[list[int]], list[bool]]:
    device = next(model.parameters()).device
    ids, mask = _left_pad(prompt_ids, pad_id)
    ids, mask = ids.to(device), mask.to(device)
    B = ids.shape[0]
    dec = decoder(model, B, ids.shape[1] + max_new_tokens, backend)
    pos = (mask.cumsum(-1) - 1).clamp(min=0)  # (B, P): left padding must not shift positions
    logits = dec.prefill(ids, mask, pos)  # (B, V)
    if not torch.isfinite(logits).all():
        raise FloatingPointError("the model produced non-finite logits (NaN/inf weights?); the run diverged")
    next_pos = pos[:, -1:] + 1  # (B, 1)
    done = torch.zeros(B, dtype=torch.bool, device=device)
    stop = torch.tensor(eos_ids, device=device)  # (S,) any of them ends a completion
    new = torch.full((B, max_new_tokens), pad_id, dtype=torch.long, device=device)
    for t in range(max_new_tokens):
        if temperature <= 0:
            tok = logits.argmax(-1)
        else:
            probs = torch.softmax(logits.float() / temperature, dim=-1)
            if generator is not None and generator.device != probs.device:
                tok = torch.multinomial(probs.cpu(), 1, generator=generator).squeeze(-1).to(device)
            else:
                tok = torch.multinomial(probs, 1, generator=generator).squeeze(-1)
        tok = torch.where(done, torch.full_like(tok, pad_id), tok)
        new[:, t] = tok
        is_eos = torch.isin(tok, stop) & ~done
        done |= is_eos
        if bool(done.all()) or t == max_new_tokens - 1:
            break
        logits = dec.step(tok, ~done | is_eos, next_pos)  # a row's EOS is still attended to; padding after it is not
        next_pos = next_pos + 1
    seqs, finished = [], []
    for row in new.tolist():
        end = next((i for i, x in enumerate(row) if x in eos_ids), None)
        if end is not None:
            seqs.append(row[: end + 1])
            finished.append(True)
        else:
            seqs.append([x for x in row if x != pad_id])
            finished.append(False)
    return seqs, finished


def sample(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    prompts: list[str],
    k: int = 1,
    *,
    temperature: float = 1.0,
    max_new_tokens: int = 128,
    seed: int | None = None,
    batch_size: int = 256,
    backend: str | None = None,
) -> list[list[Sample]]:
    """k completions for each prompt (temperature 0 = greedy). Returns [prompt][k] Samples.

    Rows are batched `batch_size` at a time; `seed` makes the draw reproducible on one device. `backend`
    (soar.engine.decode.BACKENDS) defaults to the model's `load.sampler` setting."""
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    was_training = model.training
    model.eval()
    gen = None
    if seed is not None:  # on the model's device: no logits copy to the CPU per token on a GPU
        gen = torch.Generator(device=next(model.parameters()).device).manual_seed(seed)
    enc = encode_prompts(tokenizer, prompts)
    rows = [p for p in enc for _ in range(k)]
    eos = stop_ids(model, tokenizer)
    backend = backend or getattr(model, "soar_sampler", "auto")
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else eos[0]
    all_seqs: list[list[int]] = []
    all_fin: list[bool] = []
    # Sort by prompt length so each batch pads little; restore order afterwards.
    order = sorted(range(len(rows)), key=lambda i: len(rows[i]))
    for s in range(0, len(order), batch_size):
        idx = order[s : s + batch_size]
        with compute_precision(model):
            seqs, fin = _generate(model, [rows[i] for i in idx], temperature, max_new_tokens, eos, pad, gen, backend)
        all_seqs.extend(seqs)
        all_fin.extend(fin)
    by_row: list[Sample | None] = [None] * len(rows)
    for j, i in enumerate(order):
        text = tokenizer.decode(all_seqs[j], skip_special_tokens=True)
        by_row[i] = Sample(text, all_seqs[j], all_fin[j])
    if was_training:
        model.train()
    return [[by_row[p * k + j] for j in range(k)] for p in range(len(prompts))]  # type: ignore[misc]
