"""The one sampling seam: k completions per prompt, batched, with a KV cache.

Training, evaluation, hard-set screening and the teacher all sample through `sample`; nothing else in
the package knows how generation is done.
"""

from __future__ import annotations

from contextlib import nullcontext
from dataclasses import dataclass

import torch
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from soar.engine.decode import LlamaDecoder, decoder, row_spans
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


def _draw(logits: torch.Tensor, temperature: float, generator: torch.Generator | None) -> torch.Tensor:
    """One token per row: argmax at temperature 0, else a draw from softmax(logits / temperature)."""
    if temperature <= 0:
        return logits.argmax(-1)
    scaled = logits.float() if temperature == 1 else logits.float() / temperature  # x / 1 is x: one op less
    probs = torch.softmax(scaled, dim=-1)
    if generator is not None and generator.device != probs.device:
        return torch.multinomial(probs.cpu(), 1, generator=generator).squeeze(-1).to(probs.device)
    return torch.multinomial(probs, 1, generator=generator).squeeze(-1)


@torch.no_grad()
def _generate(
    model,
    prompt_ids: list[list[int]],
    temperature: float,
    max_new_tokens: int,
    eos_ids: list[int],
    pad_id: int,
    generators: list[torch.Generator | None],
    backend: str,
    copy_rows: list[int] | None = None,
) -> tuple[list[list[int]], list[bool]]:
    """Completions of left-padded prompts. `model` may be a list of LoRA copies over one base, `copy_rows`
    the number of consecutive rows of each; each copy's rows draw from its own generator."""
    if isinstance(model, list) and len(model) == 1:
        model = model[0]
    models = model if isinstance(model, list) else [model]
    device = next(models[0].parameters()).device
    ids, mask = _left_pad(prompt_ids, pad_id)
    ids, mask = ids.to(device), mask.to(device)
    B = ids.shape[0]
    copy_rows = copy_rows or [B]
    spans = row_spans(copy_rows)
    copy_of_row = (
        torch.repeat_interleave(torch.arange(len(copy_rows)), torch.tensor(copy_rows)) if len(models) > 1 else None
    )
    dec = decoder(model, B, ids.shape[1] + max_new_tokens, backend, copy_of_row)
    # the lean decoder's tensors never meet autograd: inference mode skips its bookkeeping (1.08x at 8 x 8)
    # (`inference_mode(False)` would switch gradients back on: the other decoders keep `no_grad`)
    with torch.inference_mode() if isinstance(dec, LlamaDecoder) else nullcontext():
        return _decode(dec, ids, mask, temperature, max_new_tokens, eos_ids, pad_id, generators, spans)


def _decode(
    dec,
    ids: torch.Tensor,
    mask: torch.Tensor,
    temperature: float,
    max_new_tokens: int,
    eos_ids: list[int],
    pad_id: int,
    generators: list[torch.Generator | None],
    spans: list[tuple[int, int]],
) -> tuple[list[list[int]], list[bool]]:
    """`_generate`'s prefill and token loop with decoder `dec`."""
    device, B = ids.device, ids.shape[0]
    pos = (mask.cumsum(-1) - 1).clamp(min=0)  # (B, P): left padding must not shift positions
    logits = dec.prefill(ids, mask, pos)  # (B, V)
    if not torch.isfinite(logits).all():
        raise FloatingPointError("the model produced non-finite logits (NaN/inf weights?); the run diverged")
    next_pos = pos[:, -1:] + 1  # (B, 1)
    done = torch.zeros(B, dtype=torch.bool, device=device)
    stop = torch.tensor(eos_ids, device=device)  # (S,) any of them ends a completion
    new = torch.full((B, max_new_tokens), pad_id, dtype=torch.long, device=device)
    for t in range(max_new_tokens):
        if len(generators) == 1:
            tok = _draw(logits, temperature, generators[0])
        else:  # each copy's rows from its own generator, as if it were sampled alone
            tok = torch.cat([_draw(logits[s:e], temperature, g) for (s, e), g in zip(spans, generators, strict=True)])
        tok.masked_fill_(done, pad_id)  # a finished row writes padding
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
    return sample_copies(
        [model],
        tokenizer,
        [prompts],
        k,
        temperature=temperature,
        max_new_tokens=max_new_tokens,
        seeds=[seed],
        batch_size=batch_size,
        backend=backend,
    )[0]


def sample_copies(
    models: list[PreTrainedModel],
    tokenizer: PreTrainedTokenizerBase,
    prompts: list[list[str]],
    k: int = 1,
    *,
    temperature: float = 1.0,
    max_new_tokens: int = 128,
    seeds: list[int | None],
    batch_size: int = 256,
    max_rows: int = 2048,
    backend: str | None = None,
) -> list[list[list[Sample]]]:
    """`sample` for C LoRA copies over one frozen base at once (the inner loop's students in lockstep):
    copy c writes k completions for each of `prompts[c]` with seed `seeds[c]`. Returns [copy][prompt][k].

    Each copy gets the draws `sample(models[c], tokenizer, prompts[c], k, seed=seeds[c], batch_size=...)`
    would give (tested), but each forward runs the base once for the rows of many copies (the `fused`
    decoder, each copy's adapters on its own rows), at most `max_rows` rows at a time. A seed of None draws
    from torch's global generator; `backend` (one copy alone) defaults to the model's `load.sampler`."""
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    if not len(models) == len(prompts) == len(seeds):
        raise ValueError(f"{len(models)} models, {len(prompts)} prompt lists and {len(seeds)} seeds: one each")
    training = [m.training for m in models]
    for m in models:
        m.eval()
    device = next(models[0].parameters()).device
    eos = stop_ids(models[0], tokenizer)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else eos[0]
    rows = [[p for p in encode_prompts(tokenizer, ps) for _ in range(k)] for ps in prompts]
    # on the model's device: no logits copy to the CPU per token on a GPU
    gens = [None if s is None else torch.Generator(device=device).manual_seed(s) for s in seeds]
    # Each copy's rows sorted by length (each batch pads little) and cut into batches of batch_size.
    chunks = []
    for r in rows:
        order = sorted(range(len(r)), key=lambda i: len(r[i]))
        chunks.append([order[s : s + batch_size] for s in range(0, len(order), batch_size)])
    waves, wave, width = [], [], 0  # copies decoded side by side, at most max_rows rows per forward
    for c in range(len(models)):
        size = max((len(ch) for ch in chunks[c]), default=0)
        if wave and width + size > max_rows:
            waves.append(wave)
            wave, width = [], 0
        wave.append(c)
        width += size
    waves.append(wave)
    seqs: list[list[list[int] | None]] = [[None] * len(r) for r in rows]
    fins: list[list[bool]] = [[False] * len(r) for r in rows]
    for wave in waves:
        for b in range(max(len(chunks[c]) for c in wave)):
            part = [c for c in wave if b < len(chunks[c])]
            batch = [rows[c][i] for c in part for i in chunks[c][b]]
            alone = backend or getattr(models[part[0]], "soar_sampler", "auto")
            chosen = "fused" if len(part) > 1 else alone
            with compute_precision(models[0]):
                out, fin = _generate(
                    [models[c] for c in part], batch, temperature, max_new_tokens, eos, pad,
                    [gens[c] for c in part], chosen, [len(chunks[c][b]) for c in part],
                )  # fmt: skip
            at = 0
            for c in part:
                for i in chunks[c][b]:
                    seqs[c][i], fins[c][i] = out[at], fin[at]
                    at += 1
    for m, was in zip(models, training, strict=True):
        if was:
            m.train()
    result = []
    for c, ps in enumerate(prompts):
        made = [
            Sample(tokenizer.decode(s, skip_special_tokens=True), s, f) for s, f in zip(seqs[c], fins[c], strict=True)
        ]
        result.append([[made[p * k + j] for j in range(k)] for p in range(len(ps))])  # type: ignore[arg-type]
    return result
