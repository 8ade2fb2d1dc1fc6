"""The teacher's side of SOAR: writing g datasets of n valid question/answer pairs.

Paper ("Teacher generation"): one fixed prompt, no example questions; a sample is kept only if both
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

from soar.core import seeds
from soar.core.config import at_least
from soar.core.problems import Problem
from soar.engine.sampling import sample
from soar.world import World
from soar.world.base import check_answer_prompt
from soar.world.formats import QAPair, parse_teacher_output


@dataclass
class TeacherConfig:
    """The outer loop's teacher RLOO (paper Table 3, scaled down to the arithmetic world on 2 cores)."""

    n: int = 16
    """questions per dataset (paper 64)"""
    g: int = 4
    """datasets per group: the RLOO group of the teacher (paper 4)"""
    groups: int = 1
    """groups per outer step (paper "batch size 2")"""
    lr: float = 5e-5
    """paper 1e-5 for a 3B model"""
    warmup: int = 5
    """paper 20 (of 200 outer steps)"""
    schedule: str = "cosine"
    kl_coef: float = 0.001
    temperature: float = 1.0
    max_new_tokens: int = 200
    """paper 512; a teacher document of the arithmetic world (with its transcript) is about 195 characters"""
    max_attempts: float = 8.0
    """give up the step after max_attempts x g x n samples without g x n valid pairs"""
    answer_mode: str = "two_turn"
    """inline (the paper: the answer inside the tags) | two_turn (the default for the arithmetic world: the
    teacher answers its own question with the student prompt; both turns are trained; the tiny base
    model's in-tag answers are never right). See soar/method/teacher.py."""
    answer_temperature: float = 1.0
    """two_turn: temperature of the answer turn; 1.0 samples it like the paper's in-tag answers, 0 = greedy
    (a greedy answer takes the careless student's slip at every hard step: docs/world-design.md)"""
    answer_prompt: str = "student"
    """two_turn: the prompt of the answer turn: student (the student prompt of the question) | key (the world's
    answer-key format, arithmetic `<question>Q</question>`: a model pretrained with answer keys answers there
    in its own register; docs/world-design.md, "answer keys")"""
    grad_clip: float = 1.0
    micro_batch: int = 32
    """documents per forward/backward pass of the teacher's update (as the students' rloo.micro_batch)"""
    prefill: str = ""
    """text that starts every teacher reply (part of the prompt, not trained); "" = the paper. Tiny chat models
    follow the format more often with "<question>" (configs/smollm2-cpu.yaml)"""
    require_box: bool = True
    """the paper's rule: the answer tag must hold \\boxed{}; false also takes a bare answer (tiny models)"""
    answers: str = "own"
    """own (the paper: students train on the teacher's answers) | oracle (an ablation, never the default: the
    world's true answer replaces the teacher's in the inner loop and in the question sets, which separates
    question structure from answer correctness, the paper's Finding 5)"""

    def __post_init__(self) -> None:
        if self.answer_mode not in ("inline", "two_turn"):
            raise ValueError(f"teacher.answer_mode must be 'inline' or 'two_turn', got {self.answer_mode!r}")
        check_answer_prompt(self.answer_prompt, "teacher.answer_prompt")
        if self.answers not in ANSWERS:
            raise ValueError(f"teacher.answers must be one of {', '.join(ANSWERS)}, got {self.answers!r}")
        at_least(self, 1, "n", "g", "groups", "max_new_tokens")
        at_least(self, 0, "temperature", "answer_temperature", "kl_coef", "warmup")
        if not self.max_attempts > 0:
            raise ValueError(f"max_attempts must be above 0, got {self.max_attempts}")


ANSWERS = ("own", "oracle")


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
    teacher, tokenizer, world: World, cfg: TeacherConfig, g: int, seed: int, answer_max_new_tokens: int = 64
) -> tuple[list[list[TeacherSample]], dict]:
    """g datasets of `cfg.n` valid samples each, in sampling order, and {attempts, invalid, invalid_rate}.

    `cfg.prefill` starts the teacher's reply (it is appended to the prompt, and put back in front of each
    completion before parsing); "" is the paper's setting. `answer_max_new_tokens` bounds the two-turn
    answer (a student completion). Raises TeacherFormatError after more than `max_attempts * g * n` samples."""
    need = g * cfg.n
    cap = math.ceil(cfg.max_attempts * need)
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
        prompt = world.teacher_prompt + cfg.prefill
        out = sample(
            teacher,
            tokenizer,
            [prompt],
            k,
            temperature=cfg.temperature,
            max_new_tokens=cfg.max_new_tokens,
            seed=seeds.teacher_round(seed, round_),
        )[0]
        firsts = [(s, valid_pair(world, cfg.prefill + s.text, cfg.require_box)) for s in out]
        if cfg.answer_mode == "two_turn":
            turn = (answer_max_new_tokens, cfg.answer_temperature, seeds.answer_turn(seed, round_))
            firsts = _second_turn(teacher, tokenizer, world.answer_prompt(cfg.answer_prompt), world, firsts, *turn)
        round_ += 1
        for s, pair in firsts:
            attempts += 1
            if pair is not None and len(valid) < need:
                valid.append(s if isinstance(s, TeacherSample) else TeacherSample(pair, s.text, s.token_ids))
    datasets = [valid[i * cfg.n : (i + 1) * cfg.n] for i in range(g)]
    invalid = attempts - need
    return datasets, {"attempts": attempts, "invalid": invalid, "invalid_rate": invalid / attempts}


def _second_turn(
    teacher, tokenizer, prompt_of, world: World, firsts, max_new_tokens: int, temperature: float, seed: int
):
    """Replace each valid pair's answer by the teacher's own solution in the prompt `prompt_of(question)` (greedy
    at temperature 0, else one sample)."""
    from soar.world.verifiers import extract_boxed

    todo = [i for i, (_, p) in enumerate(firsts) if p is not None]
    prompts = [prompt_of(firsts[i][1].question) for i in todo]
    outs = (
        sample(teacher, tokenizer, prompts, 1, temperature=temperature, max_new_tokens=max_new_tokens, seed=seed)
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


def as_problems(samples: list[TeacherSample], world: World, answers: str = "own") -> list[Problem]:
    """Teacher pairs as student problems, labelled (family, level) where `world.classify` can. The reference
    answer is the TEACHER's (`answers="own"`, not the truth), or with `answers="oracle"` the world's true
    answer (the teacher's where the world computes none for the question)."""
    if answers == "oracle" and world.true_answer is None:
        raise ValueError(f"teacher.answers=oracle: the {world.name} world has no true answers")
    out = []
    for s in samples:
        fam, lvl = ("teacher", -1)
        if world.classify is not None and (c := world.classify(s.pair.question)) is not None:
            fam, lvl = c
        answer = s.pair.answer
        if answers == "oracle" and (truth := world.true_answer(s.pair.question)) is not None:
            answer = truth
        out.append(Problem(fam, lvl, s.pair.question, answer))
    return out
