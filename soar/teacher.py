"""The teacher's side of SOAR: writing g datasets of n valid question/answer pairs.

Paper (SPEC "Teacher generation"): one fixed prompt, no example questions; a sample is kept only if both
tag pairs are present, the answer has `\\boxed{}` and the boxed answer parses with the verifier; invalid
samples are rejected and resampled until g*n valid pairs exist (RLOO stays unbiased because its
leave-one-out advantages sum to zero over the valid samples).
Choice where the paper is silent: a cap on attempts (`max_attempts` x g*n) ends the step with
`TeacherFormatError` instead of looping forever on a teacher that stopped writing the format.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from soar.formats import QAPair, parse_teacher_output
from soar.problems import Problem
from soar.sampling import sample
from soar.world import World


class TeacherFormatError(RuntimeError):
    """The teacher did not write enough valid question/answer pairs within the attempt cap."""


@dataclass
class TeacherSample:
    """One valid teacher completion: the pair it wrote and the token ids that get the policy gradient."""

    pair: QAPair
    text: str
    token_ids: list[int]


def valid_pair(world: World, text: str) -> QAPair | None:
    """The pair in `text` if it is valid for `world` (tags, a box, an answer the verifier parses)."""
    pair = parse_teacher_output(text)
    if pair is None:
        return None
    # "the boxed answer parses with the verifier": the answer must at least be equal to itself.
    if world.is_equal(pair.answer, pair.answer) is not True:
        return None
    return pair


def write_datasets(
    teacher,
    tokenizer,
    world: World,
    g: int,
    n: int,
    *,
    temperature: float,
    max_new_tokens: int,
    seed: int,
    max_attempts: float = 8.0,
) -> tuple[list[list[TeacherSample]], dict]:
    """g datasets of n valid samples each, in sampling order, and {attempts, invalid, invalid_rate}.

    Raises TeacherFormatError after more than `max_attempts * g * n` samples."""
    need = g * n
    cap = math.ceil(max_attempts * need)
    valid: list[TeacherSample] = []
    attempts = 0
    round_ = 0
    while len(valid) < need:
        missing = need - len(valid)
        # Ask for enough to cover the invalid rate seen so far (at least what is missing).
        rate = len(valid) / attempts if attempts else 1.0
        k = min(cap - attempts, max(missing, math.ceil(missing / max(rate, 0.05))))
        if k <= 0:
            raise TeacherFormatError(
                f"the teacher wrote only {len(valid)} valid question/answer pairs in {attempts} attempts "
                f"(needed {need}; cap {cap} = teacher.max_attempts x g x n). Check the teacher prompt and "
                f"the format <question>...</question><answer>\\boxed{{...}}</answer>, or raise teacher.max_attempts."
            )
        out = sample(
            teacher,
            tokenizer,
            [world.teacher_prompt],
            k,
            temperature=temperature,
            max_new_tokens=max_new_tokens,
            seed=seed * 1000 + round_,
        )[0]
        round_ += 1
        for s in out:
            attempts += 1
            pair = valid_pair(world, s.text)
            if pair is not None and len(valid) < need:
                valid.append(TeacherSample(pair, s.text, s.token_ids))
    datasets = [valid[i * n : (i + 1) * n] for i in range(g)]
    invalid = attempts - need
    return datasets, {"attempts": attempts, "invalid": invalid, "invalid_rate": invalid / attempts}


def as_problems(samples: list[TeacherSample], classify=None) -> list[Problem]:
    """Teacher pairs as student problems; the reference answer is the TEACHER's (not the truth).
    `classify(question) -> (family, level) | None` labels them where the world can."""
    out = []
    for s in samples:
        fam, lvl = ("teacher", -1)
        if classify is not None and (c := classify(s.pair.question)) is not None:
            fam, lvl = c
        out.append(Problem(fam, lvl, s.pair.question, s.pair.answer))
    return out
