"""The teacher's side of SOAR: writing g datasets of n valid question/answer pairs.

Paper (SPEC "Teacher generation"): one fixed prompt, no example questions; a sample is kept only if both
tag pairs are present, the answer has `\\boxed{}` and the boxed answer parses with the verifier; invalid
samples are rejected and resampled until g*n valid pairs exist (RLOO stays unbiased because its
leave-one-out advantages sum to zero over the valid samples).
Choice where the paper is silent: a cap on attempts (`max_attempts` x g*n) ends the step with
`TeacherFormatError` instead of looping forever on a teacher that stopped writing the format.

Departure (optional, `answer_mode="two_turn"`): the teacher writes the pair as usual, then answers its own
question in a second turn with the student prompt, and that answer replaces the one inside the tags; both
turns get the policy gradient. The paper found one turn better on Llama-3B; we offer two turns because our
1M-parameter base model can only compute with the student's scratchpad, so its in-tag answers are never
right (see docs/world-design.md).
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
    answer_prompt: str | None = None
    """two-turn mode: the second turn's prompt (the student prompt of the question)"""
    answer_token_ids: list[int] | None = None
    """two-turn mode: the second turn's completion"""


def valid_pair(world: World, text: str, require_box: bool = True) -> QAPair | None:
    """The pair in `text` if it is valid for `world` (tags, a box, an answer the verifier parses)."""
    pair = parse_teacher_output(text, require_box)
    if pair is None:
        return None
    # "the boxed answer parses with the verifier" (where the world has no parser: it equals itself).
    return pair if world.answer_parses(pair.answer) else None


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
    answer_mode: str = "inline",
    answer_max_new_tokens: int = 64,
    answer_temperature: float = 0.0,
    prefill: str = "",
    require_box: bool = True,
) -> tuple[list[list[TeacherSample]], dict]:
    """g datasets of n valid samples each, in sampling order, and {attempts, invalid, invalid_rate}.

    `prefill` starts the teacher's reply (it is appended to the prompt, and put back in front of each
    completion before parsing); "" is the paper's setting.

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
            [world.teacher_prompt + prefill],
            k,
            temperature=temperature,
            max_new_tokens=max_new_tokens,
            seed=seed * 1000 + round_,
        )[0]
        round_ += 1
        firsts = [(s, valid_pair(world, prefill + s.text, require_box)) for s in out]
        if answer_mode == "two_turn":
            firsts = _second_turn(
                teacher, tokenizer, world, firsts, answer_max_new_tokens, answer_temperature, seed * 1000 + round_
            )
        for s, pair in firsts:
            attempts += 1
            if pair is not None and len(valid) < need:
                valid.append(s if isinstance(s, TeacherSample) else TeacherSample(pair, s.text, s.token_ids))
    datasets = [valid[i * n : (i + 1) * n] for i in range(g)]
    invalid = attempts - need
    return datasets, {"attempts": attempts, "invalid": invalid, "invalid_rate": invalid / attempts}


def _second_turn(teacher, tokenizer, world: World, firsts, max_new_tokens: int, temperature: float, seed: int):
    """Replace each valid pair's answer by the teacher's own solution in the student prompt (greedy at
    temperature 0, else one sample)."""
    from soar.verifiers import extract_boxed

    todo = [i for i, (_, p) in enumerate(firsts) if p is not None]
    prompts = [world.student_prompt(firsts[i][1].question) for i in todo]
    outs = (
        sample(teacher, tokenizer, prompts, 1, temperature=temperature, max_new_tokens=max_new_tokens, seed=seed + 7)
        if todo
        else []
    )
    result = [(s, None) for s, _ in firsts]
    for i, prompt, o in zip(todo, prompts, outs, strict=True):
        s, pair = firsts[i]
        answer = (extract_boxed(o[0].text) or "").strip()
        if answer and world.answer_parses(answer):
            pair = QAPair(pair.question, answer)
            result[i] = (TeacherSample(pair, s.text, s.token_ids, prompt, o[0].token_ids), pair)
    return result


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
