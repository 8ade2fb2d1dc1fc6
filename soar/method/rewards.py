"""Teacher rewards and the promotion rule (pure functions, hand-checked in tests/test_rewards.py).

Paper (section "Grounded teacher reward" and "Promotion"):
- R(X_k) = Acc(student trained on X_k, Q_R) - Acc(baseline student, Q_R), averaged over r student copies.
- Rhat_t = mean_k R_k; Rbar_t = moving average of Rhat over a window of m steps; promote when Rbar_t > tau:
  k* = argmax_k R_k, the student with the MEDIAN reward among X_k*'s r copies becomes the baseline.
Choices where the paper is silent (docs/DESIGN.md):
- Before m steps exist, Rbar averages the steps there are.
- After a promotion the window is cleared: later rewards are measured against the new baseline.
- With an even r the lower of the two middle students is "the median" (the more conservative choice).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


def teacher_reward(trained_acc: float, baseline_acc: float) -> float:
    """Grounded reward of one trained student: its accuracy gain on Q_R over the baseline student."""
    return trained_acc - baseline_acc


def dataset_reward(trained_accs: Sequence[float], baseline_acc: float) -> float:
    """R_k: the mean grounded reward over the r students trained on dataset X_k."""
    if not trained_accs:
        raise ValueError("need at least one trained student")
    return sum(teacher_reward(a, baseline_acc) for a in trained_accs) / len(trained_accs)


def learnability_reward(success_rates: Sequence[float]) -> float:
    """Intrinsic-T's R_k: mean over the dataset's questions of r_i = 0 if s_i == 0 else 1 - s_i, where s_i
    is the student's success rate on question i (against the teacher's answer)."""
    if not success_rates:
        raise ValueError("need at least one question")
    return sum(0.0 if s == 0 else 1.0 - s for s in success_rates) / len(success_rates)


def moving_average(values: Sequence[float], window: int) -> float:
    """Mean of the last `window` values (of all of them while fewer exist)."""
    if window < 1:
        raise ValueError("window must be >= 1")
    if not values:
        return float("nan")
    tail = values[-window:]
    return sum(tail) / len(tail)


@dataclass(frozen=True)
class Promotion:
    promote: bool
    rbar: float
    """the moving average that was compared with tau"""
    dataset: int | None = None
    """k*: index of the best dataset (None when not promoting)"""
    student: int | None = None
    """index, among the r students of X_k*, of the one with the median reward"""


def median_index(values: Sequence[float]) -> int:
    """Index of the median value (lower median for an even count)."""
    order = sorted(range(len(values)), key=lambda i: values[i])
    return order[(len(values) - 1) // 2]


def promotion_decision(
    rhat_history: Sequence[float],
    dataset_rewards: Sequence[float],
    student_rewards: Sequence[Sequence[float]],
    window: int,
    tau: float,
) -> Promotion:
    """Promote when the moving average of Rhat over a full window (the last `window` steps since the last
    promotion, this one included) exceeds tau; never on fewer values (at step 0, or right after a promotion).
    The best dataset is the first with the largest R_k; its median student is the lower median for an even r.

    rhat_history: Rhat of every step since the last promotion, this one last; dataset_rewards: R_k of
    this step; student_rewards[k]: the r per-student rewards of X_k."""
    rbar = moving_average(rhat_history, window)
    if len(rhat_history) < window or not rbar > tau:
        return Promotion(False, rbar)
    k = max(range(len(dataset_rewards)), key=lambda i: dataset_rewards[i])
    return Promotion(True, rbar, k, median_index(student_rewards[k]))
