"""The math-verify worker: `python -m soar.world.checker` reads one JSON request per line on stdin
(`{"op": "verify", "args": [...]}`) and writes one JSON reply per line on stdout (`{"ok": true, "value": ...}`).

A separate interpreter started with `-m` never re-imports the caller's `__main__`, so the checker works from
a plain script without a main guard, `python -c`, standard input, a notebook or a thread; and a check that
hangs is ended by killing this process (soar.world.verifiers).
"""

from __future__ import annotations

import json
import os
import sys
import time


def _as_math(s: str) -> str:
    """A bare answer wrapped as inline LaTeX, which math-verify's LaTeX extraction reads."""
    s = s.strip()
    return s if s.startswith("$") or s.startswith("\\(") or s.startswith("\\[") else f"${s}$"


def verify(gold: str, predicted: str, soft_timeout: int) -> bool:
    """math-verify's verdict."""
    from math_verify import parse
    from math_verify import verify as mv_verify

    g = parse(_as_math(gold), parsing_timeout=soft_timeout)
    p = parse(_as_math(predicted), parsing_timeout=soft_timeout)
    return bool(g and p and mv_verify(g, p, timeout_seconds=soft_timeout))


def parses(answer: str, soft_timeout: int) -> bool:
    """Does math-verify read a symbolic expression (not just the raw string) from `answer`?"""
    from math_verify import parse

    return bool(parse(_as_math(answer), fallback_mode="no_fallback", parsing_timeout=soft_timeout))


def warm() -> bool:
    import math_verify  # noqa: F401  (the slow import happens once, before any timed call)

    return True


OPS = {"verify": verify, "parses": parses, "warm": warm, "sleep": time.sleep}
"""what a request may ask for (`sleep` lets the watchdog be tested)"""


def main() -> None:
    out = os.fdopen(os.dup(sys.stdout.fileno()), "w")
    sys.stdout = sys.stderr  # anything a library prints must not corrupt the replies
    for line in sys.stdin:
        try:
            request = json.loads(line)
            reply = {"ok": True, "value": OPS[request["op"]](*request["args"])}
        except Exception as e:  # a checker error is an answer, not a crash of the worker
            reply = {"ok": False, "value": f"{type(e).__name__}: {str(e)[:200]}"}
        out.write(json.dumps(reply) + "\n")
        out.flush()


if __name__ == "__main__":
    main()
