"""Task worlds: how a question becomes a student prompt and how an answer is checked.

`ARITHMETIC` is the built-in default; `math` (soar.world.math) checks LaTeX answers with math-verify for MATH,
HARP, OlympiadBench and CHAMP. Configs name a world with `world: arithmetic | math`; `make_world` builds it.
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
    parses: Callable[[str], bool] | None = None
    """answer -> does the verifier read it (a teacher pair is valid only then); None = is_equal(a, a)"""
    worked_solution: Callable[[str], str | None] | None = None
    """question -> the canonical correct completion where the world can write one (arithmetic), for the
    sampling-free hard-set screen (`soar.hardset.solution_logprobs`)"""
    final_split: Callable[[str, str], tuple[str, str] | None] | None = None
    """(completion, answer) -> (the completion up to where its final answer starts, the text that writes the
    answer there) where the world can say (arithmetic), for `soar.hardset.success_estimates`"""

    def answer_parses(self, answer: str) -> bool:
        """Does the verifier read `answer` (`parses`, or else: the answer equals itself)?"""
        return self.parses(answer) if self.parses is not None else self.is_equal(answer, answer) is True


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
    worked_solution=arithmetic.worked_solution,
    final_split=arithmetic.final_split,
)


WORLDS = ("arithmetic", "math")
"""the names a config's `world` may take"""


def check_world(name: str) -> None:
    if name not in WORLDS:
        raise ValueError(f"unknown world {name!r}; valid worlds: {', '.join(WORLDS)}")


def make_world(name: str, tokenizer=None) -> World:
    """The world called `name`; the math world uses `tokenizer`'s chat template in its prompts when it has
    one (the arithmetic world keeps its plain prompt: its character tokenizer has no template)."""
    check_world(name)
    if name == "arithmetic":
        return ARITHMETIC
    from soar.world.math import math_world

    return math_world(tokenizer)
