"""Task worlds: how a question becomes a student prompt and how an answer is checked.

`ARITHMETIC` is the built-in default. Real math datasets (MATH, HARP, OlympiadBench) arrive with issue 4.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from soar.formats import TEACHER_PROMPT_ARITH, student_prompt
from soar.world import arithmetic


@dataclass(frozen=True)
class World:
    name: str
    student_prompt: Callable[[str], str]
    """question -> the text the student model continues"""
    is_equal: Callable[[str, str], bool | None]
    """(reference, predicted boxed text) -> equal? None = could not decide (unscorable)"""
    teacher_prompt: str
    """the teacher's one fixed prompt"""
    classify: Callable[[str], tuple[str, int] | None] | None = None
    """question -> (family, level) where the world can tell (arithmetic), for difficulty histograms"""
    true_answer: Callable[[str], str | None] | None = None
    """question -> the exact answer where the world knows it (arithmetic), to measure teacher correctness"""
    partial_credit: Callable[[str, str], float] | None = None
    """(question, completion) -> [0, 1] progress toward the answer (arithmetic: steps right before the first
    mistake); only for the optional dense Q_R metric of the SOAR loop"""


def _arith_truth(question: str) -> str | None:
    x = arithmetic.solve(question)
    return None if x is None else arithmetic.fmt(x)


ARITHMETIC = World(
    "arithmetic",
    student_prompt,
    arithmetic.is_equal,
    TEACHER_PROMPT_ARITH,
    arithmetic.classify,
    _arith_truth,
    arithmetic.step_credit,
)
