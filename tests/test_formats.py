"""Teacher-output parsing: well-formed, malformed and adversarial text never raises."""

import pytest

from soar.world.formats import QAPair, parse_teacher_output, student_prompt, teacher_document


@pytest.mark.parametrize(
    "text,expected",
    [
        ("<question>1+2</question><answer>\\boxed{3}</answer>", QAPair("1+2", "3")),
        ("think first <question> 1+2 </question>\n<answer>so \\boxed{3}</answer> done", QAPair("1+2", "3")),
        ("<question>1+2<question><answer>\\boxed{3}</answer>", QAPair("1+2", "3")),  # paper's unslashed tag
        ("<question>1+2</question><answer>3</answer>", None),  # no box
        ("<question>1+2</question>", None),  # no answer
        ("<answer>\\boxed{3}</answer>", None),  # no question
        ("<question></question><answer>\\boxed{3}</answer>", None),  # empty question
        ("<question>x</question><answer>\\boxed{}</answer>", None),  # empty box
        ("<question>x</question><answer>\\boxed{3</answer>", None),  # unclosed box
        ("", None),
        ("<question>" * 50, None),
    ],
)
def test_parse_teacher_output(text, expected):
    assert parse_teacher_output(text) == expected


def test_roundtrip_of_teacher_document():
    assert parse_teacher_output(teacher_document("12+3", "15")) == QAPair("12+3", "15")


def test_student_prompt():
    assert student_prompt("1+2") == "User: 1+2 Assistant: "


def test_reasoning_between_the_tags_is_allowed():
    doc = teacher_document("11111 +11111", "22222", "User: 11111 +11111 Assistant: 11111 =22222")
    assert parse_teacher_output(doc) == QAPair("11111 +11111", "22222")
    # a box in the reasoning does not replace the one inside <answer>
    assert parse_teacher_output("<question>q</question> \\boxed{1} <answer>\\boxed{2}</answer>") == QAPair("q", "2")
    # a second <question> between the tags breaks the pair: the later, well-formed pair is taken
    text = "<question>a</question> junk <question>b</question><answer>\\boxed{3}</answer>"
    assert parse_teacher_output(text) == QAPair("b", "3")


def test_lenient_teacher_parse_takes_a_bare_answer_only_when_asked():
    text = "<question>What is 3+3?</question>\n<answer>6</answer>"
    assert parse_teacher_output(text) is None  # the paper's rule: the answer needs \boxed{}
    assert parse_teacher_output(text, require_box=False) == QAPair("What is 3+3?", "6")
