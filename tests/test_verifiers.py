"""Answer extraction and the shaped reward on good, malformed and adversarial text."""

import pytest

from soar.world.arithmetic import is_equal
from soar.world.verifiers import RewardShaping, extract_boxed, shaped_reward


@pytest.mark.parametrize(
    "text,expected",
    [
        ("so \\boxed{42}", "42"),
        ("\\boxed{1} then \\boxed{2}", "2"),  # the last box counts
        ("\\boxed{\\frac{1}{2}}", "\\frac{1}{2}"),  # nested braces
        ("\\boxed{12", None),  # unclosed
        ("\\boxed{7} and \\boxed{8", "7"),  # unclosed last box: fall back to the earlier one
        ("no box here", None),
        ("", None),
        (None, None),
        ("\\boxed{}", ""),
        ("}}}{{\\boxed{{}}}", "{}"),
    ],
)
def test_extract_boxed(text, expected):
    assert extract_boxed(text) == expected


S = RewardShaping()


@pytest.mark.parametrize(
    "completion,gold,expected",
    [
        ("12345 +11111=23456 \\boxed{23456}", "23456", S.correct),
        ("\\boxed{ 23456 }", "23456", S.correct),
        ("\\boxed{123456}", "23456", S.contains),  # reference appears inside the answer
        ("\\boxed{99}", "23456", S.boxed),
        ("\\boxed{__import__('os').system('x')}", "23456", S.boxed),  # never evaluated
        ("23456", "23456", S.no_box),
        ("\\boxed{23456", "23456", S.no_box),
    ],
)
def test_shaped_reward_table(completion, gold, expected):
    assert shaped_reward(completion, gold, is_equal) == expected


def test_unscorable_is_none():
    assert shaped_reward("\\boxed{1}", None, is_equal) is None
    assert shaped_reward("\\boxed{1}", "1", lambda g, p: None) is None


def test_shaping_is_configurable():
    custom = RewardShaping(correct=120, contains=20, boxed=10, no_box=0)
    assert shaped_reward("\\boxed{5}", "5", is_equal, custom) == 120


@pytest.mark.parametrize(
    "completion,gold,expected",
    [
        ("12345 +11111=23456 \\boxed{23456}", "23456", True),
        ("\\boxed{123456}", "23456", False),  # contains the reference, but is not it
        ("\\boxed{23456", "23456", False),  # unclosed box
        ("23456", "23456", False),  # no box
        ("\\boxed{1} \\boxed{23456}", "23456", True),  # the last box counts
        ("\\boxed{23456}", None, False),  # unscorable reference: not solved
    ],
)
def test_world_solves(completion, gold, expected):
    from soar.world import ARITHMETIC

    assert ARITHMETIC.solves(gold, completion) is expected
