"""Real math problem sets as `Problem`s: MATH, HARP, OlympiadBench, CHAMP, or any records with a field map.

Sources: a local file (`.jsonl`, `.json` holding a list, `.parquet`), a Hugging Face dataset name
`hf:OWNER/NAME` (through the `datasets` package; needs network, `pip install 'soar[hub]'`), or `champ`
(the CHAMP competition problems shipped offline in the `champ-dataset` PyPI package).

Formats (what a record holds, and how it becomes a question and a reference answer):
- `problems`: soar's own JSONL (question, answer; optional family, level, meta).
- `math`: MATH (Hendrycks): `problem`, `solution`; the answer is the last `\\boxed{}` of the solution (or an
  `answer` field where a copy has one); family = `type` (or `subject`), level = the N of "Level N".
- `harp`: HARP: `problem`, `answer`; family = `subject`, level = `level`.
- `olympiadbench`: OlympiadBench: `question`, `final_answer` (a list or a string; several answers are
  joined with ", "); only English, text-only records with a final answer are kept (the paper's "English,
  text-only, auto-verifiable" subset); family = `subfield` (or `subject`).
- `champ`: CHAMP (`_text`, `_answer`); only records whose answer is a plain number are kept (79 of 270),
  so math-verify checks them without doubt.
- `fields`: any records, with `fields` mapping soar's names to the record's: `question` and one of `answer`
  or `solution` (boxed answer taken from it) are required; `family` and `level` are optional.
Records that lack a required field raise DataError naming the file and line (JSONL) or record number.
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Iterator
from pathlib import Path

from soar.core.io import DataError, iter_jsonl
from soar.core.problems import Problem, load_problems
from soar.world.verifiers import extract_boxed

FORMATS = ("problems", "math", "harp", "olympiadbench", "champ", "fields")
_NUMERIC = re.compile(r"-?\d+(\.\d+)?")


def _records(source: str, split: str, hf_configs: tuple[str, ...]) -> Iterator[tuple[str, dict]]:
    """(where, record) pairs; `where` names the file and line or record for error messages."""
    if source.startswith("hf:"):
        yield from _hf_records(source[3:], split, hf_configs)
        return
    path = Path(source)
    if not path.exists():
        raise DataError(f"{path}: file not found")
    if path.suffix == ".parquet":
        try:
            import pyarrow.parquet as pq
        except ImportError:
            raise DataError(f"{path}: reading Parquet needs pyarrow: pip install 'soar[llm]'") from None
        for i, rec in enumerate(pq.read_table(path).to_pylist(), 1):
            yield f"{path}: row {i}", rec
    elif path.suffix == ".json":
        data = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(data, list):
            raise DataError(f"{path}: expected a JSON list of records")
        for i, rec in enumerate(data, 1):
            yield f"{path}: record {i}", rec
    else:  # JSONL
        for lineno, rec in iter_jsonl(path):
            yield f"{path}:{lineno}", rec


def _hf_records(name: str, split: str, hf_configs: tuple[str, ...]) -> Iterator[tuple[str, dict]]:
    try:
        import datasets
    except ImportError:
        raise DataError(
            f"hf:{name}: loading a Hugging Face dataset needs `datasets` and network: pip install 'soar[hub]' "
            "(or download it once and point the source at a local .jsonl/.parquet file)"
        ) from None
    for config in hf_configs or (None,):
        ds = datasets.load_dataset(name, config, split=split)
        label = f"hf:{name}" + (f"[{config}]" if config else "") + f"/{split}"
        for i, rec in enumerate(ds, 1):
            yield f"{label}: row {i}", dict(rec)


def _champ_records() -> Iterator[tuple[str, dict]]:
    from importlib import resources
    from importlib.util import find_spec

    if find_spec("champ_dataset") is None:
        raise DataError("source champ needs the champ-dataset package: pip install 'soar[math]'")
    path = resources.files("champ_dataset") / "dataset_files" / "v0.json"
    problems = json.loads(path.read_text(encoding="utf-8"))["problems"]
    for key, rec in problems.items():
        yield f"champ:{key}", rec


def _need(where: str, rec: dict, *keys: str) -> None:
    if not isinstance(rec, dict):
        raise DataError(f"{where}: expected a record (JSON object), got {type(rec).__name__}")
    missing = [k for k in keys if rec.get(k) is None]
    if missing:
        raise DataError(f"{where}: missing field(s) {', '.join(missing)} (have: {', '.join(sorted(rec))})")


def _level(value) -> int:
    m = re.search(r"\d+", str(value or ""))
    return int(m.group()) if m else 0


def _strip_dollars(s: str) -> str:
    s = s.strip()
    while len(s) >= 2 and s.startswith("$") and s.endswith("$"):
        s = s[1:-1].strip()
    return s


def _convert(fmt: str, where: str, rec: dict, fields: dict) -> Problem | None:
    """One record as a Problem; None when the format's filter leaves it out."""
    if fmt == "math":
        _need(where, rec, "problem", "solution")
        answer = rec.get("answer") or extract_boxed(rec["solution"])
        if answer is None:
            return None  # a solution without a box: no reference answer to check against
        fam = rec.get("type") or rec.get("subject") or "math"
        return Problem(str(fam), _level(rec.get("level")), rec["problem"], str(answer).strip(), {"source": where})
    if fmt == "harp":
        _need(where, rec, "problem", "answer")
        fam, answer = rec.get("subject") or "harp", str(rec["answer"]).strip()
        return Problem(str(fam), _level(rec.get("level")), rec["problem"], answer, {"source": where})
    if fmt == "olympiadbench":
        _need(where, rec, "question", "final_answer")
        if str(rec.get("language", "English")).lower() not in ("english", "en"):
            return None
        images = [k for k, v in rec.items() if k.startswith("image") and v]
        if images or "text-only" not in str(rec.get("modality", "text-only")).lower():
            return None
        ans = rec["final_answer"]
        answers = [_strip_dollars(str(a)) for a in (ans if isinstance(ans, list) else [ans]) if str(a).strip()]
        if not answers:
            return None
        fam = rec.get("subfield") or rec.get("subject") or "olympiad"
        return Problem(str(fam), 0, rec["question"], ", ".join(answers), {"source": where})
    if fmt == "champ":
        _need(where, rec, "_text", "_answer")
        answer = str(rec["_answer"]).strip()
        if not _NUMERIC.fullmatch(answer):
            return None
        return Problem(str(rec.get("category", "champ")), 0, rec["_text"], answer, {"source": where})
    if fmt == "fields":
        q, a, s = fields.get("question"), fields.get("answer"), fields.get("solution")
        if not q or not (a or s):
            raise DataError("format=fields needs fields.question and fields.answer or fields.solution")
        _need(where, rec, q, *([a] if a else [s]))
        answer = rec[a] if a else extract_boxed(rec[s])
        if answer is None:
            return None
        fam = rec.get(fields["family"]) if fields.get("family") else None
        lvl = _level(rec.get(fields["level"])) if fields.get("level") else 0
        return Problem(str(fam or "data"), lvl, str(rec[q]), _strip_dollars(str(answer)), {"source": where})
    raise DataError(f"unknown data format {fmt!r}; valid formats: {', '.join(FORMATS)}")


def load_math_problems(
    source: str,
    fmt: str = "problems",
    *,
    split: str = "test",
    hf_configs: tuple[str, ...] = (),
    fields: dict | None = None,
    limit: int = 0,
) -> list[Problem]:
    """Problems from `source` in format `fmt` (see the module docstring); `limit` > 0 keeps the first ones."""
    if fmt not in FORMATS:
        raise DataError(f"unknown data format {fmt!r}; valid formats: {', '.join(FORMATS)}")
    if fmt == "problems":
        out = load_problems(source)
        return out[:limit] if limit > 0 else out
    records = _champ_records() if source == "champ" else _records(source, split, tuple(hf_configs))
    out: list[Problem] = []
    skipped = 0
    for where, rec in records:
        p = _convert(fmt, where, rec, fields or {})
        if p is None:
            skipped += 1
            continue
        out.append(p)
        if limit > 0 and len(out) >= limit:
            break
    if skipped:
        print(f"{source}: kept {len(out)} {fmt} problems, left out {skipped} (filter or no answer)", file=sys.stderr)
    if not out:
        raise DataError(f"{source}: no usable {fmt} problems")
    return out
