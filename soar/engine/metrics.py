"""Evaluation math: the unbiased pass@k estimator and mean +- SD over seeds (pure functions)."""

from __future__ import annotations

import math
from collections.abc import Sequence


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased pass@k from n samples of which c are correct: 1 - C(n-c, k) / C(n, k) (Chen et al. 2021)."""
    if not 0 <= c <= n:
        raise ValueError(f"need 0 <= c <= n, got n={n} c={c}")
    if not 1 <= k <= n:
        raise ValueError(f"need 1 <= k <= n, got k={k} n={n}")
    if n - c < k:
        return 1.0
    # prod_{i=n-c+1}^{n} (1 - k/i) == C(n-c, k) / C(n, k), without huge binomials
    prod = 1.0
    for i in range(n - c + 1, n + 1):
        prod *= 1.0 - k / i
    return 1.0 - prod


def mean_pass_at_k(counts: Sequence[tuple[int, int]], k: int) -> float:
    """Mean pass@k over problems given (n, c) per problem."""
    return sum(pass_at_k(n, c, k) for n, c in counts) / len(counts) if counts else float("nan")


def mean_sd(values: Sequence[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (0 for a single value)."""
    if not values:
        return float("nan"), float("nan")
    m = sum(values) / len(values)
    if len(values) < 2:
        return m, 0.0
    return m, math.sqrt(sum((v - m) ** 2 for v in values) / (len(values) - 1))


def vendi_score(embeddings) -> float:
    """Vendi score (Friedman & Dieng 2023): exp of the Shannon entropy of the eigenvalues of K/n, where
    K is the cosine-similarity matrix of the rows. 1 for identical items, n for n orthogonal ones."""
    import numpy as np

    x = np.asarray(embeddings, dtype=np.float64)
    if x.ndim != 2 or len(x) == 0:
        raise ValueError(f"embeddings must be a non-empty (n, d) array, got shape {x.shape}")
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    if (norms == 0).any():
        raise ValueError("an embedding is all zeros; cosine similarity is undefined")
    x = x / norms
    lam = np.linalg.eigvalsh(x @ x.T / len(x))
    lam = lam[lam > 1e-12]
    return float(np.exp(-(lam * np.log(lam)).sum()))


def vendi_bootstrap(embeddings, size: int = 128, samples: int = 100, seed: int = 0) -> tuple[float, float]:
    """Mean and SD of the Vendi score over `samples` random subsets of `size` items (without
    replacement; the paper uses 100 subsets of 128). A set no larger than `size` (the paper's 128 of 128)
    gives the whole set's score, with the SD of `samples` classic bootstrap resamples (with replacement) of
    it: how much the score depends on which questions happened to be drawn."""
    import numpy as np

    x = np.asarray(embeddings, dtype=np.float64)
    rng = np.random.default_rng(seed)
    if len(x) <= size:
        if len(x) < 2:
            return vendi_score(x), 0.0
        boot = [vendi_score(x[rng.choice(len(x), len(x), replace=True)]) for _ in range(samples)]
        return vendi_score(x), mean_sd(boot)[1]
    scores = [vendi_score(x[rng.choice(len(x), size, replace=False)]) for _ in range(samples)]
    return mean_sd(scores)


def slope_checkpoint(rewards, window: int = 25, frac: float = 0.15) -> int:
    """The paper's PQ checkpoint rule: smooth the training reward with a centred `window`-step moving
    average, and return the first step after the steepest rise where the slope of the smoothed curve
    falls below `frac` of its maximum. Choices where the paper is silent: partial windows at the edges;
    slope = np.gradient of the smoothed curve; no positive slope at all -> step 0; the slope never
    falling below the threshold -> the last step."""
    import numpy as np

    r = np.asarray(rewards, dtype=np.float64)
    if r.ndim != 1 or len(r) == 0:
        raise ValueError("rewards must be a non-empty 1-D sequence")
    if len(r) == 1:
        return 0
    half = window // 2
    smooth = np.array([r[max(0, i - half) : i + half + 1].mean() for i in range(len(r))])
    slope = np.gradient(smooth)
    top = int(np.argmax(slope))
    if slope[top] <= 0:
        return 0
    below = np.nonzero(slope[top:] < frac * slope[top])[0]
    return int(top + below[0]) if len(below) else len(r) - 1
