"""Answer extraction, math answer checking (math-verify) and the paper's shaped student reward.

None of these raise on model text; the math check never hangs (a worker process with a hard timeout)."""

from __future__ import annotations

import functools
import importlib.util
import json
import re
import select
import subprocess
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal

BOX = "\\boxed{"


def extract_boxed(text: str | None) -> str | None:
    """Content of the last `\\boxed{...}` in text, with nested braces; None if absent or unclosed. One pass:
    braces are matched with a stack, then the last box whose brace closes wins."""
    if not text:
        return None
    close: dict[int, int] = {}  # position of "{" -> position of its matching "}"
    stack: list[int] = []
    for i, ch in enumerate(text):
        if ch == "{":
            stack.append(i)
        elif ch == "}" and stack:
            close[stack.pop()] = i
    starts = [m.end() - 1 for m in re.finditer(re.escape(BOX), text)]  # the box's own "{"
    for brace in reversed(starts):
        if brace in close:
            return text[brace + 1 : close[brace]]
    return None


@dataclass(frozen=True)
class RewardShaping:
    """The paper's student reward. The extracted text shows 120/20/10, read here as 1.0/0.2/0.1."""

    correct: float = 1.0
    """boxed and verified equal to the reference"""
    contains: float = 0.2
    """boxed, not verified, but the reference string appears inside the extracted answer"""
    boxed: float = 0.1
    """boxed otherwise"""
    no_box: float = 0.0
    """no (closed) box at all"""


def shaped_reward(
    completion: str,
    gold: str | None,
    is_equal: Callable[[str, str], bool | None],
    shaping: RewardShaping = RewardShaping(),
) -> float | None:
    """Reward of one completion against a reference answer.

    Returns None (unscorable: left out of the RLOO baseline) when there is no reference or the checker
    could not decide (`is_equal` returned None, e.g. a verifier timeout)."""
    if gold is None:
        return None
    pred = extract_boxed(completion)
    if pred is None:
        return shaping.no_box
    ok = is_equal(gold, pred)
    if ok is None:
        return None
    if ok:
        return shaping.correct
    if gold.strip() and gold.strip() in pred:
        return shaping.contains
    return shaping.boxed


# ------------------------------------------------------------------------------------------------------
# Symbolic equivalence with math-verify, in a worker process with a hard timeout.
#
# math-verify bounds its own work with `signal.alarm`, which works only in a main thread and cannot stop a
# long computation inside C code (a huge integer power, say). So every check runs in one long-lived worker
# process (its main thread: math-verify's own timeouts work there), and the caller waits at most
# `hard_timeout` seconds; a worker that does not answer is killed and replaced, and the answer is None
# (unscorable: left out of the RLOO baseline). Results are cached, so a pathological answer costs its
# timeout once per process.

_NUMBER = re.compile(r"[+-]?(\d+(\.\d*)?|\.\d+)")
_CACHE_SIZE = 100_000


class _Worker:
    """One checker process (`python -m soar.world.checker`); `call` returns (ok, value), or None when the
    check timed out, the process died or could not start (the caller then treats the answer as unscorable)."""

    def __init__(self) -> None:
        self.proc: subprocess.Popen | None = None
        self.lock = threading.Lock()

    def _start(self, startup_timeout: float) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "soar.world.checker"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,  # math-verify logs each timeout with its whole input
            text=True,
        )
        if self._ask("warm", (), startup_timeout) is None:
            self._stop()
            raise RuntimeError(f"the math-verify worker did not start within {startup_timeout:.0f} s")

    def _ask(self, op: str, args: tuple, timeout: float):
        assert self.proc is not None and self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(json.dumps({"op": op, "args": list(args)}) + "\n")
        self.proc.stdin.flush()
        ready, _, _ = select.select([self.proc.stdout], [], [], timeout)
        line = self.proc.stdout.readline() if ready else ""
        if not line:
            return None
        reply = json.loads(line)
        return reply["ok"], reply["value"]

    def _stop(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait()
        self.proc = None

    def call(self, op: str, args: tuple, timeout: float, startup_timeout: float = 120.0):
        with self.lock:
            try:
                if self.proc is None or self.proc.poll() is not None:
                    self._stop()
                    self._start(startup_timeout)
                out = self._ask(op, args, timeout)
            except (OSError, ValueError, RuntimeError):
                out = None
            if out is None:
                self._stop()  # stuck, dead or never started: the next call starts a fresh worker
            return out


_WORKER = _Worker()


def _require_math_verify() -> None:
    if importlib.util.find_spec("math_verify") is None:
        raise ImportError(
            "math answer checking needs math-verify: pip install 'soar[math]' "
            "(math-verify and antlr4-python3-runtime==4.13.2)"
        )


@functools.lru_cache(maxsize=_CACHE_SIZE)
def math_equal_or_none(gold: str, predicted: str, soft_timeout: int = 3, hard_timeout: float = 15.0) -> bool | None:
    """Like `math_equal`, but None when the check timed out (the reward treats it as unscorable)."""
    gold, predicted = (gold or "").strip(), (predicted or "").strip()
    if not gold or not predicted:
        return False
    if _NUMBER.fullmatch(gold) and _NUMBER.fullmatch(predicted):  # the common case, without the worker
        return Decimal(gold) == Decimal(predicted)
    _require_math_verify()
    out = _WORKER.call("verify", (gold, predicted, soft_timeout), hard_timeout)
    if out is None:
        return None
    ok, value = out
    return bool(value) if ok else False


@functools.lru_cache(maxsize=_CACHE_SIZE)
def math_parses(answer: str, soft_timeout: int = 3, hard_timeout: float = 15.0) -> bool:
    """True if math-verify parses `answer` into a symbolic expression (the paper's validity check of a
    teacher's boxed answer); False for empty, unparsable or timed-out answers."""
    answer = (answer or "").strip()
    if not answer:
        return False
    if _NUMBER.fullmatch(answer):
        return True
    _require_math_verify()
    out = _WORKER.call("parses", (answer, soft_timeout), hard_timeout)
    return out is not None and out[0] and bool(out[1])


def math_equal(gold: str, predicted: str) -> bool:
    """Is `predicted` (a bare answer, e.g. the content of `\\boxed{}`) mathematically equal to `gold`?

    math-verify's `verify(parse(gold), parse(predicted))`, each wrapped in `$...$`; unparsable or empty
    answers are not equal; a check that exceeds the hard timeout counts as not equal. Never raises on model
    text, never hangs."""
    return bool(math_equal_or_none(gold, predicted))
