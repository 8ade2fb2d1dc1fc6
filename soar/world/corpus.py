"""The pretraining corpus of the arithmetic world: what the tiny base model "read on the web".

Two kinds of documents:
- Solved problems in the student format, with operands drawn naturally (uniformly), so long carry
  look-ahead is a rare tail, as hard reasoning is rare in web text. Chains of every length are present,
  so every position of the hard problems is seen in pretraining.
- Teacher-format question/answer documents across every family and level, with answers from a careless
  solver that often slips on look-ahead, so that (as in the paper) the base model can already write
  problems of any kind, with answers that are often wrong for hard ones.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from soar.formats import TEACHER_PROMPT_ARITH, student_prompt, teacher_document
from soar.world.arithmetic import FAMILIES, LEVELS, make_problem, noisy_answer, worked_solution


@dataclass
class CorpusConfig:
    """Mix of the pretraining corpus."""

    teacher_fraction: float = 0.1
    """share of teacher-format question/answer documents"""
    family_weights: tuple[float, ...] = (0.25, 0.25, 0.1, 0.4)
    """weights of add, sub, mul, chain among solved (student-format) documents"""
    max_chain: int = 8
    """longest chain among solved documents"""
    teacher_slip: float = 0.5
    """probability that the careless solver of teacher documents slips on a step that needs look-ahead"""


def pretraining_document(rng: random.Random, cfg: CorpusConfig) -> tuple[str, str]:
    """(prompt, target): the loss is taken on the target only."""
    if rng.random() < cfg.teacher_fraction:
        family = rng.choice(FAMILIES)
        level = rng.choice(LEVELS[family])
        p = make_problem(family, level, rng, min_run=rng.choice((0, 0, 1, 2)) if family == "chain" else 0)
        answer = noisy_answer(p.question, rng, cfg.teacher_slip)
        return TEACHER_PROMPT_ARITH, teacher_document(p.question, str(answer))
    family = rng.choices(FAMILIES, weights=cfg.family_weights)[0]
    level = rng.randint(2, cfg.max_chain) if family == "chain" else None
    p = make_problem(family, level, rng, natural=True)
    return student_prompt(p.question), worked_solution(p.question)  # type: ignore[return-value]
