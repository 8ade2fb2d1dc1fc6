"""The shared set-up of a command: which model, on which world, on what device, with which hard sets."""

from __future__ import annotations

from dataclasses import dataclass, field

from soar.engine.model import DEFAULT_MODEL, LoadConfig
from soar.world import check_world


@dataclass
class Setup:
    """Stated once per command; nested configs never repeat these keys."""

    model: str = str(DEFAULT_MODEL)
    """base model of teacher and students: a local directory, a .gguf file, pkg:PACKAGE/FILE or a hub name"""
    world: str = "arithmetic"
    """arithmetic | math (LaTeX answers checked by math-verify; chat template when the tokenizer has one)"""
    load: LoadConfig = field(default_factory=LoadConfig)
    """device, dtype, gradient checkpointing and LoRA of every model the command loads"""
    hard_dir: str = "data/hard"
    """folder with the fail@k train.jsonl / test.jsonl"""
    max_new_tokens: int = 64
    """longest student completion, everywhere a student writes one: screening, training, Q_R, evaluation
    (paper 1024; a worked solution of the arithmetic world is about 49 tokens)"""
    threads: int = 2
    """torch CPU threads"""

    def __post_init__(self) -> None:
        check_world(self.world)
