"""The pretraining corpus of the arithmetic world: what the tiny base model "read on the web".

Two kinds of documents:
- Solved problems in the student format, with operands drawn uniformly, so steps that need long carry
  look-ahead are a rare tail (about 2.6% of steps), as hard reasoning is rare in web text. With
  `student_slip` > 0 (the shipped model's second stage) a careless solver writes them: it slips on hard
  steps and carries the slip on, and `hard_fraction` of them are drawn at a uniform level.
- Teacher-format question/answer documents across every family and level: the question, the careless
  solver's scratchpad between the tags (the paper allows reasoning outside the tags) and its boxed
  answer. The solver slips on look-ahead steps, so that (as in the paper) the base model can already
  write problems of any kind, with answers that are usually right for easy ones and often wrong for
  hard ones. (Without the scratchpad a tiny model cannot compute any answer in one go, and every
  teacher answer would be noise.)
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from soar.world.arithmetic import (
    FAMILIES,
    LEVELS,
    fmt,
    make_problem,
    noisy_values,
    solution_text,
    worked_solution,
)
from soar.world.formats import TEACHER_PROMPT_ARITH, answer_key_prompt, student_prompt, teacher_document


@dataclass
class CorpusConfig:
    """Mix of the pretraining corpus."""

    teacher_fraction: float = 0.1
    """share of teacher-format question/answer documents"""
    family_weights: tuple[float, ...] = (0.3, 0.3, 0.3, 0.1)
    """weights of add, sub, mix, mul among solved (student-format) documents"""
    teacher_slip: float = 0.5
    """probability that the careless solver of teacher documents slips on each step"""
    student_slip: float = 0.0
    """probability that a solved (student-format) document slips on each HARD step (`extra_carry_op`: one
    extra carry at the bottom of the look-ahead run), later steps building on the slipped value and the box
    holding the slipped result; 0 = every solved document is right. Above 0 the base model learns a careless
    prior: it has the hard step but takes it rarely, and its errors propagate, so success compounds over
    hard steps (the shipped model's values: assets/tiny-arith/PROVENANCE.json)"""
    hard_fraction: float = 0.0
    """share of solved documents drawn at a uniformly random level (hard steps forced) instead of with
    uniform operands (where only 2.6% of steps are hard): enough hard steps to learn the slip rate"""
    slip_by_lookahead: tuple[float, ...] = ()
    """slip probability of a solved document's +/- hard step by its look-ahead L (entry L; the last entry for
    longer runs; entries below HARD_RUN are unused): e.g. (0, 0, 0.35, 0.98, 0.98). () = student_slip at
    every L (the shipped model). Non-empty turns the careless solver on even when student_slip is 0"""
    mul_slip: float | None = None
    """slip probability of a solved document's multiplication hard step; None = student_slip"""
    slip_kind: str = "extra_carry"
    """how a +/- hard step slips: extra_carry (+10^start, the shipped model) | diverse (+d x 10^start, d
    uniform in 1..9: one-signed, so slips never cancel, and a wrong answer is seldom the student's own)"""
    hard_max_run: int = 3
    """longest look-ahead of the hard steps in the hard_fraction documents (3 = the shipped corpus; at most 4)"""
    key_fraction: float = 0.0
    """share of answer-key documents: `answer_key_prompt(Q)` (`<question>Q</question>`), then the values and the
    box of a careless solver that slips at `key_slip_by_lookahead`, problems drawn like the solved documents;
    0 = none (the shipped model). They teach the model a second register, the one the teacher answers in
    with `teacher.answer_prompt: key`"""
    key_slip_by_lookahead: tuple[float, ...] = ()
    """slip probability of an answer-key document's +/- hard step by look-ahead (as `slip_by_lookahead`);
    () = slip_by_lookahead"""
    teacher_reasoning: str = "none"
    """what teacher documents carry between the question and the answer tags: none | scratchpad (the
    careless solver's register values) | transcript (a student-format transcript of the careless solver:
    `User: <question> Assistant: <values>`, so the teacher reuses the student's way of computing)"""


def pretraining_document(rng: random.Random, cfg: CorpusConfig) -> tuple[str, str]:
    """(prompt, target): the loss is taken on the target only."""
    if rng.random() < cfg.teacher_fraction:
        family = rng.choice(FAMILIES)
        p = make_problem(family, rng.choice(LEVELS[family]), rng)
        v = noisy_values(p.question, rng, cfg.teacher_slip)
        assert v is not None
        scratch = fmt(v[0]) + "".join(f" ={fmt(x)}" for x in v[1:])
        reasoning = {"none": "", "scratchpad": scratch, "transcript": student_prompt(p.question) + scratch}[
            cfg.teacher_reasoning
        ]
        return TEACHER_PROMPT_ARITH, teacher_document(p.question, fmt(v[-1]), reasoning)
    # The first test keeps the random stream of corpora without answer keys unchanged.
    key = cfg.key_fraction > 0 and rng.random() < cfg.key_fraction
    family = rng.choices(FAMILIES, weights=cfg.family_weights)[0]
    if cfg.hard_fraction > 0 and rng.random() < cfg.hard_fraction:
        p = make_problem(family, None, rng, max_run=cfg.hard_max_run)
    else:
        p = make_problem(family, None, rng, natural=True)
    prompt = answer_key_prompt(p.question) if key else student_prompt(p.question)
    slips = tuple(cfg.key_slip_by_lookahead or cfg.slip_by_lookahead) if key else tuple(cfg.slip_by_lookahead)
    if key or cfg.student_slip > 0 or cfg.slip_by_lookahead:
        v = noisy_values(
            p.question,
            rng,
            cfg.student_slip,
            hard_only=True,
            slip_by_lookahead=slips,
            mul_slip=cfg.mul_slip,
            slip_kind=cfg.slip_kind,
        )
        assert v is not None
        return prompt, solution_text(v)
    return prompt, worked_solution(p.question)  # type: ignore[return-value]
