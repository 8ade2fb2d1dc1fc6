"""The one record every world shares: a question with its reference answer, a family and a level."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path

from soar.core.io import DataError, read_jsonl_lines, write_jsonl


@dataclass(frozen=True)
class Problem:
    """A question and its reference answer. `family`/`level` are the world's difficulty coordinates
    (arithmetic: operation and look-ahead; MATH: subject and level)."""

    family: str
    level: int
    question: str
    answer: str
    meta: dict = field(default_factory=dict, compare=False, hash=False)

    def to_dict(self) -> dict:
        return asdict(self)

    @staticmethod
    def from_dict(d: dict) -> Problem:
        """From a JSON record: question and answer are non-empty text (an integer answer is read as its
        digits), level an integer; null, booleans and other types are refused."""
        for key in ("question", "answer"):
            v = d.get(key)
            if isinstance(v, bool) or not isinstance(v, str | int) or (isinstance(v, str) and not v.strip()):
                raise ValueError(f"field {key!r} must be non-empty text, got {v!r}")
        level, family = d.get("level", 0), d.get("family", "")
        if isinstance(level, bool) or not isinstance(level, int):
            raise ValueError(f"field 'level' must be an integer, got {level!r}")
        if not isinstance(family, str):
            raise ValueError(f"field 'family' must be text, got {family!r}")
        meta = d.get("meta", {})
        if not isinstance(meta, dict):
            raise ValueError(f"field 'meta' must be an object, got {meta!r}")
        return Problem(family, level, str(d["question"]), str(d["answer"]), dict(meta))


def load_problems(path: str | Path, in_grammar=None) -> list[Problem]:
    """Problems from JSONL (fields: question, answer; optional family, level, meta). `in_grammar`
    (question -> bool), where the world has a grammar, refuses questions outside it; errors name the line."""
    out = []
    for lineno, r in read_jsonl_lines(path, required=("question", "answer"), allow_nan=False):
        try:
            p = Problem.from_dict(r)
        except (TypeError, ValueError) as e:
            raise DataError(f"{path}:{lineno}: {e}") from None
        if in_grammar is not None and not in_grammar(p.question):
            raise DataError(f"{path}:{lineno}: the question {p.question[:80]!r} is outside the world's grammar")
        out.append(p)
    return out


def save_problems(path: str | Path, problems: list[Problem]) -> None:
    write_jsonl(path, [p.to_dict() for p in problems])
