"""SOAR: a teacher model learns to write stepping-stone problems for a student (arXiv 2601.18778).

The public API, importable from the top (`from soar import pass_at_k`); each name loads its module on first
use, so `import soar` stays light.
"""

from __future__ import annotations

import importlib

_API = {
    # the method
    "SoarConfig": "soar.method.loop",
    "run_soar": "soar.method.loop",
    "outer_step": "soar.method.loop",
    "TeacherConfig": "soar.method.teacher",
    "write_datasets": "soar.method.teacher",
    "teacher_reward": "soar.method.rewards",
    "dataset_reward": "soar.method.rewards",
    "learnability_reward": "soar.method.rewards",
    "promotion_decision": "soar.method.rewards",
    # the engine
    "rloo_advantages": "soar.engine.rloo",
    "train_rloo": "soar.engine.rloo",
    "sample": "soar.engine.sampling",
    "load_policy": "soar.engine.model",
    "evaluate": "soar.engine.evaluate",
    "pass_at_k": "soar.engine.metrics",
    "vendi_score": "soar.engine.metrics",
    # worlds and answer checking
    "make_world": "soar.world",
    "extract_boxed": "soar.world.verifiers",
    "math_equal": "soar.world.verifiers",
    # jobs
    "run_main": "soar.jobs.main",
}
__all__ = sorted(_API)


def __getattr__(name: str):
    if name not in _API:
        raise AttributeError(f"module 'soar' has no attribute {name!r}")
    return getattr(importlib.import_module(_API[name]), name)


def __dir__() -> list[str]:
    return __all__
