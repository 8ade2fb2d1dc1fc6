"""The World record: what the method needs to know of a task world (prompts, answer checking, analysis)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from soar.world.verifiers import extract_boxed

DATE_STRING = "26 Jul 2024"
"""the date written into chat templates that print one (Llama 3's default): the same prompt on every day"""


@dataclass
class PromptSettings:
    """How the text worlds (math) build prompts; the arithmetic world's plain prompt ignores them."""

    chat_template: bool = True
    """wrap each prompt as one user turn of the tokenizer's chat template (when it has one); False = the
    paper's plain "User: ... Assistant: " text"""
    date_string: str = DATE_STRING
    """the date a chat template writes (Llama 3 writes today's date unless told): fixed, so that screening,
    training, evaluation and a resumed run see byte-identical prompts"""


ANSWER_PROMPTS = ("student", "key")
"""the prompts a model's own answer to a question can be asked in (`teacher.answer_prompt`)"""


def check_answer_prompt(value: str, name: str = "answer_prompt") -> None:
    if value not in ANSWER_PROMPTS:
        raise ValueError(f"{name} must be one of {', '.join(ANSWER_PROMPTS)}, got {value!r}")


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
    sampling-free hard-set screen (`soar.jobs.hardset.solution_logprobs`)"""
    step_spans: Callable[[str], tuple[str, list[tuple[int, int]]] | None] | None = None
    """question -> (its worked solution, the character spans of the step values in it) where the world can say
    (arithmetic), for the teacher-forced Q_R metric (`soar.engine.evaluate.forced_step_credit`)"""
    final_split: Callable[[str, str], tuple[str, str] | None] | None = None
    """(completion, answer) -> (the completion up to where its final answer starts, the text that writes the
    answer there) where the world can say (arithmetic), for `soar.jobs.hardset.success_estimates`"""
    kind: Callable[[str], str | None] | None = None
    """question -> its kind for the report's plot of the teacher's question mix over outer steps (arithmetic:
    easy, a one-hard-step stone by its look-ahead, several hard steps, multiplication); None = unparsed"""

    answer_key_prompt: Callable[[str], str] | None = None
    """question -> the prompt of the teacher's answer turn in the world's answer-key format (arithmetic:
    `<question>Q</question>`), for `teacher.answer_prompt: key`; None = the world has none"""

    def answer_prompt(self, which: str) -> Callable[[str], str]:
        """question -> the prompt of a model's own answer: the student prompt, or the answer-key prompt (`key`)."""
        check_answer_prompt(which)
        if which == "student":
            return self.student_prompt
        if self.answer_key_prompt is None:
            raise ValueError(f"answer_prompt=key: the {self.name} world has no answer-key format")
        return self.answer_key_prompt

    def in_grammar(self, question: str) -> bool:
        """Is `question` one the world can read (arithmetic: its expression grammar; other worlds: always)?"""
        return self.true_answer is None or self.true_answer(question) is not None

    def solves(self, answer: str, completion: str) -> bool:
        """Does `completion` box an answer equal to the reference `answer` (the one test of a student sample)?"""
        return bool(self.is_equal(answer, extract_boxed(completion) or ""))

    def answer_parses(self, answer: str) -> bool:
        """Does the verifier read `answer` (`parses`, or else: the answer equals itself)?"""
        return self.parses(answer) if self.parses is not None else self.is_equal(answer, answer) is True
