"""`soar pretrain`: train the tiny base model of the arithmetic world from scratch.

Reproducible on CPU: the corpus is drawn from a seeded RNG, torch is seeded, and the step count (not
wall time) ends training. The shipped checkpoint records the exact command in PROVENANCE.json.
"""

from __future__ import annotations

import json
import random
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
from tqdm import tqdm

from soar.core.config import at_least, to_dict
from soar.engine.model import TinyModelConfig, build_char_tokenizer, build_tiny_model, save_policy
from soar.engine.rloo import lr_schedule
from soar.world.corpus import CorpusConfig, pretraining_document


@dataclass
class PretrainConfig:
    """Pretraining of the tiny arithmetic model."""

    out: str = "assets/tiny-arith"
    """where the model and tokenizer are written (HF format)"""
    seed: int = 0
    """seeds the corpus and the initialisation"""
    steps: int = 2200
    """optimizer steps"""
    batch_size: int = 64
    """documents per step"""
    lr: float = 1e-3
    """peak AdamW learning rate (cosine decay to 10%)"""
    warmup: int = 100
    """linear warm-up steps"""
    weight_decay: float = 0.01
    """AdamW weight decay"""
    threads: int = 2
    """torch CPU threads"""
    init: str | None = None
    """continue from this model folder instead of a fresh initialisation (`model` is then ignored)"""
    model: TinyModelConfig = field(default_factory=TinyModelConfig)
    corpus: CorpusConfig = field(default_factory=CorpusConfig)

    def __post_init__(self) -> None:
        at_least(self, 1, "steps", "batch_size", "threads")
        at_least(self, 0, "warmup", "weight_decay")


def make_batch(tokenizer, docs: list[tuple[str, str]]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Right-padded (ids, attention mask, labels); labels are -100 outside the targets."""
    seqs, labels = [], []
    for prompt, target in docs:
        p = tokenizer(prompt).input_ids
        t = tokenizer(target, add_special_tokens=False).input_ids + [tokenizer.eos_token_id]
        seqs.append(p + t)
        labels.append([-100] * len(p) + t)
    width = max(len(s) for s in seqs)
    ids = torch.full((len(seqs), width), tokenizer.pad_token_id)
    lab = torch.full((len(seqs), width), -100)
    mask = torch.zeros((len(seqs), width), dtype=torch.long)
    for i, (s, lb) in enumerate(zip(seqs, labels, strict=True)):
        ids[i, : len(s)] = torch.tensor(s)
        lab[i, : len(s)] = torch.tensor(lb)
        mask[i, : len(s)] = 1
    return ids, mask, lab


def _bucketed_batches(rng: random.Random, cfg: PretrainConfig, pool: int = 16):
    """Endless batches of documents of similar length (padding a random batch wastes compute). Drawn
    `pool` batches at a time, sorted by length, order shuffled."""
    while True:
        docs = [pretraining_document(rng, cfg.corpus) for _ in range(pool * cfg.batch_size)]
        docs.sort(key=lambda d: len(d[0]) + len(d[1]))
        chunks = [docs[i : i + cfg.batch_size] for i in range(0, len(docs), cfg.batch_size)]
        rng.shuffle(chunks)
        yield from chunks


def pretrain(cfg: PretrainConfig) -> dict:
    torch.set_num_threads(cfg.threads)
    rng = random.Random(cfg.seed)
    if cfg.init:
        from soar.engine.model import load_policy

        model, tokenizer = load_policy(cfg.init)
    else:
        tokenizer = build_char_tokenizer()
        model = build_tiny_model(tokenizer, cfg.model, cfg.seed)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay, betas=(0.9, 0.95))
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_schedule(cfg.steps, cfg.warmup, floor=0.1))
    model.train()
    t0, tokens, ema = time.time(), 0, None
    bar = tqdm(range(cfg.steps), desc="pretrain", dynamic_ncols=True)
    batches = _bucketed_batches(rng, cfg)
    for step in bar:
        ids, mask, lab = make_batch(tokenizer, next(batches))
        loss = model(input_ids=ids, attention_mask=mask, labels=lab).loss
        if not torch.isfinite(loss):
            raise FloatingPointError(f"pretraining loss became {loss.item()} at step {step}; lower the lr")
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        tokens += int(mask.sum())
        ema = loss.item() if ema is None else 0.98 * ema + 0.02 * loss.item()
        if step % 20 == 0:
            bar.set_postfix(loss=f"{ema:.3f}", tok_s=f"{tokens / (time.time() - t0):.0f}")
    elapsed = time.time() - t0
    save_policy(model, tokenizer, cfg.out)
    prov = {
        "command": "soar pretrain " + " ".join(sys.argv[2:]) if len(sys.argv) > 1 else "soar pretrain",
        "config": to_dict(cfg),
        "seconds": round(elapsed, 1),
        "tokens": tokens,
        "final_loss_ema": round(ema or float("nan"), 4),
        "parameters": sum(p.numel() for p in model.parameters()),
        "torch": torch.__version__,
    }
    Path(cfg.out, "PROVENANCE.json").write_text(json.dumps(prov, indent=2) + "\n")
    return prov
