"""The one record every world shares: a question with its reference answer, a family and a level."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path

from soar.core.io import DataError, read_jsonl, write_jsonl


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
        return Problem(
            str(d.get("family", "")),
            int(d.get("level", 0)),
            str(d["question"]),
            str(d["answer"]),
            dict(d.get("meta", {})),
        )


def load_problems(path: str | Path) -> list[Problem]:
    """Problems from JSONL (fields: question, answer; optional family, level, meta)."""
    recs = read_jsonl(path, required=("question", "answer"))
    out = []
    for i, r in enumerate(recs, 1):
        try:
            out.append(Problem.from_dict(r))
        except (TypeError, ValueError) as e:
            raise DataError(f"{path}: record {i}: {e}") from None
    return out


def save_problems(path: str | Path, problems: list[Problem]) -> None:
    write_jsonl(path, [p.to_dict() for p in problems])
