"""Steps per second of `soar pretrain`'s step: eager, bf16 autocast, torch.compile, both; ratios in one run.

Each variant trains a copy of the model on the same length-bucketed batches of the careless corpus (the
shipped model's careless-stage flags) after `--warm` steps of warm-up (which hold torch.compile's
compilation; its seconds are printed).

    python benchmarks/bench_pretrain.py --threads 2

Prints one JSON object; measured figures are in docs/PERFORMANCE.md.
"""

from __future__ import annotations

import argparse
import json
import random
import time

import torch

from soar.engine.model import clone_model, load_policy
from soar.jobs.pretrain import PretrainConfig, _bucketed_batches, make_batch
from soar.world.corpus import CorpusConfig

VARIANTS = ("eager", "bf16", "compile", "compile_bf16")


def steps_per_s(model, batches, variant: str, warm: int) -> tuple[float, float]:
    """(warm-up seconds, steps/s after it) of `variant` on `batches`."""
    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-5, betas=(0.9, 0.95))
    fwd = torch.compile(model, dynamic=True) if variant.startswith("compile") else model
    bf16 = variant.endswith("bf16")

    def step(ids, mask, lab):
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            loss = fwd(input_ids=ids, attention_mask=mask, labels=lab).loss
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    t = time.perf_counter()
    for b in batches[:warm]:
        step(*b)
    warm_s = time.perf_counter() - t
    t = time.perf_counter()
    for b in batches[warm:]:
        step(*b)
    return warm_s, (len(batches) - warm) / (time.perf_counter() - t)


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="assets/tiny-arith")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--warm", type=int, default=15)
    ap.add_argument("--steps", type=int, default=45, help="timed steps after the warm-up")
    ap.add_argument("--variants", default=",".join(VARIANTS))
    args = ap.parse_args(argv)
    bad = [v for v in args.variants.split(",") if v not in VARIANTS]
    if bad:
        raise SystemExit(f"--variants: {', '.join(bad)} not among {', '.join(VARIANTS)}")
    torch.set_num_threads(args.threads)
    base, tok = load_policy(args.model)
    corpus = CorpusConfig(
        hard_fraction=0.5, slip_by_lookahead=[0, 0, 0.35, 0.98, 0.98], mul_slip=0.97, slip_kind="diverse"
    )
    batches_of = _bucketed_batches(random.Random(0), PretrainConfig(corpus=corpus))
    batches = [make_batch(tok, next(batches_of)) for _ in range(args.warm + args.steps)]
    result: dict = {"threads": args.threads, "batch_size": PretrainConfig().batch_size, "variants": {}}
    for v in args.variants.split(","):
        warm_s, rate = steps_per_s(clone_model(base), batches, v, args.warm)
        result["variants"][v] = {"warm_up_s": round(warm_s, 1), "steps_per_s": round(rate, 2)}
    eager = result["variants"].get("eager", {}).get("steps_per_s")
    if eager:
        for r in result["variants"].values():
            r["vs_eager"] = round(r["steps_per_s"] / eager, 2)
    print(json.dumps(result, indent=1))
    return result


if __name__ == "__main__":
    main()
