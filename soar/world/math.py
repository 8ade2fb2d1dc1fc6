"""The math world: competition problems in LaTeX (MATH, HARP, OlympiadBench, CHAMP), checked by math-verify.

Prompts follow the paper ("Teacher generation", "Inner loop"), in our own words:
- student: the question, then a request for step-by-step reasoning and the final answer in `\\boxed{}`;
  the same prompt serves fail@k screening, the inner loop and evaluation.
- teacher: one fixed prompt with no example questions, asking for one new multi-step problem from the MATH
  subjects in `<question>...</question><answer>\\boxed{...}</answer>`, reasoning outside the tags.
With a chat model (a tokenizer that has a chat template) each prompt is one user turn of that template;
otherwise it is the paper's plain "User: ... Assistant: " text.
"""

from __future__ import annotations

from soar.world.base import DATE_STRING, World
from soar.world.formats import STUDENT_TEMPLATE
from soar.world.verifiers import math_equal_or_none, math_parses

SUBJECTS = (
    "Algebra",
    "Counting and Probability",
    "Geometry",
    "Intermediate Algebra",
    "Number Theory",
    "Prealgebra",
    "Precalculus",
)

STUDENT_INSTRUCTION = "Please reason step by step, and put your final answer within \\boxed{}."

TEACHER_INSTRUCTION = (
    "Write one new, original and challenging math problem that takes 2-3 steps to solve. It may come from any "
    "of these "
    f"subjects: {', '.join(SUBJECTS)}. Put the problem between <question> and </question>, and its final "
    "answer between <answer> and </answer> as \\boxed{...}. Keep any reasoning outside the tags. "
    "Format: <question>...</question><answer>\\boxed{...}</answer>"
)


def chat_prompt(tokenizer, user_text: str, date_string: str = DATE_STRING) -> str | None:
    """`user_text` as one user turn of the tokenizer's chat template, ready for the assistant's reply;
    None when the tokenizer has no chat template. A template that prints a date prints `date_string`,
    never today's. A BOS that the template writes is dropped when the tokenizer adds one itself on
    encoding (no double BOS)."""
    if tokenizer is None or not getattr(tokenizer, "chat_template", None):
        return None
    text = tokenizer.apply_chat_template(
        [{"role": "user", "content": user_text}], tokenize=False, add_generation_prompt=True, date_string=date_string
    )
    bos = tokenizer.bos_token
    if bos and text.startswith(bos):
        ids = tokenizer("x").input_ids
        if ids and ids[0] == tokenizer.bos_token_id:
            text = text[len(bos) :]
    return text


def _equal(gold: str, predicted: str) -> bool | None:
    return math_equal_or_none(gold, predicted)


def _parses(answer: str) -> bool:
    return math_parses(answer)


def math_world(tokenizer=None, date_string: str = DATE_STRING) -> World:
    """The math world, with `tokenizer`'s chat template in both prompts where it has one (None: the
    paper's plain prompts)."""
    chat = tokenizer is not None and bool(getattr(tokenizer, "chat_template", None))

    def prompt(text: str) -> str:
        return chat_prompt(tokenizer, text, date_string) if chat else STUDENT_TEMPLATE.format(question=text)

    def student(question: str) -> str:
        return prompt(f"{question}\n{STUDENT_INSTRUCTION}")

    return World("math", student, _equal, prompt(TEACHER_INSTRUCTION), parses=_parses)


MATH = math_world(None)
"""The math world with the paper's plain prompts (no chat template)."""
