"""Prompt formats shared by every world: the student prompt and the teacher's output format.

Student: the paper's plain conversation, "User: <question> Assistant:" then reasoning and `\\boxed{}`.
Teacher: `<question>...</question><answer>\\boxed{...}</answer>`, reasoning allowed outside the tags.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from soar.world.verifiers import extract_boxed

STUDENT_TEMPLATE = "User: {question} Assistant: "
TEACHER_PROMPT_ARITH = "User: Write a new problem. Assistant: "


def student_prompt(question: str) -> str:
    return STUDENT_TEMPLATE.format(question=question)


def teacher_document(question: str, answer: str, reasoning: str = "") -> str:
    """The teacher-format text of one question/answer pair (what the teacher is asked to write), with
    optional reasoning between the tags."""
    middle = f" {reasoning} " if reasoning else ""
    return f"<question>{question}</question>{middle}<answer>\\boxed{{{answer}}}</answer>"


# The paper's own prompt closes the question with an unslashed <question>; accept both. Reasoning may
# stand outside the tags, also between them.
_QA_RE = re.compile(
    r"<question>((?:(?!</?question>).)*?)(?:</question>|<question>)(?:(?!<question>).)*?<answer>(.*?)</answer>",
    re.DOTALL,
)


@dataclass(frozen=True)
class QAPair:
    question: str
    answer: str
    """the boxed content of the answer"""


def parse_teacher_output(text: str, require_box: bool = True) -> QAPair | None:
    """The first well-formed question/answer pair in the text, or None. Never raises.

    `require_box=False` (not the paper's rule; for tiny chat models that drop the box) takes the whole
    answer-tag content when it holds no `\\boxed{}`."""
    if not text:
        return None
    m = _QA_RE.search(text)
    if not m:
        return None
    question = m.group(1).strip()
    boxed = extract_boxed(m.group(2))
    if boxed is None and not require_box:
        boxed = m.group(2)
    if not question or boxed is None or not boxed.strip():
        return None
    return QAPair(question, boxed.strip())
