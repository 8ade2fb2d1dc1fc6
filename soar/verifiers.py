"""Answer extraction and the paper's shaped student reward (pure functions, never raise on model text)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

BOX = "\\boxed{"


def extract_boxed(text: str | None) -> str | None:
    """Content of the last `\\boxed{...}` in text, with nested braces; None if absent or unclosed."""
    if not text:
        return None
    start = text.rfind(BOX)
    while start != -1:
        i, depth = start + len(BOX), 1
        while i < len(text):
            if text[i] == "{":
                depth += 1
            elif text[i] == "}":
                depth -= 1
                if depth == 0:
                    return text[start + len(BOX) : i]
            i += 1
        # unclosed: try an earlier box
        start = text.rfind(BOX, 0, start)
    return None


@dataclass(frozen=True)
class RewardShaping:
    """The paper's student reward. The extracted text shows 120/20/10, read here as 1.0/0.2/0.1."""

    correct: float = 1.0
    """boxed and verified equal to the reference"""
    contains: float = 0.2
    """boxed, not verified, but the reference string appears inside the extracted answer"""
    boxed: float = 0.1
    """boxed otherwise"""
    no_box: float = 0.0
    """no (closed) box at all"""


def shaped_reward(
    completion: str,
    gold: str | None,
    is_equal: Callable[[str, str], bool | None],
    shaping: RewardShaping = RewardShaping(),
) -> float | None:
    """Reward of one completion against a reference answer.

    Returns None (unscorable: left out of the RLOO baseline) when there is no reference or the checker
    could not decide (`is_equal` returned None, e.g. a verifier timeout)."""
    if gold is None:
        return None
    pred = extract_boxed(completion)
    if pred is None:
        return shaping.no_box
    ok = is_equal(gold, pred)
    if ok is None:
        return None
    if ok:
        return shaping.correct
    if gold.strip() and gold.strip() in pred:
        return shaping.contains
    return shaping.boxed
