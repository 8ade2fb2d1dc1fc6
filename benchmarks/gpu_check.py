"""GPU check: sampling and training throughput of a 1B-shaped Llama in bf16, MFU, and a few SOAR outer steps.

    python benchmarks/gpu_check.py                      # on the lent GPU machine (defaults: 1B shapes, bf16)
    python benchmarks/gpu_check.py --smoke                # the CPU smoke run: every size tiny (flags still override)

1. Throughput: a randomly initialised Llama with the shapes of Llama-3.2-1B (16 layers, width 2048, 32 heads,
   8 KV heads, MLP 8192, vocab 128256; 1.24B parameters) built on the device, so nothing large is copied in.
   Sampling: new tokens/s of the sampling seam's generator (KV cache, temperature 1) from random prompts, with
   each decoder (`hf`, `fused`), against plain Hugging Face `generate` on the same rows: the speed issue's GPU
   target is 4x plain `generate` at batch 256 on this shape.
   Training: completion tokens/s of one RLOO policy update (forward + backward + AdamW, with the KL reference
   forward), the student's inner-loop step.
   MFU = achieved FLOP/s / peak bf16 FLOP/s, with 2N FLOPs per sampled token and 8N per trained token
   (6N forward + backward of the policy, 2N forward of the reference; attention FLOPs left out).
2. LoRA students sharing one device (`--lora-students N`): N LoRA copies (rank `--lora-r`, every projection)
   over that one frozen base. Sampling `--lora-rows` rows each, one copy at a time (`hf` and `fused`) and all N
   in one lockstep batch (soar.engine.sampling.sample_copies' decoder, as `soar.lockstep` samples); and the
   device memory each student adds (its adapters, gradients and AdamW state after one RLOO update).
3. SOAR: `--outer-steps` outer steps of the real loop (soar.method.loop.run_soar) on the shipped arithmetic model
   and hard set (4 MB: fits the device machine's transfer limit; math-verify is not needed), in bf16.
4. Plain `generate` with the static cache on the rows of 1, with which it compiles the forward on a GPU (last:
   how long that compilation takes there is unknown).
Everything is printed as one JSON object, and written to --out after each section, so a section that fails or a
call that runs out of time keeps what was measured before it; a section's error is recorded as
`<section>_error` (the lent GPU machine gives one short try, and a peft or transformers there older than this
machine's must not cost the other sections).
"""

from __future__ import annotations

import argparse
import json
import platform
import random
import sys
import tempfile
import time
import traceback
from pathlib import Path

import torch
import transformers
from transformers import LlamaConfig, LlamaForCausalLM

from soar.engine.model import DEFAULT_MODEL, LoadConfig, clone_model, frozen
from soar.engine.rloo import RLOOConfig, policy_update
from soar.engine.sampling import _generate
from soar.method.loop import SoarConfig, TeacherConfig, run_soar

ROOT = Path(__file__).resolve().parent.parent
SHAPES = {
    "1b": dict(hidden_size=2048, num_hidden_layers=16, num_attention_heads=32, num_key_value_heads=8,
               intermediate_size=8192, vocab_size=128256),
    "tiny": dict(hidden_size=64, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                 intermediate_size=128, vocab_size=1000),
}  # fmt: skip
SMOKE = dict(shape="tiny", batch=4, prompt_len=8, new_tokens=8, train_steps=1, outer_steps=1, soar_sizes="tiny",
             lora_students=2, lora_rows=2, lora_new_tokens=4, lora_r=2)  # fmt: skip
"""`--smoke`: the sizes of the CPU smoke run (tests, `make gpu-check-compat`): it runs, its figures mean nothing"""
PEAK_BF16 = {"H100": 989e12, "H200": 989e12, "A100": 312e12, "L40S": 362e12, "A10": 125e12}
"""dense bf16 tensor-core peaks (SXM parts) by device-name substring"""


def peak_flops(device: str, override: float | None) -> float | None:
    if override:
        return override * 1e12
    if not device.startswith("cuda"):
        return None
    name = torch.cuda.get_device_name(device)
    return next((v for k, v in PEAK_BF16.items() if k in name), None)


def sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def plain_generate(model, prompts: list[list[int]], new_tokens: int, device: str, cache: str | None) -> dict:
    """New tokens/s of Hugging Face `generate` (temperature 1, no top-k) on the same rows, every row run to
    `new_tokens`. `cache="static"` is its preallocated cache, with which `generate` compiles the forward on a
    GPU: its warm-up is the same call (the compilation, and the shapes the timed call reuses), timed apart."""
    ids = torch.tensor(prompts, device=device)  # equal lengths: no padding
    extra = {"cache_implementation": cache} if cache else {}
    kw = dict(do_sample=True, temperature=1.0, top_k=0, pad_token_id=0, eos_token_id=None, **extra)
    mask = torch.ones_like(ids)
    with torch.no_grad():
        t = time.perf_counter()
        if cache:
            model.generate(ids, attention_mask=mask, max_new_tokens=new_tokens, min_new_tokens=new_tokens, **kw)
        else:
            model.generate(ids[:2], attention_mask=mask[:2], max_new_tokens=4, **kw)
        sync(device)
        warm = time.perf_counter() - t
        t = time.perf_counter()
        out = model.generate(ids, attention_mask=mask, max_new_tokens=new_tokens, min_new_tokens=new_tokens, **kw)
        sync(device)
    return {"tok_s": out.shape[0] * (out.shape[1] - ids.shape[1]) / (time.perf_counter() - t), "warmup_s": warm}


def static_generate(args, device: str, dtype: torch.dtype, dynamic_tok_s: float | None) -> dict:
    """Plain `generate` with the static cache on the throughput section's model and rows: the last section, as
    its compilation on a GPU can take minutes."""
    model, prompts = random_llama(args, device, dtype)
    got = plain_generate(model, prompts, args.new_tokens, device, "static")
    out = {"generate_static_tok_s": round(got["tok_s"], 1), "generate_static_warmup_s": round(got["warmup_s"], 1)}
    if dynamic_tok_s:
        out["generate_static_vs_generate"] = round(got["tok_s"] / dynamic_tok_s, 2)
    return out


def random_llama(args, device: str, dtype: torch.dtype):
    """The randomly initialised model of `--shape` (seed 0) and `--batch` random prompts of `--prompt-len`."""
    torch.manual_seed(0)
    cfg = LlamaConfig(**SHAPES[args.shape], max_position_embeddings=4096, tie_word_embeddings=True)
    with torch.device(device):
        model = LlamaForCausalLM(cfg).to(dtype)
    vocab = cfg.vocab_size
    prompts = [[random.Random(i).randrange(3, vocab) for _ in range(args.prompt_len)] for i in range(args.batch)]
    return model, prompts


def throughput(args, device: str, dtype: torch.dtype) -> dict:
    model, prompts = random_llama(args, device, dtype)
    n_params = sum(p.numel() for p in model.parameters())
    gen = torch.Generator(device=device).manual_seed(0)
    # eos = pad = 0, which a random model almost never samples: every row runs to max_new_tokens
    _generate(model, prompts[:2], 1.0, 4, [0], 0, [gen], "hf")  # warm-up
    sync(device)
    t = time.perf_counter()
    seqs, _ = _generate(model, prompts, 1.0, args.new_tokens, [0], 0, [gen], "hf")
    sync(device)
    dt_s = time.perf_counter() - t
    sampled = sum(len(s) for s in seqs)
    # the lean Llama decoder (soar.engine.decode), measured on a CPU only so far: is it faster here too?
    _generate(model, prompts[:2], 1.0, 4, [0], 0, [gen], "fused")
    sync(device)
    t = time.perf_counter()
    fused, _ = _generate(model, prompts, 1.0, args.new_tokens, [0], 0, [gen], "fused")
    sync(device)
    dt_f = time.perf_counter() - t
    generate = plain_generate(model, prompts, args.new_tokens, device, None)["tok_s"]

    ref = frozen(model)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-5)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 1.0)
    if args.gradient_checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    rows = [(p, s, random.Random(i).uniform(-1, 1)) for i, (p, s) in enumerate(zip(prompts, seqs, strict=True))]
    policy_update(model, ref, opt, sched, rows[:2], 0.001, 1.0, args.micro_batch, 0)  # warm-up
    sync(device)
    t = time.perf_counter()
    for _ in range(args.train_steps):
        policy_update(model, ref, opt, sched, rows, 0.001, 1.0, args.micro_batch, 0)
    sync(device)
    dt_t = time.perf_counter() - t
    trained = args.train_steps * sum(len(s) for s in seqs)
    peak = peak_flops(device, args.peak_tflops)
    out = {
        "shape": args.shape,
        "parameters": n_params,
        "batch": args.batch,
        "prompt_tokens": args.prompt_len,
        "new_tokens": args.new_tokens,
        "sample_tok_s": round(sampled / dt_s, 1),
        "sample_tok_s_fused": round(sum(len(s) for s in fused) / dt_f, 1),
        "generate_tok_s": round(generate, 1),
        "sample_hf_vs_generate": round(sampled / dt_s / generate, 2),
        "sample_fused_vs_generate": round(sum(len(s) for s in fused) / dt_f / generate, 2),
        "train_tok_s": round(trained / dt_t, 1),
        "peak_tflops": None if peak is None else peak / 1e12,
        "mfu_sample": None if peak is None else float(f"{2 * n_params * sampled / dt_s / peak:.3g}"),
        "mfu_train": None if peak is None else float(f"{8 * n_params * trained / dt_t / peak:.3g}"),
    }
    if device.startswith("cuda"):
        out["max_memory_gib"] = round(torch.cuda.max_memory_allocated() / 2**30, 2)
    del model, ref, opt
    return out


def lora_students(args, device: str, dtype: torch.dtype) -> dict:
    if args.lora_students <= 0:
        return {}
    from peft import LoraConfig, get_peft_model

    base, _ = random_llama(args, device, dtype)
    targets = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
    model = get_peft_model(base, LoraConfig(r=args.lora_r, lora_alpha=2 * args.lora_r, target_modules=targets))
    if device.startswith("cuda"):
        torch.cuda.synchronize()
        before = torch.cuda.memory_allocated()
    copies = [clone_model(model) for _ in range(args.lora_students)]
    gen = torch.Generator().manual_seed(0)
    for c in copies:  # nonzero B: each copy's rows really take its own adapters
        with torch.no_grad():
            for n, p in c.named_parameters():
                if "lora_B" in n:
                    p.copy_(torch.randn(p.shape, generator=gen).to(p) * 1e-3)
    vocab = base.config.vocab_size
    prompts = [[random.Random(i).randrange(3, vocab) for _ in range(args.prompt_len)] for i in range(args.lora_rows)]
    out: dict = {"lora_students": args.lora_students, "lora_r": args.lora_r, "lora_rows_each": args.lora_rows}
    new = args.lora_new_tokens
    for backend in ("hf", "fused"):
        _generate(copies[0], prompts[:2], 1.0, 4, [0], 0, [torch.Generator(device=device).manual_seed(0)], backend)
        sync(device)
        t = time.perf_counter()
        n_tok = 0
        for c in copies:
            seqs, _ = _generate(c, prompts, 1.0, new, [0], 0, [torch.Generator(device=device).manual_seed(0)], backend)
            n_tok += sum(len(s) for s in seqs)
        sync(device)
        out[f"lora_one_at_a_time_tok_s_{backend}"] = round(n_tok / (time.perf_counter() - t), 1)
    rows = [p for _ in copies for p in prompts]
    gens = [torch.Generator(device=device).manual_seed(0) for _ in copies]
    _generate(copies, rows[: 2 * len(copies)], 1.0, 4, [0], 0, gens, "fused", [2] * len(copies))
    sync(device)
    t = time.perf_counter()
    seqs, _ = _generate(copies, rows, 1.0, new, [0], 0, gens, "fused", [len(prompts)] * len(copies))
    sync(device)
    out["lora_lockstep_tok_s"] = round(sum(len(s) for s in seqs) / (time.perf_counter() - t), 1)
    out["lora_lockstep_vs_one_at_a_time_hf"] = round(out["lora_lockstep_tok_s"] / out["lora_one_at_a_time_tok_s_hf"], 2)
    train_rows = [(p, s, random.Random(i).uniform(-1, 1)) for i, (p, s) in enumerate(zip(prompts, seqs, strict=False))]
    for c in copies:  # one RLOO update each: gradients and AdamW state exist
        opt = torch.optim.AdamW([p for p in c.parameters() if p.requires_grad], lr=1e-5)
        sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 1.0)
        policy_update(c, None, opt, sched, train_rows[: args.micro_batch], 0.0, 1.0, args.micro_batch, 0)
        c.soar_opt = opt  # kept alive, as a student in training keeps it
    if device.startswith("cuda"):
        sync(device)
        per = (torch.cuda.memory_allocated() - before) / len(copies)
        total = torch.cuda.get_device_properties(device).total_memory
        out["lora_memory_per_student_gib"] = round(per / 2**30, 3)
        out["lora_base_gib"] = round(before / 2**30, 2)
        out["lora_max_memory_gib"] = round(torch.cuda.max_memory_allocated() / 2**30, 2)
        out["device_memory_gib"] = round(total / 2**30, 1)
    trainable = sum(p.numel() for p in copies[0].parameters() if p.requires_grad)
    out["lora_trainable_parameters"] = trainable
    del model, copies, base
    return out


def soar_steps(args, device: str) -> dict:
    if args.outer_steps <= 0:
        return {}
    tiny = args.soar_sizes == "tiny"
    with tempfile.TemporaryDirectory() as tmp:
        cfg = SoarConfig(
            model=str(DEFAULT_MODEL),
            hard_dir=str(ROOT / "data" / "hard"),
            out=str(Path(tmp) / "soar"),
            load=LoadConfig(device=device, dtype=args.dtype),
            outer_steps=args.outer_steps,
            r=1 if tiny else 2,
            qr_size=4 if tiny else 64,
            teacher=TeacherConfig(n=2 if tiny else 16, g=2 if tiny else 4),
            inner=RLOOConfig(steps=1 if tiny else 10, batch_size=2 if tiny else 8, group_size=2 if tiny else 32),
            threads=torch.get_num_threads(),
        )
        t = time.perf_counter()
        run_soar(cfg, progress=False)
        dt = time.perf_counter() - t
        rows = [json.loads(x) for x in (Path(cfg.out) / "metrics.jsonl").read_text().splitlines()]
    return {
        "soar_outer_steps": args.outer_steps,
        "soar_seconds_per_outer_step": round(dt / args.outer_steps, 2),
        "soar_step_seconds": [r["seconds"] for r in rows],
        "soar_rhat": [r["rhat"] for r in rows],
        "soar_sizes": {"r": cfg.r, "qr_size": cfg.qr_size, "n": cfg.teacher.n, "g": cfg.teacher.g,
                       "inner_steps": cfg.inner.steps, "inner_batch": cfg.inner.batch_size,
                       "inner_group": cfg.inner.group_size},
    }  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--shape", choices=sorted(SHAPES), default="1b")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--dtype", default="auto", help="auto = bfloat16 on CUDA, float32 on CPU")
    ap.add_argument("--batch", type=int, default=256, help="sequences sampled (and trained) together")
    ap.add_argument("--prompt-len", type=int, default=128)
    ap.add_argument("--new-tokens", type=int, default=256)
    ap.add_argument("--train-steps", type=int, default=3)
    ap.add_argument("--micro-batch", type=int, default=16)
    ap.add_argument("--gradient-checkpointing", action="store_true")
    ap.add_argument("--peak-tflops", type=float, default=None, help="peak bf16 TFLOP/s when not known by name")
    ap.add_argument("--lora-students", type=int, default=8, help="LoRA copies sharing the device (0 = skip)")
    ap.add_argument("--lora-r", type=int, default=16)
    ap.add_argument("--lora-rows", type=int, default=64, help="rows each LoRA copy samples")
    ap.add_argument("--lora-new-tokens", type=int, default=128)
    ap.add_argument("--outer-steps", type=int, default=3, help="SOAR outer steps on the arithmetic model (0 = skip)")
    ap.add_argument("--soar-sizes", choices=("default", "tiny"), default="default")
    ap.add_argument("--out", default=None, help="also write the JSON here")
    ap.add_argument("--smoke", action="store_true", help="tiny sizes everywhere (the CPU smoke run); flags override")
    if ap.parse_known_args()[0].smoke:
        ap.set_defaults(**SMOKE)
    args = ap.parse_args()
    device = args.device if args.device != "auto" else ("cuda" if torch.cuda.is_available() else "cpu")
    dtype = {"auto": torch.bfloat16 if device.startswith("cuda") else torch.float32}.get(args.dtype) or getattr(
        torch, args.dtype
    )
    result = {
        "device": torch.cuda.get_device_name(device) if device.startswith("cuda") else platform.processor() or "cpu",
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "dtype": str(dtype).removeprefix("torch."),
        "threads": torch.get_num_threads(),
    }
    sections = (
        ("throughput", lambda: throughput(args, device, dtype)),
        ("lora", lambda: lora_students(args, device, dtype)),
        ("soar", lambda: soar_steps(args, device)),
        ("generate_static", lambda: static_generate(args, device, dtype, result.get("generate_tok_s"))),
    )
    for name, run in sections:
        print(f"gpu_check: {name} ...", file=sys.stderr, flush=True)
        t = time.perf_counter()
        try:
            result.update(run())
        except Exception as e:  # one section's failure must not cost the others on a short lease
            traceback.print_exc()
            result[f"{name}_error"] = f"{type(e).__name__}: {e}"[:500]
        result[f"{name}_seconds"] = round(time.perf_counter() - t, 1)
        if device.startswith("cuda"):
            torch.cuda.empty_cache()
        if args.out:
            Path(args.out).write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
