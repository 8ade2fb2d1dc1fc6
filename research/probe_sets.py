"""Question sets shaped like one two-turn teacher dataset, for `research/rl_probe.py --mode inner --sets`.

Each set holds `--n` fresh questions with the model's own temperature-1 answers (student prompt, as
rl_probe's `self_answered`; unparsable answers kept as "?"):
- good: mix level-1 stones whose hard step has look-ahead 2 (the stones the teacher can answer);
- good_true: the same questions with the world's true answers;
- unanswerable: mix level-1 stones whose hard step has look-ahead 4 (the teacher is almost always wrong);
- mul: multiplication level-1 problems (the distractor: no carry look-ahead to learn).

    python research/probe_sets.py --model runs/m17 --out-dir runs/m17-sets

Prints one JSON object: per set, its file and the share of answers that are right.
"""

from __future__ import annotations

import argparse
import json
import random
from pathlib import Path

import torch

from soar.core.problems import save_problems
from soar.engine.evaluate import own_answers
from soar.engine.model import load_policy
from soar.world import ARITHMETIC
from soar.world.arithmetic import make_problem

SETS = {"good": ("mix", 2), "unanswerable": ("mix", 4), "mul": ("mul", 2)}
"""set name -> (family, look-ahead of the hard +/- step; ignored for mul)"""


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", required=True)
    ap.add_argument("--out-dir", required=True)
    ap.add_argument("--n", type=int, default=16)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    model, tok = load_policy(args.model)
    out = Path(args.out_dir)
    result: dict = {"model": args.model, "n": args.n, "seed": args.seed, "sets": {}}
    for j, (name, (family, run)) in enumerate(SETS.items()):
        rng = random.Random(args.seed * 100 + j)
        true = [make_problem(family, 1, rng, min_run=run, max_run=run) for _ in range(args.n)]
        answered = own_answers(model, tok, ARITHMETIC, true, args.seed * 100 + 50 + j, 64)
        right = sum(ARITHMETIC.is_equal(t.answer, a.answer) for t, a in zip(true, answered, strict=True))
        save_problems(out / f"{name}.jsonl", answered)
        result["sets"][name] = {"file": str(out / f"{name}.jsonl"), "right": round(right / args.n, 4)}
        if name == "good":
            save_problems(out / "good_true.jsonl", true)
            result["sets"]["good_true"] = {"file": str(out / "good_true.jsonl"), "right": 1.0}
    print(json.dumps(result, indent=1))
    return result


if __name__ == "__main__":
    main()
