"""Task worlds: how a question becomes a student prompt and how an answer is checked.

`ARITHMETIC` is the built-in default; `math` (soar.world.math) checks LaTeX answers with math-verify for MATH,
HARP, OlympiadBench and CHAMP. Configs name a world with `world: arithmetic | math`; `make_world` builds it.
"""

from __future__ import annotations

from soar.world import arithmetic
from soar.world.base import PromptSettings, World
from soar.world.formats import TEACHER_PROMPT_ARITH, answer_key_prompt, student_prompt


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
    step_spans=arithmetic.step_spans,
    final_split=arithmetic.final_split,
    kind=arithmetic.question_kind,
    answer_key_prompt=answer_key_prompt,
)


WORLDS = ("arithmetic", "math")
"""the names a config's `world` may take"""


def check_world(name: str) -> None:
    if name not in WORLDS:
        raise ValueError(f"unknown world {name!r}; valid worlds: {', '.join(WORLDS)}")


def make_world(name: str, tokenizer=None, prompts: PromptSettings | None = None) -> World:
    """The world called `name`; the math world uses `tokenizer`'s chat template in its prompts when it has
    one and `prompts.chat_template` allows it (the arithmetic world keeps its plain prompt: its character
    tokenizer has no template)."""
    check_world(name)
    if name == "arithmetic":
        return ARITHMETIC
    from soar.world.math import math_world

    prompts = prompts or PromptSettings()
    return math_world(tokenizer if prompts.chat_template else None, prompts.date_string)
