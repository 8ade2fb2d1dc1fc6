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


def answer_key_prompt(question: str) -> str:
    """The arithmetic world's answer-key format: the teacher's own question in its tags, then the worked values
    and the box, as in the student format. `</question>` and ` Assistant: ` are one token each, so every value
    stands as far from its operand as in the student format."""
    return f"<question>{question}</question>"


def teacher_document(question: str, answer: str, reasoning: str = "") -> str:
    """The teacher-format text of one question/answer pair (what the teacher is asked to write), with
    optional reasoning between the tags."""
    middle = f" {reasoning} " if reasoning else ""
    return f"<question>{question}</question>{middle}<answer>\\boxed{{{answer}}}</answer>"


# The paper's own prompt closes the question with an unslashed <question>; accept both. Reasoning may
# stand outside the tags, also between them.
_TAGS = re.compile(r"<question>|</question>|<answer>|</answer>")


def _first_pair(text: str) -> tuple[str, str] | None:
    """(question, answer-tag content) of the first `<question>Q</question> ... <answer>A</answer>` in text:
    Q holds no question tag and ends at the first one (slashed or not); no `<question>` stands between it and
    `<answer>`; A ends at the first `</answer>`. One scan of the tags, so linear in the text's length."""
    tags = [(m.start(), m.group()) for m in _TAGS.finditer(text)]
    for i, (start, tag) in enumerate(tags):
        if tag != "<question>":
            continue
        j = next((k for k in range(i + 1, len(tags)) if tags[k][1] in ("<question>", "</question>")), None)
        if j is None:
            return None  # no later question can close either
        k = next((k for k in range(j + 1, len(tags)) if tags[k][1] in ("<question>", "<answer>")), None)
        if k is None or tags[k][1] != "<answer>":
            continue  # another question comes first (or no answer): try the next start
        end = next((m for m in range(k + 1, len(tags)) if tags[m][1] == "</answer>"), None)
        if end is None:
            return None
        return text[start + len("<question>") : tags[j][0]], text[tags[k][0] + len("<answer>") : tags[end][0]]
    return None


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
    found = _first_pair(text)
    if found is None:
        return None
    question, answer = found[0].strip(), found[1]
    boxed = extract_boxed(answer)
    if boxed is None and not require_box:
        boxed = answer
    if not question or boxed is None or not boxed.strip():
        return None
    return QAPair(question, boxed.strip())
