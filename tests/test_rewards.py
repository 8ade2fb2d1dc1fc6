"""Teacher rewards and the promotion rule on hand-made histories."""

import math

import pytest

from soar.method.rewards import (
    dataset_reward,
    learnability_reward,
    median_index,
    moving_average,
    promotion_decision,
    teacher_reward,
)


def test_teacher_and_dataset_reward():
    assert teacher_reward(0.25, 0.125) == 0.125
    assert teacher_reward(0.0, 0.125) == -0.125
    assert dataset_reward([0.25, 0.125, 0.0, 0.125], 0.125) == pytest.approx(0.0)
    assert dataset_reward([0.5], 0.25) == 0.25
    with pytest.raises(ValueError):
        dataset_reward([], 0.0)


def test_learnability_reward():
    # s = 0 -> 0 (never solved); s = 1 -> 0 (too easy); s = 0.25 -> 0.75
    assert learnability_reward([0.0, 1.0, 0.25, 0.5]) == pytest.approx((0 + 0 + 0.75 + 0.5) / 4)


def test_moving_average():
    assert moving_average([0.0, 0.03, 0.03, 0.03], 3) == pytest.approx(0.03)
    assert moving_average([0.06], 3) == 0.06  # fewer values than the window
    assert math.isnan(moving_average([], 3))
    with pytest.raises(ValueError):
        moving_average([1.0], 0)


def test_median_index():
    assert median_index([0.3, 0.1, 0.2]) == 2
    assert median_index([0.4, 0.1, 0.3, 0.2]) == 3  # lower median of an even count: 0.2
    assert median_index([5.0]) == 0


def test_no_promotion_below_tau():
    p = promotion_decision([0.0, 0.01, 0.02], [0.02, 0.0], [[0.02, 0.02], [0.0, 0.0]], window=3, tau=0.01)
    assert p.rbar == pytest.approx(0.01) and not p.promote  # strictly greater is needed
    assert p.dataset is None and p.student is None


def test_promotion_picks_best_dataset_and_median_student():
    hist = [0.0, 0.02, 0.04]
    R = [0.01, 0.05, -0.02, 0.03]
    students = [[0.0, 0.02], [0.09, 0.03, 0.05, 0.01], [0.0], [0.03]]
    p = promotion_decision(hist, R, students, window=3, tau=0.01)
    assert p.promote and p.rbar == pytest.approx(0.02)
    assert p.dataset == 1 and p.student == 1  # sorted .01 .03 .05 .09 -> lower median .03 at index 1


def test_window_one_reacts_to_a_single_step():
    assert promotion_decision([-0.5, 0.2], [0.2], [[0.2]], window=1, tau=0.01).promote
    assert not promotion_decision([-0.5, 0.2], [0.2], [[0.2]], window=3, tau=0.01).promote


def test_promotion_waits_for_a_full_window():
    """At step 0 or right after a promotion a single large R-hat does not promote: the window must be full."""
    assert not promotion_decision([0.5], [0.5, 0.1], [[0.5], [0.1]], window=3, tau=0.01).promote
    assert not promotion_decision([0.5, 0.5], [0.5, 0.1], [[0.5], [0.1]], window=3, tau=0.01).promote
    p = promotion_decision([0.5, 0.5, 0.5], [0.5, 0.1], [[0.5], [0.1]], window=3, tau=0.01)
    assert p.promote and p.dataset == 0


def test_ties_go_to_the_first_best_dataset():
    p = promotion_decision([0.2], [0.1, 0.3, 0.3], [[0.1], [0.3, 0.2], [0.3]], window=1, tau=0.01)
    assert p.dataset == 1 and p.student == 1  # lower median of (0.3, 0.2) is 0.2, at index 1
