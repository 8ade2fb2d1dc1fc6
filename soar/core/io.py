"""JSONL and file helpers: errors name the file and line; writes are atomic (nothing half-written)."""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any


class DataError(ValueError):
    pass


def _no_constants(name: str):
    raise ValueError(f"{name} is not a number JSON allows")


def iter_jsonl(path: str | Path, allow_nan: bool = True) -> Iterator[tuple[int, Any]]:
    """(line number, parsed value) for every non-blank line of a JSONL file; a bad line, a binary or
    non-UTF-8 file, a folder, or (with allow_nan=False: input data) NaN or Infinity raise
    DataError('file:line:column: ...'). soar's own logs write NaN for a metric not measured."""
    path = Path(path)
    if path.is_dir():
        raise DataError(f"{path}: is a folder; expected a JSONL file")
    try:
        with path.open(encoding="utf-8") as f:
            for lineno, line in enumerate(f, 1):
                if not line.strip():
                    continue
                if "\0" in line:
                    raise DataError(f"{path}:{lineno}: a NUL byte: a binary file, not JSONL text")
                try:
                    yield lineno, json.loads(line, parse_constant=None if allow_nan else _no_constants)
                except json.JSONDecodeError as e:
                    raise DataError(f"{path}:{lineno}:{e.colno}: invalid JSON ({e.msg})") from None
                except ValueError as e:
                    raise DataError(f"{path}:{lineno}: {e}") from None
    except UnicodeDecodeError:
        raw = path.read_bytes()
        try:
            raw.decode("utf-8")
        except UnicodeDecodeError as e:  # the position in the whole file (the stream's is per buffer)
            line = raw.count(b"\n", 0, e.start) + 1
            raise DataError(f"{path}:{line}: not UTF-8 text (byte 0x{raw[e.start]:02x}); a binary file?") from None
        raise


def read_jsonl(path: str | Path, required: tuple[str, ...] = ()) -> list[dict]:
    """All records of a JSONL file. Blank lines are skipped; a bad line raises DataError('file:line: ...')."""
    path = Path(path)
    if not path.exists():
        raise DataError(f"{path}: file not found")
    return [rec for _, rec in read_jsonl_lines(path, required)]


def read_jsonl_lines(
    path: str | Path, required: tuple[str, ...] = (), allow_nan: bool = True
) -> list[tuple[int, dict]]:
    """(line number, record) of every record, checked as in `read_jsonl`."""
    path = Path(path)
    if not path.exists():
        raise DataError(f"{path}: file not found")
    out = []
    for lineno, rec in iter_jsonl(path, allow_nan):
        if not isinstance(rec, dict):
            raise DataError(f"{path}:{lineno}: expected a JSON object, got {type(rec).__name__}")
        missing = [k for k in required if k not in rec]
        if missing:
            raise DataError(f"{path}:{lineno}: missing field(s) {', '.join(missing)}")
        out.append((lineno, rec))
    return out


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def atomic_write_text(path: str | Path, text: str) -> None:
    """Write to a temporary file in the same folder, then rename over the target. The file gets the mode
    a plain write would give it: the target's own, or 0666 less the umask (not mkstemp's 0600)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    mode = path.stat().st_mode & 0o777 if path.exists() else 0o666 & ~_umask()
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
            os.fchmod(f.fileno(), mode)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_jsonl(path: str | Path, records: Iterable[dict]) -> None:
    atomic_write_text(path, "".join(json.dumps(r, sort_keys=False) + "\n" for r in records))


def append_jsonl(path: str | Path, records: Iterable[dict]) -> None:
    """Append whole lines in one write, then fsync (logs that must survive a crash)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    text = "".join(json.dumps(r) + "\n" for r in records)
    with path.open("a", encoding="utf-8") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())


def read_log(path: str | Path) -> list[dict]:
    """The records of an append-only log, dropping a torn last line (no newline, not valid JSON: the write a
    crash interrupted); a bad line anywhere else raises DataError as in `read_jsonl`."""
    path = Path(path)
    text = path.read_text(encoding="utf-8")
    head, _, last = text.rpartition("\n")
    if last.strip():
        try:
            json.loads(last)
        except json.JSONDecodeError:
            print(f"warning: {path}: dropped a torn last line (a write interrupted by a crash)")
            atomic_write_text(path, head + "\n" if head else "")
        else:  # whole but for its newline: complete it, or the next append would join it
            atomic_write_text(path, text + "\n")
    return read_jsonl(path)
