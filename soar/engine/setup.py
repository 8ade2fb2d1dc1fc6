"""The shared set-up of a command: which model, on which world, on what device, with which hard sets."""

from __future__ import annotations

from dataclasses import dataclass, field

from soar.core.config import at_least
from soar.core.parallel import ParallelConfig
from soar.engine.model import DEFAULT_MODEL, LoadConfig
from soar.world import PromptSettings, check_world


@dataclass
class ModelSetup:
    """Which model a command loads, on which world and device; stated once per command."""

    model: str = str(DEFAULT_MODEL)
    """base model: a local directory, a .gguf file, pkg:PACKAGE/FILE or a hub name"""
    world: str = "arithmetic"
    """arithmetic | math (LaTeX answers checked by math-verify; chat template when the tokenizer has one)"""
    load: LoadConfig = field(default_factory=LoadConfig)
    prompts: PromptSettings = field(default_factory=PromptSettings)
    """chat template or the paper's plain prompts (text worlds), and the fixed date a template writes"""
    """device, dtype, gradient checkpointing and LoRA of every model the command loads"""
    max_new_tokens: int = 64
    """longest student completion, everywhere a student writes one: screening, training, Q_R, evaluation
    (paper 1024; a worked solution of the arithmetic world is about 49 tokens)"""
    threads: int = 2
    """torch CPU threads"""

    def __post_init__(self) -> None:
        check_world(self.world)
        at_least(self, 1, "max_new_tokens", "threads")


@dataclass
class Setup(ModelSetup):
    """The set-up of a command that trains on the hard sets; nested configs never repeat these keys."""

    hard_dir: str = "data/hard"
    """folder with the fail@k train.jsonl / test.jsonl"""
    parallel: ParallelConfig = field(default_factory=ParallelConfig)
    """independent student trainings side by side (inner-loop students, the main job's arm x seed pairs);
    results do not depend on it, so a resumed run may change it"""
