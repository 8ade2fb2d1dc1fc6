"""Question sets shaped like one two-turn teacher dataset, for `research/rl_probe.py --mode inner --sets`.

Each set holds `--n` fresh questions with the model's own answers (temperature 1, or `--answer-temperature`;
student prompt, as rl_probe's `self_answered`, or `--answer-prompt key`; unparsable answers kept as "?"):
- good: mix level-1 stones whose hard step has look-ahead 2 (the stones the teacher can answer);
- good_true: the same questions with the world's true answers;
- unanswerable: mix level-1 stones whose hard step has look-ahead 4 (the teacher is almost always wrong);
- mul: multiplication level-1 problems (the distractor: no carry look-ahead to learn).

`--right K` makes the good set hold exactly K right answers (the first K right and n - K wrong ones of a
larger seeded pool, in the pool's order): how R grows with a self-answered set's right answers.

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
from soar.world.base import ANSWER_PROMPTS

SETS = {"good": ("mix", 2), "unanswerable": ("mix", 4), "mul": ("mul", 2)}
"""set name -> (family, look-ahead of the hard +/- step; ignored for mul)"""


def with_right(right: list[bool], n: int, k: int) -> list[int]:
    """Indices of the first k right and the first n - k wrong of a pool whose answers are `right`, in the
    pool's order; ValueError when the pool holds too few of either."""
    yes = [i for i, r in enumerate(right) if r][:k]
    no = [i for i, r in enumerate(right) if not r][: n - k]
    if len(yes) < k or len(no) < n - k:
        raise ValueError(f"the pool of {len(right)} holds {sum(right)} right answers: cannot pick {k} right of {n}")
    return sorted(yes + no)


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", required=True)
    ap.add_argument("--out-dir", required=True)
    ap.add_argument("--n", type=int, default=16)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--answer-temperature", type=float, default=1.0, help="of the own answers (0 = greedy)")
    ap.add_argument("--answer-prompt", default="student", choices=ANSWER_PROMPTS, help="as teacher.answer_prompt")
    ap.add_argument("--right", type=int, default=None, help="the good set holds exactly this many right answers")
    ap.add_argument("--pool", type=int, default=20, help="with --right: the pool is this many times --n questions")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    model, tok = load_policy(args.model)
    out = Path(args.out_dir)
    result: dict = {"model": args.model, "n": args.n, "seed": args.seed, "sets": {}}
    for j, (name, (family, run)) in enumerate(SETS.items()):
        rng = random.Random(args.seed * 100 + j)
        size = args.n * args.pool if name == "good" and args.right is not None else args.n
        true = [make_problem(family, 1, rng, min_run=run, max_run=run) for _ in range(size)]
        prompt_of = ARITHMETIC.answer_prompt(args.answer_prompt)
        answered = own_answers(
            model, tok, ARITHMETIC, true, args.seed * 100 + 50 + j, 64, args.answer_temperature, prompt_of
        )
        if size > args.n:
            keep = with_right([ARITHMETIC.is_equal(t.answer, a.answer) for t, a in zip(true, answered, strict=True)],
                              args.n, args.right)  # fmt: skip
            true, answered = [true[i] for i in keep], [answered[i] for i in keep]
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
