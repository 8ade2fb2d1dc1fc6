"""Embeddings of question text for the Vendi diversity score.

Arithmetic world: hashed character 1-3-gram counts (stable crc32 hashing, L2-normalised). Two questions
are similar when they share operators, labels, lengths and digit patterns. The paper embeds MATH questions
with Qwen3-8B; for text worlds, `model_embeddings` mean-pools the last hidden states of a local language
model (the run's base model, or any causal LM on disk; nothing is downloaded).
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence

import numpy as np


def ngram_embeddings(texts: Sequence[str], n: tuple[int, ...] = (1, 2, 3), dim: int = 1024) -> np.ndarray:
    """(len(texts), dim) hashed character n-gram counts, each row L2-normalised (zero rows stay zero)."""
    out = np.zeros((len(texts), dim))
    for i, t in enumerate(texts):
        for k in n:
            for j in range(len(t) - k + 1):
                out[i, zlib.crc32(t[j : j + k].encode()) % dim] += 1.0
    norms = np.linalg.norm(out, axis=1, keepdims=True)
    return out / np.where(norms == 0, 1.0, norms)


def model_embeddings(model, tokenizer, texts: Sequence[str], batch_size: int = 16) -> np.ndarray:
    """(len(texts), hidden) mean of the last hidden state over each text's tokens, L2-normalised."""
    import torch

    rows = []
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    device = next(model.parameters()).device
    for i in range(0, len(texts), batch_size):
        ids = [tokenizer(t, add_special_tokens=False).input_ids or [pad] for t in texts[i : i + batch_size]]
        width = max(map(len, ids))
        input_ids = torch.tensor([x + [pad] * (width - len(x)) for x in ids], device=device)  # (B, T), right-padded
        mask = torch.tensor([[1] * len(x) + [0] * (width - len(x)) for x in ids], device=device)
        with torch.no_grad():
            hidden = model(input_ids=input_ids, attention_mask=mask, output_hidden_states=True).hidden_states[-1]
        m = mask.unsqueeze(-1).to(hidden.dtype)  # (B, T, 1)
        rows.append(((hidden * m).sum(1) / m.sum(1)).float().cpu().numpy())  # (B, H)
    out = np.concatenate(rows) if rows else np.zeros((0, 1))
    norms = np.linalg.norm(out, axis=1, keepdims=True)
    return out / np.where(norms == 0, 1.0, norms)
