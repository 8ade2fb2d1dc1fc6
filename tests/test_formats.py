"""Teacher-output parsing: well-formed, malformed and adversarial text never raises."""

import random
import re

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


# The regex the teacher-output parser used until 2026-12-02 (quadratic on long unclosed inputs); the
# one-pass parser must read every text the same way.
_OLD_QA = re.compile(
    r"<question>((?:(?!</?question>).)*?)(?:</question>|<question>)(?:(?!<question>).)*?<answer>(.*?)</answer>",
    re.DOTALL,
)


def _old_extract_boxed(text):
    start = text.rfind("\\boxed{")
    while start != -1:
        i, depth = start + 7, 1
        while i < len(text):
            depth += {"{": 1, "}": -1}.get(text[i], 0)
            if depth == 0:
                return text[start + 7 : i]
            i += 1
        start = text.rfind("\\boxed{", 0, start)
    return None


def test_one_pass_parsers_agree_with_the_old_regex_and_scan_on_random_texts():
    from soar.world.formats import _first_pair
    from soar.world.verifiers import extract_boxed

    pieces = ["<question>", "</question>", "<answer>", "</answer>", "\\boxed{", "{", "}", "12", " ", "x"]
    rng = random.Random(0)
    for _ in range(3000):
        text = "".join(rng.choice(pieces) for _ in range(rng.randint(0, 14)))
        m = _OLD_QA.search(text)
        assert _first_pair(text) == ((m.group(1), m.group(2)) if m else None), text
        assert extract_boxed(text) == (_old_extract_boxed(text) if text else None), text


def test_parsers_are_linear_on_pathological_inputs():
    """56 KB of unclosed boxes took the old extract_boxed 30 s; 1 MB must not take seconds."""
    import time

    from soar.world.verifiers import extract_boxed

    t0 = time.perf_counter()
    assert extract_boxed("\\boxed{" * 150_000) is None
    assert parse_teacher_output("<question>" + "<answer>\\boxed{" * 60_000) is None
    assert time.perf_counter() - t0 < 10  # linear: well under a second; the old parsers: hours
