"""Speed of the default model on this machine, printed as JSON (no timed tests anywhere).

- sampling: new tokens/s of `soar.engine.sampling.sample` with each decoder backend (`fused`: the lean
  Llama forward, the CPU default; `hf`: the model's own forward) on 64 rows (64 distinct prompts, and 8
  prompts x 8 samples as in the loop) and 256, and of plain Hugging Face `generate` (dynamic and static
  cache) on the same rows in the same run; the ratios are the figures to compare across machines;
- the split of a sampling call into its prefill and its decoding steps, for `fused` and plain `generate` at
  both shapes (a call of one new token against a whole one): the prefill is the same work for both, so it
  bounds the ratio a faster decoding step can reach; `fused_step_ms_for_2x_*` is the step that would give 2x;
- Q_R scoring: seconds of one Acc(student, Q_R) by sampled step credit (the arithmetic default) and by the
  teacher-forced step probability (`qr_metric: forced`), and their ratio;
- the RLOO update on the same 8 x 16 rows with the model's own forward over every row and with each distinct
  prompt run once (the CPU default), and their ratio;
- training: completion tokens/s of the RLOO update (forward + backward, with the KL reference pass);
- one RLOO step at the default sizes (8 prompts x 16 samples) on the hard train set, split into
  sampling and update time;
- `--lockstep`: instead, one outer step's inner loop of LoRA students (the default g x r = 8 copies, 10 RLOO
  steps each and their Q_R scoring) one copy at a time against all of them in lockstep (`soar.lockstep`),
  alternating, with the check that both give the same accuracies.
"""

from __future__ import annotations

import argparse
import json
import platform
import random
import statistics
import time

import torch

from soar.core.problems import load_problems
from soar.engine.model import DEFAULT_MODEL, load_policy
from soar.engine.rloo import RLOOConfig, cycling_batches, train_rloo
from soar.engine.sampling import encode_prompts, sample
from soar.engine.setup import Setup
from soar.method.loop import SoarConfig, qr_accuracy
from soar.world import ARITHMETIC
from soar.world.arithmetic import make_problem


def bench_lockstep(args) -> dict:
    """Seconds of one outer step's inner loop of LoRA students, one at a time and in lockstep."""
    from soar.engine.model import LoadConfig, LoraSettings
    from soar.method.loop import CopyTask, InnerContext, train_copies, train_copy

    cfg = SoarConfig(model=args.model, load=LoadConfig(lora=LoraSettings(r=args.lora_r)), lockstep=True)
    model, tok = load_policy(args.model, opts=cfg.load)
    ctx = InnerContext(model, tok, ARITHMETIC, cfg)
    rng = random.Random(0)
    qr = rng.sample(load_problems(args.hard), cfg.qr_size)
    sets = []
    for _ in range(cfg.teacher.g):  # stones with their true answers stand in for the teacher's datasets
        sets.append([make_problem("mix", 1, rng) for _ in range(cfg.teacher.n)])
    tasks = [CopyTask(ps, qr, 0, k, j) for k, ps in enumerate(sets) for j in range(cfg.r)]
    times: dict[str, list[float]] = {"one_at_a_time": [], "lockstep": []}
    accs = {}
    for _ in range(args.rounds):
        t = time.perf_counter()
        accs["one_at_a_time"] = [train_copy(ctx, task)[0] for task in tasks]
        times["one_at_a_time"].append(time.perf_counter() - t)
        t = time.perf_counter()
        accs["lockstep"] = [r[0] for r in train_copies(ctx, tasks)]
        times["lockstep"].append(time.perf_counter() - t)
    med = {k: statistics.median(v) for k, v in times.items()}
    return {
        "lockstep_copies": len(tasks),
        "lora_r": args.lora_r,
        "inner_loop_s_one_at_a_time": round(med["one_at_a_time"], 1),
        "inner_loop_s_lockstep": round(med["lockstep"], 1),
        "lockstep_speedup": round(med["one_at_a_time"] / med["lockstep"], 2),
        "same_accuracies": accs["one_at_a_time"] == accs["lockstep"],
    }


def prompts_for(n: int, seed: int = 0) -> list[str]:
    rng = random.Random(seed)
    return [ARITHMETIC.student_prompt(make_problem("mix", None, rng, natural=True).question) for _ in range(n)]


def bench_sampling(model, tok, batch: int, max_new: int, backend: str, k: int = 1) -> float:
    """New tokens/s of `sample` on `batch` rows: batch / k distinct prompts, k samples each."""
    prompts = prompts_for(batch // k)
    sample(model, tok, prompts[:4], 1, max_new_tokens=8, seed=0, backend=backend)  # warm-up
    t = time.perf_counter()
    out = sample(model, tok, prompts, k, max_new_tokens=max_new, seed=1, batch_size=batch, backend=backend)
    dt = time.perf_counter() - t
    return sum(len(s.token_ids) for r in out for s in r) / dt


def hf_generate(model, tok, enc, max_new: int, **extra) -> torch.Tensor:
    """Plain `generate` at temperature 1 (no top-k) on the encoded rows `enc`, to EOS or `max_new` tokens: the new
    token ids (B, T)."""
    with torch.no_grad():
        out = model.generate(
            **enc,
            **extra,
            max_new_tokens=max_new,
            do_sample=True,
            temperature=1.0,
            top_k=0,
            pad_token_id=tok.pad_token_id,
            eos_token_id=tok.eos_token_id,
        )
    return out[:, enc.input_ids.shape[1] :]


def bench_hf_generate(model, tok, batch: int, max_new: int, cache: str | None = None, k: int = 1) -> float:
    """New tokens/s of plain `generate` (dynamic KV cache), or with `cache_implementation=cache` ("static"),
    on `batch` rows: batch / k distinct prompts, each repeated k times."""
    enc = tok([p for p in prompts_for(batch // k) for _ in range(k)], return_tensors="pt", padding=True)
    extra = {"cache_implementation": cache} if cache else {}
    hf_generate(model, tok, enc, 4, **extra)  # warm-up
    t = time.perf_counter()
    new = hf_generate(model, tok, enc, max_new, **extra)
    dt = time.perf_counter() - t
    n = 0
    for row in new.tolist():
        n += (row.index(tok.eos_token_id) + 1) if tok.eos_token_id in row else len(row)
    return n / dt


def bench_split(model, tok, k: int, max_new: int, rounds: int = 5) -> dict:
    """Milliseconds of the prefill and of one decoding step of `fused` and of plain `generate` on 64 rows of
    64 / k distinct prompts (medians of `rounds` alternating rounds): a call of one new token is the prefill
    and one draw, and the rest of a whole call, divided by its further tokens, is a step."""
    prompts = prompts_for(64 // k)
    enc = tok([p for p in prompts for _ in range(k)], return_tensors="pt", padding=True)

    def fused(n: int) -> int:
        out = sample(model, tok, prompts, k, max_new_tokens=n, seed=1, batch_size=64, backend="fused")
        return max(len(s.token_ids) for r in out for s in r)

    def generate(n: int) -> int:
        return hf_generate(model, tok, enc, n).shape[1]

    times: dict[tuple[str, int], list[float]] = {}
    tokens: dict[str, int] = {}
    for _ in range(rounds):
        for name, call in (("fused", fused), ("generate", generate)):
            for n in (1, max_new):
                t = time.perf_counter()
                got = call(n)
                times.setdefault((name, n), []).append(time.perf_counter() - t)
                if n > 1:
                    tokens[name] = got
    shape = "batch64" if k == 1 else f"{k}x{64 // k}"
    out: dict = {}
    for name in ("fused", "generate"):
        one, whole = (1000 * statistics.median(times[(name, n)]) for n in (1, max_new))
        out[f"{name}_prefill_ms_{shape}"] = round(one, 1)
        out[f"{name}_step_ms_{shape}"] = round((whole - one) / max(tokens[name] - 1, 1), 2)
        out[f"{name}_call_ms_{shape}"] = round(whole, 1)
    half = out[f"generate_call_ms_{shape}"] / 2 - out[f"fused_prefill_ms_{shape}"]
    out[f"fused_step_ms_for_2x_{shape}"] = round(half / max(tokens["fused"] - 1, 1), 2)
    return out


def bench_qr(model, tok, qr: list, max_new: int) -> dict:
    """Seconds of one Acc(student, Q_R) scoring (the default Q_R of 64 hard problems) by each `qr_metric` that
    samples at temperature 1 or forces the worked solution, medians of 3 alternating rounds."""
    runs: dict[str, list[float]] = {"partial_sampled": [], "forced": []}
    for r in range(3):
        for metric in runs:
            t = time.perf_counter()
            qr_accuracy(model, tok, ARITHMETIC, qr, SoarConfig(qr_metric=metric), r, max_new)
            runs[metric].append(time.perf_counter() - t)
    med = {m: statistics.median(v) for m, v in runs.items()}
    out = {f"qr_s_{m}": round(v, 3) for m, v in med.items()}
    out["qr_forced_speedup"] = round(med["partial_sampled"] / med["forced"], 1)
    return out


def bench_update(model, tok, problems: list, max_new: int) -> dict:
    """Seconds of one RLOO policy update (forward, backward, KL reference forward, AdamW) on the same 8 x 16
    sampled rows with the model's own forward over every row and with each distinct prompt run once
    (`soar.engine.decode.prefix_hidden`), medians of 3 alternating rounds."""
    import soar.engine.rloo as rloo
    from soar.engine.model import clone_model, frozen

    prompts = [ARITHMETIC.student_prompt(p.question) for p in problems[:8]]
    rows_out = sample(model, tok, prompts, 16, temperature=1.0, max_new_tokens=max_new, seed=0)
    prompt_ids = encode_prompts(tok, prompts)
    rows = [(prompt_ids[i], s.token_ids, 0.1 * (j % 3 - 1)) for i, r in enumerate(rows_out) for j, s in enumerate(r)]
    ref = frozen(clone_model(model))
    runs: dict[str, list[float]] = {"hf_forward": [], "shared_prompt": []}
    shares = rloo.shares_prompts
    try:
        for _ in range(3):
            for name in runs:
                rloo.shares_prompts = shares if name == "shared_prompt" else (lambda m: False)
                student = clone_model(model)
                opt = torch.optim.AdamW(student.parameters(), lr=5e-5)
                sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 1.0)
                t = time.perf_counter()
                rloo.policy_update(student, ref, opt, sched, rows, 0.001, 1.0, 128, tok.pad_token_id)
                runs[name].append(time.perf_counter() - t)
    finally:
        rloo.shares_prompts = shares
    med = {k: statistics.median(v) for k, v in runs.items()}
    out = {f"update_s_{k}": round(v, 3) for k, v in med.items()}
    out["update_shared_prompt_speedup"] = round(med["hf_forward"] / med["shared_prompt"], 2)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--model", default=str(DEFAULT_MODEL))
    ap.add_argument("--hard", default="data/hard/train.jsonl")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--steps", type=int, default=3, help="RLOO steps to time (mean reported)")
    ap.add_argument("--lockstep", action="store_true", help="time LoRA students in lockstep instead")
    ap.add_argument("--lora-r", type=int, default=8, help="--lockstep: adapter rank")
    ap.add_argument("--rounds", type=int, default=2, help="--lockstep: alternating rounds (median reported)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    if args.lockstep:
        print(json.dumps({"threads": args.threads, **bench_lockstep(args)}, indent=1))
        return
    model, tok = load_policy(args.model)
    max_new = Setup().max_new_tokens
    res: dict = {
        "machine": platform.processor() or platform.machine(),
        "threads": args.threads,
        "torch": torch.__version__,
        "parameters": sum(p.numel() for p in model.parameters()),
    }
    # The samplers alternate, 3 rounds each, medians reported: a single first measurement is skewed by
    # warm-up and CPU frequency changes. Two shapes of 64 rows: 64 distinct prompts, and 8 prompts x 8
    # samples, the shape of the inner loop's RLOO steps and of Q_R (every sampling call of the loop has k > 1).
    for shape, k in (("batch64", 1), ("8x8", 8)):
        runs: dict[str, list[float]] = {"fused": [], "hf": [], "generate": [], "generate_static": []}
        for _ in range(3):
            runs["fused"].append(bench_sampling(model, tok, 64, max_new, "fused", k))
            runs["hf"].append(bench_sampling(model, tok, 64, max_new, "hf", k))
            runs["generate"].append(bench_hf_generate(model, tok, 64, max_new, k=k))
            runs["generate_static"].append(bench_hf_generate(model, tok, 64, max_new, cache="static", k=k))
        tok_s = {name: statistics.median(v) for name, v in runs.items()}
        for name, v in tok_s.items():
            res[f"{name}_tok_s_{shape}"] = round(v)
        for name in ("fused", "hf", "generate_static"):
            res[f"{name}_vs_generate_{shape}"] = round(tok_s[name] / tok_s["generate"], 2)
    for k in (1, 8):
        res.update(bench_split(model, tok, k, max_new))
    big = {b: [] for b in ("fused", "hf")}
    for _ in range(2):
        for b in big:
            big[b].append(bench_sampling(model, tok, 256, max_new, b))
    for b, v in big.items():
        res[f"{b}_tok_s_batch256"] = round(statistics.median(v))
    res["fused_vs_hf_batch256"] = round(statistics.median(big["fused"]) / statistics.median(big["hf"]), 2)
    problems = load_problems(args.hard)
    res.update(bench_qr(model, tok, problems[: SoarConfig().qr_size], max_new))
    res.update(bench_update(model, tok, problems, max_new))
    cfg = RLOOConfig(steps=args.steps)
    hist = train_rloo(model, tok, ARITHMETIC, cycling_batches(problems, cfg.batch_size), cfg, 0, max_new)
    update_s = [h["step_s"] - h["sample_s"] for h in hist]
    res["rloo_step_s"] = round(sum(h["step_s"] for h in hist) / len(hist), 3)
    res["rloo_sample_s"] = round(sum(h["sample_s"] for h in hist) / len(hist), 3)
    res["rloo_update_s"] = round(sum(update_s) / len(hist), 3)
    res["train_tok_s"] = round(sum(h["completion_tokens"] for h in hist) / sum(update_s))
    res["rloo_sizes"] = {"batch_size": cfg.batch_size, "group_size": cfg.group_size, "kl_coef": cfg.kl_coef}
    print(json.dumps(res, indent=1))


if __name__ == "__main__":
    main()
