"""Embeddings of question text for the Vendi diversity score.

Arithmetic world: hashed character 1-3-gram counts (stable crc32 hashing, L2-normalised). Two questions
are similar when they share operators, labels, lengths and digit patterns. The paper embeds MATH questions
with Qwen3-8B; for text worlds, `sentence_embeddings` uses sentence-transformers when it is installed.
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


def sentence_embeddings(texts: Sequence[str], model: str = "all-MiniLM-L6-v2") -> np.ndarray:
    """Sentence-transformer embeddings (an optional dependency, loaded from a local path or cache)."""
    try:
        from sentence_transformers import SentenceTransformer
    except ImportError as e:
        raise ImportError(
            "sentence embeddings need `pip install sentence-transformers`; or use the n-gram embedding"
        ) from e
    return np.asarray(SentenceTransformer(model).encode(list(texts), normalize_embeddings=True))
