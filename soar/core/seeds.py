"""Named seed streams: every random draw of a run is seeded from (run seed, step, stream, ...), so a resumed
run draws what an uninterrupted one would and nothing depends on state that is not saved."""

from __future__ import annotations


def derive(*parts: int) -> int:
    """A stable 31-bit seed from integers (one polynomial hash, the same on every platform)."""
    h = 0
    for p in parts:
        h = (h * 1_000_003 + int(p)) % (2**31 - 1)
    return h


# Streams of one outer step t of the SOAR loop: `derive(run_seed, t, STREAM, ...)`.
QR_DRAW = 1
"""which hard-train problems form Q_R"""
QR_SCORE = 2
"""the samples of Acc(., Q_R); the baseline and every student of step t share it, so their draws are paired"""
TEACHER = 3
"""the teacher's datasets"""
INTRINSIC = 4
"""Intrinsic-T's success-rate samples, per dataset k"""
STUDENT = 5
"""an inner-loop student's RLOO, per (dataset k, copy j)"""
PROMOTION = 6
"""the promoted student's extra `promotion_steps` of RLOO on its dataset"""

QUESTION_SETS = 7_000
"""the Base-T / Grounded-T / Intrinsic-T question sets of the main job (one seed for all three teachers)"""
PS_SELECTION = 0
"""the samples that pick PS among the promoted students"""
EDGE_TABLE = 1234
"""the premise's edge-of-learnability problems"""


FAIL_PASS = (1, 2)
"""`soar make-hard`: its first and second fail@k passes sample with `seed + FAIL_PASS[i]`"""
ESTIMATE = 3
"""`soar make-hard`: the success-estimate scratchpads sample with `seed + ESTIMATE`"""
SECOND_ESTIMATE = 4
"""`soar make-hard`: the second, independent estimate samples with `seed + SECOND_ESTIMATE`"""


def eval_seed(student_seed: int) -> int:
    """The held-out evaluation of student seed s: a stream apart from its training seed s."""
    return 10_000 + student_seed


def teacher_round(seed: int, round_: int) -> int:
    """Sampling round r of `write_datasets` (rounds repeat until g x n pairs are valid)."""
    return seed * 1000 + round_


def answer_turn(seed: int, round_: int) -> int:
    """The two-turn teacher's answer turn after round r. It equals the question turn of round r + 8 on a
    different prompt: harmless (different prompts), kept so that documented runs reproduce."""
    return seed * 1000 + round_ + 1 + 7
