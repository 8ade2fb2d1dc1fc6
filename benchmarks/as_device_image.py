"""Run a script as the lent GPU machine's image would run it, on this CPU: before its one short lease.

    python benchmarks/as_device_image.py benchmarks/gpu_check.py --smoke   # or: make gpu-check-compat

The packages that image lacks (docs/PERFORMANCE.md, "Performance on a GPU") are made unimportable, so an import
of one fails here as it would there; its transformers version comes first on the path when `make
gpu-check-compat` has put it in runs/device-site. What this cannot copy: CUDA, torch 2.11, Python 3.12.
"""

from __future__ import annotations

import runpy
import sys

ABSENT = ("math_verify", "datasets", "wandb", "ray", "gguf", "champ_dataset", "antlr4")


def main() -> None:
    if len(sys.argv) < 2:
        sys.exit("usage: as_device_image.py SCRIPT [ARGS...]")
    for name in ABSENT:
        sys.modules[name] = None  # `import name` now raises ModuleNotFoundError (an ImportError)
    script, sys.argv = sys.argv[1], sys.argv[1:]
    runpy.run_path(script, run_name="__main__")


if __name__ == "__main__":
    main()
