"""Where one default outer step's time goes, and how much parallel workers save: printed as JSON, measured in
one run (no timed tests anywhere).

For each setting (`--settings`, e.g. `1x2` = 1 worker with 2 torch threads, `2x1` = 2 workers with one
thread each, `2x1:2` = the same with 2 threads in the driver for its own blocks) one teacher run of
`--steps` outer steps at the default SoarConfig (shipped model, data/hard),
in a fresh temporary folder; the figures are from the last step (the first pays the workers' start-up):
its seconds per block (the `time_*_s` metrics of metrics.jsonl), its total, and the speed-up over the first
setting. The whole run's wall time includes loading, start-up and checkpoints. `same_R_as_first`: every outer
step's R_k equals the first setting's (the result does not depend on workers or threads).

    python benchmarks/bench_parallel.py --settings 1x2 2x1 --steps 2
    python benchmarks/bench_parallel.py --settings 1x1 2x1 2x1:2 --steps 2
    python benchmarks/bench_parallel.py --settings 1x1 2x1 --set inner.micro_batch=128 teacher.micro_batch=128
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import tempfile
import time
from pathlib import Path

from soar.core.parallel import ParallelConfig
from soar.method.loop import SoarConfig, run_soar


def one_setting(spec: str, steps: int, backend: str, base: dict) -> dict:
    shape, _, driver = spec.partition(":")
    workers, threads = (int(x) for x in shape.split("x"))
    with tempfile.TemporaryDirectory() as d:
        cfg = SoarConfig(
            **base,
            out=str(Path(d) / "run"),
            outer_steps=steps,
            report_to=(),
            threads=int(driver or threads),
            parallel=ParallelConfig(workers=workers, threads_per_worker=threads, backend=backend),
        )
        t0 = time.perf_counter()
        folder = run_soar(cfg, progress=False)
        wall = time.perf_counter() - t0
        rows = [json.loads(x) for x in (folder / "metrics.jsonl").read_text().splitlines()]
    last = rows[-1]
    blocks = {k[5:-2]: v for k, v in last.items() if k.startswith("time_")}
    R = [row["R"] for row in rows]
    return {"setting": spec, "step_s": last["seconds"], "blocks_s": blocks, "run_wall_s": round(wall, 1), "R": R}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--settings", nargs="+", default=["1x2", "2x1"], help="WORKERSxTHREADS[:DRIVER_THREADS], first = reference"
    )
    ap.add_argument("--steps", type=int, default=2)
    ap.add_argument("--backend", default="local", choices=["local", "ray"])
    ap.add_argument(
        "--set", nargs="*", default=[], help="SoarConfig overrides as key=value or section.key=value (ints/floats)"
    )
    args = ap.parse_args()
    base: dict = {}
    nested: dict = {}
    for kv in args.set:
        k, _, v = kv.partition("=")
        section, _, key = k.rpartition(".")
        (nested.setdefault(section, {}) if section else base)[key] = float(v) if "." in v else int(v)
    defaults = SoarConfig()
    for section, values in nested.items():  # e.g. inner.micro_batch=128, teacher.micro_batch=128
        base[section] = dataclasses.replace(getattr(defaults, section), **values)
    rows = [one_setting(s, args.steps, args.backend, base) for s in args.settings]
    ref = rows[0]["step_s"]
    for r in rows:
        r["speedup_vs_first"] = round(ref / r["step_s"], 2)
        r["same_R_as_first"] = r["R"] == rows[0]["R"]
    info = {"machine": platform.processor() or platform.machine(), "cpus": os.cpu_count(), "backend": args.backend}
    print(json.dumps({"info": info, "outer_step": rows}, indent=1))


if __name__ == "__main__":
    main()
