"""RLOO on verifiable rewards: the student engine (and, with another reward, the teacher's).

Math (pure functions, hand-checked in tests):
- `rloo_advantages`: A_ij = r_ij - mean_{l != j} r_il over the valid samples of prompt i.
- `policy_loss`: REINFORCE with those advantages plus a KL penalty to a frozen reference.

Departures from the paper, which leaves these unstated:
- The policy-gradient term is averaged over all completion tokens of the batch (token-level mean), so long
  and short completions weigh the same per token.
- The KL penalty is the k3 estimator exp(q - p) - (q - p) - 1 per token (q = reference log-prob), added
  to the loss with coefficient `kl_coef`; the reference is the policy at the start of this training run.
- One gradient step per batch (fully on-policy), so no importance ratio or clipping is needed.
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch.utils.checkpoint import checkpoint
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from soar.core.config import at_least
from soar.core.problems import Problem
from soar.engine.decode import prefix_hidden, shares_prompts
from soar.engine.model import compute_precision
from soar.engine.sampling import encode_prompts, sample
from soar.world import World
from soar.world.verifiers import RewardShaping, shaped_reward


# --------------------------------------------------------------------------------------------------------
# Pure math
def rloo_advantages(rewards: torch.Tensor) -> torch.Tensor:
    """Leave-one-out advantages of a (prompts, samples) reward tensor; returns the same shape.

    NaN marks an unscorable sample: it gets advantage 0 and is left out of its group's baseline. A group
    with fewer than two scorable samples has no baseline and gets advantage 0 throughout."""
    if rewards.dim() != 2:
        raise ValueError(f"rewards must be (prompts, samples), got shape {tuple(rewards.shape)}")
    valid = ~torch.isnan(rewards)
    r = torch.where(valid, rewards, torch.zeros_like(rewards))
    n = valid.sum(-1, keepdim=True)  # (P, 1)
    baseline = (r.sum(-1, keepdim=True) - r) / (n - 1).clamp(min=1)  # mean of the others
    adv = r - baseline
    return torch.where(valid & (n >= 2), adv, torch.zeros_like(adv))


def kl_k3(logp: torch.Tensor, ref_logp: torch.Tensor) -> torch.Tensor:
    """Per-token k3 estimate of KL(policy || reference), >= 0, unbiased for samples from the policy."""
    d = ref_logp - logp
    return torch.exp(d) - d - 1


def policy_loss(
    logp: torch.Tensor,
    mask: torch.Tensor,
    advantages: torch.Tensor,
    ref_logp: torch.Tensor | None = None,
    kl_coef: float = 0.0,
    n_tokens: float | None = None,
) -> tuple[torch.Tensor, dict[str, float]]:
    """REINFORCE loss: -sum_t A_i log pi(y_it) / N + kl_coef * sum_t KL_it / N, N = completion tokens.

    logp, mask, ref_logp: (rows, T); advantages: (rows,). `n_tokens` overrides N when the batch is split
    into micro-batches (pass the whole batch's token count)."""
    mask = mask.to(logp.dtype)
    N = float(mask.sum()) if n_tokens is None else float(n_tokens)
    N = max(N, 1.0)
    pg = -(advantages[:, None].to(logp.dtype) * logp * mask).sum() / N
    loss = pg
    kl_val = 0.0
    if ref_logp is not None and kl_coef > 0:
        kl = (kl_k3(logp, ref_logp) * mask).sum() / N
        loss = loss + kl_coef * kl
        kl_val = float(kl.detach())
    return loss, {"pg_loss": float(pg.detach()), "kl": kl_val}


LOGPROB_CHUNK = 4096
"""tokens (rows x positions) per chunk of the log-prob pass: the largest float32 logits tensor that exists is
LOGPROB_CHUNK x vocabulary (4096 x 128,256 x 4 bytes = 2.1 GB for Llama 3), never (rows, T, vocabulary)"""

_SCALED_LOGITS = ("final_logit_softcapping", "logit_scale", "logits_scaling")
"""config keys of models whose logits are more than the output layer (softcapped or scaled): full forward"""


def token_logprobs(
    model: PreTrainedModel,
    prompt_ids: list[list[int]],
    completion_ids: list[list[int]],
    pad_id: int,
    chunk_tokens: int = LOGPROB_CHUNK,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Log-probs of each completion token given its prompt: (rows, T) values and (rows, T) mask.

    The decoder runs once (rows that share a prompt share its forward where `shares_prompts(model)`: each
    distinct prompt once, `soar.engine.decode.prefix_hidden`); the output layer and the log-softmax run on
    chunks of positions, each recomputed in the backward pass (activation checkpointing), so no (rows, T, V)
    tensor is ever held."""
    scaled = any(getattr(model.config, k, None) for k in _SCALED_LOGITS)
    if not scaled and len({tuple(p) for p in prompt_ids}) < len(prompt_ids) and shares_prompts(model):
        return _shared_prompt_logprobs(model, prompt_ids, completion_ids, pad_id, chunk_tokens)
    device = next(model.parameters()).device
    seqs = [p + c for p, c in zip(prompt_ids, completion_ids, strict=True)]
    width = max(len(s) for s in seqs)
    T = max(max(len(c) for c in completion_ids), 1)
    ids = torch.full((len(seqs), width), pad_id, dtype=torch.long)
    attn = torch.zeros((len(seqs), width), dtype=torch.long)
    for i, s in enumerate(seqs):
        ids[i, width - len(s) :] = torch.tensor(s)
        attn[i, width - len(s) :] = 1
    ids, attn = ids.to(device), attn.to(device)
    pos = (attn.cumsum(-1) - 1).clamp(min=0)
    target = ids[:, width - T :]  # (rows, T): completions are right-aligned (left-padded inside)
    with compute_precision(model):
        if scaled:
            logits = model(input_ids=ids, attention_mask=attn, position_ids=pos, logits_to_keep=T + 1).logits
            lp = _chunk_logprobs(None, logits[:, :T], target)
        else:
            hidden = model.get_decoder()(input_ids=ids, attention_mask=attn, position_ids=pos).last_hidden_state
            hidden = hidden[:, width - T - 1 : width - 1]  # (rows, T, H) predicts tokens width-T..width-1
            lp = _head_logprobs(model, hidden, target, chunk_tokens)
    cmask = torch.zeros((len(seqs), T), dtype=torch.bool, device=device)
    for i, c in enumerate(completion_ids):
        if c:
            cmask[i, T - len(c) :] = True
    return lp * cmask, cmask


def _head_logprobs(model, hidden: torch.Tensor, target: torch.Tensor, chunk_tokens: int) -> torch.Tensor:
    """log p(target) (rows, T) from final hidden states (rows, T, H), the output layer on chunks of positions."""
    head = model.get_output_embeddings()
    T = target.shape[1]
    step = max(1, chunk_tokens // target.shape[0])
    parts = []
    for s in range(0, T, step):
        h, tgt = hidden[:, s : s + step], target[:, s : s + step]
        if torch.is_grad_enabled() and h.requires_grad:
            parts.append(checkpoint(_chunk_logprobs, head, h, tgt, use_reentrant=False))
        else:
            parts.append(_chunk_logprobs(head, h, tgt))
    return torch.cat(parts, dim=1)


def _shared_prompt_logprobs(
    model, prompt_ids: list[list[int]], completion_ids: list[list[int]], pad_id: int, chunk_tokens: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """`token_logprobs` with each distinct prompt run once (`prefix_hidden`); the same (rows, T) layout, with
    completions right-aligned."""
    device = next(model.parameters()).device
    distinct: dict[tuple[int, ...], int] = {}
    row_of = torch.tensor([distinct.setdefault(tuple(p), len(distinct)) for p in prompt_ids], device=device)
    P, T = max(len(p) for p in distinct), max(max(len(c) for c in completion_ids), 1)
    pids = torch.full((len(distinct), P), pad_id, dtype=torch.long)
    pmask = torch.zeros((len(distinct), P), dtype=torch.long)
    for p, u in distinct.items():
        pids[u, P - len(p) :] = torch.tensor(p)
        pmask[u, P - len(p) :] = 1
    cids = torch.full((len(completion_ids), T), pad_id, dtype=torch.long)
    lengths = torch.tensor([len(c) for c in completion_ids], device=device)
    for i, c in enumerate(completion_ids):
        cids[i, : len(c)] = torch.tensor(c, dtype=torch.long)
    cids = cids.to(device)
    with compute_precision(model):
        hidden = prefix_hidden(model, pids.to(device), pmask.to(device), cids, row_of)  # (rows, T, H)
        lp = _head_logprobs(model, hidden, cids, chunk_tokens)  # left-aligned
    shift = (torch.arange(T, device=device)[None] - (T - lengths)[:, None]).clamp(min=0)  # right-align
    cmask = torch.arange(T, device=device)[None] >= (T - lengths)[:, None]
    return lp.gather(1, shift) * cmask, cmask


def _chunk_logprobs(head, hidden: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """log p(target) from hidden states through the output layer `head` (None: `hidden` are logits already),
    in float32."""
    logits = (hidden if head is None else head(hidden)).float()
    return logits.gather(-1, target[..., None]).squeeze(-1) - torch.logsumexp(logits, dim=-1)


# --------------------------------------------------------------------------------------------------------
# The student engine
@dataclass
class RLOOConfig:
    """One RLOO training run (student inner loop, Hard-Only, or an evaluation run)."""

    steps: int = 300
    """optimizer steps"""
    batch_size: int = 8
    """prompts per step"""
    group_size: int = 16
    """samples per prompt (RLOO needs at least 2)"""
    lr: float = 5e-5
    """peak AdamW learning rate (paper 1e-5; higher breaks the tiny model: docs/DESIGN.md)"""
    schedule: str = "cosine"
    """'cosine' (to 0 at the end) or 'constant', after warm-up"""
    warmup: int = 20
    """linear warm-up steps (paper: 20 in evaluations, 0 in the inner loop)"""
    weight_decay: float = 0.0
    """AdamW weight decay"""
    grad_clip: float = 1.0
    """max gradient norm (0 = off)"""
    temperature: float = 1.0
    """sampling temperature"""
    kl_coef: float = 0.001
    """KL penalty to the frozen start policy (paper: 0.001); 0 skips the reference forward pass"""
    micro_batch: int = 32
    """rows per forward/backward pass (memory knob; does not change the maths, only float rounding). 32: on
    the CPU the default model's update is 1.1-1.2x faster than in one pass of 64-128 rows, and two workers
    contend less for memory (docs/PERFORMANCE.md)"""
    shaping: RewardShaping = field(default_factory=RewardShaping)

    def __post_init__(self) -> None:
        if self.group_size < 2:
            raise ValueError("RLOO needs group_size >= 2 samples per prompt (leave-one-out baseline)")
        if self.schedule not in ("cosine", "constant"):
            raise ValueError(f"schedule must be 'cosine' or 'constant', got {self.schedule!r}")
        at_least(self, 0, "steps", "warmup", "temperature", "kl_coef", "grad_clip", "weight_decay")
        at_least(self, 1, "batch_size", "micro_batch")
        if not self.lr > 0:
            raise ValueError(f"lr must be above 0, got {self.lr}")


def lr_schedule(total: int, warmup: int, schedule: str = "cosine", floor: float = 0.0) -> Callable[[int], float]:
    """The learning-rate multiplier of every trainer (students, teacher, pretraining): linear warm-up over
    `warmup` steps, then constant or a cosine decay to `floor` at step `total`."""

    def f(step: int) -> float:
        if warmup > 0 and step < warmup:
            return (step + 1) / warmup
        if schedule == "constant":
            return 1.0
        progress = (step - warmup) / max(1, total - warmup)
        return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))

    return f


BatchFn = Callable[[int, random.Random], list[Problem]]


def cycling_batches(problems: list[Problem], batch_size: int) -> BatchFn:
    """Batches that walk through a shuffled copy of `problems`, reshuffling each epoch."""
    if not problems:
        raise ValueError("no problems to train on")
    state: dict = {"order": [], "pos": 0}

    def next_batch(step: int, rng: random.Random) -> list[Problem]:
        out = []
        while len(out) < batch_size:
            if state["pos"] >= len(state["order"]):
                state["order"] = list(range(len(problems)))
                rng.shuffle(state["order"])
                state["pos"] = 0
            out.append(problems[state["order"][state["pos"]]])
            state["pos"] += 1
        return out

    return next_batch


def phased(first: BatchFn, first_steps: int, then: BatchFn) -> BatchFn:
    """`first` for the first `first_steps` steps, then `then` (the paper's curriculum mode)."""
    return lambda step, rng: first(step, rng) if step < first_steps else then(step, rng)


def both(first: BatchFn, then: BatchFn) -> BatchFn:
    """Every step's batch: `first`'s problems, then `then`'s (the paper's mixed mode, for a stream of questions
    that cannot be pooled with the hard set)."""
    return lambda step, rng: first(step, rng) + then(step, rng)


def score(world: World, samples, answers: list[str], shaping: RewardShaping) -> torch.Tensor:
    """(prompts, k) shaped rewards; NaN where unscorable."""
    return torch.tensor(
        [
            [r if (r := shaped_reward(s.text, a, world.is_equal, shaping)) is not None else math.nan for s in row]
            for row, a in zip(samples, answers, strict=True)
        ],
        dtype=torch.float32,
    )


class RLOORun:
    """One RLOO training run taken a step at a time: `propose(step)` draws the step's problems and the seed of
    its samples, `learn(step, samples, sample_s)` scores them and takes the optimizer step. `train_rloo`
    drives one run with `sample`; the inner loop's lockstep (soar.method.loop) drives many with
    `sample_copies`, with the same draws."""

    def __init__(self, model, tokenizer, world: World, batches: BatchFn, cfg: RLOOConfig, seed: int) -> None:
        self.model, self.tokenizer, self.world, self.batches, self.cfg = model, tokenizer, world, batches, cfg
        self.rng = random.Random(seed)
        self.ref = None
        if cfg.kl_coef > 0:
            from soar.engine.model import frozen

            self.ref = frozen(model)
        self.opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
        self.sched = torch.optim.lr_scheduler.LambdaLR(self.opt, lr_schedule(cfg.steps, cfg.warmup, cfg.schedule))
        self.pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
        self.history: list[dict] = []
        self._problems: list[Problem] = []
        self._prompts: list[str] = []

    def propose(self, step: int) -> tuple[list[str], int]:
        """The prompts of step `step` and the seed to sample their `cfg.group_size` completions with."""
        self._problems = self.batches(step, self.rng)
        self._prompts = [self.world.student_prompt(p.question) for p in self._problems]
        return self._prompts, self.rng.randrange(2**31)

    def learn(self, step: int, samples, sample_s: float) -> dict:
        """Score the proposed prompts' samples ([prompt][group_size]) and take one optimizer step; returns
        the step's metrics (`sample_s`: the seconds its sampling took)."""
        t0 = time.time()
        cfg = self.cfg
        rewards = score(self.world, samples, [p.answer for p in self._problems], cfg.shaping)  # (B, G)
        adv = rloo_advantages(rewards).flatten()  # (B*G,)
        prompt_ids = encode_prompts(self.tokenizer, self._prompts)
        G = cfg.group_size
        rows = [(prompt_ids[i // G], samples[i // G][i % G].token_ids, float(adv[i])) for i in range(len(adv))]
        stats = policy_update(
            self.model, self.ref, self.opt, self.sched, rows, cfg.kl_coef, cfg.grad_clip, cfg.micro_batch, self.pad
        )
        valid = ~torch.isnan(rewards)
        right = (rewards == cfg.shaping.correct).float()  # (B, G)
        row = {
            "step": step,
            "reward": float(rewards[valid].mean()) if valid.any() else math.nan,
            "accuracy": float(right.mean()),
            "prompt_accuracy": [round(float(a), 4) for a in right.mean(-1)],
            "unscorable": float((~valid).float().mean()),
            "completion_tokens": sum(len(s.token_ids) for r in samples for s in r),
            "lr": self.sched.get_last_lr()[0],
            "sample_s": round(sample_s, 3),
            "step_s": round(sample_s + time.time() - t0, 3),
            **stats,
        }
        self.history.append(row)
        return row


def train_rloo(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    world: World,
    batches: BatchFn,
    cfg: RLOOConfig,
    seed: int,
    max_new_tokens: int,
    on_step: Callable[[int, dict], None] | None = None,
    progress: bool = False,
) -> list[dict]:
    """Train `model` in place with RLOO; returns one metrics dict per step.

    `batches(step, rng)` gives the problems of each step (Hard-Only, curriculum and mixed runs differ only
    there). Rewards come from `world.is_equal` against each problem's `answer` (the teacher's answer for
    synthetic data, not the truth)."""
    run = RLOORun(model, tokenizer, world, batches, cfg, seed)
    steps = range(cfg.steps)
    if progress:
        from tqdm import tqdm

        steps = tqdm(steps, desc="rloo", leave=False, dynamic_ncols=True)
    for step in steps:
        t0 = time.time()
        prompts, sample_seed = run.propose(step)
        samples = sample(
            model,
            tokenizer,
            prompts,
            cfg.group_size,
            temperature=cfg.temperature,
            max_new_tokens=max_new_tokens,
            seed=sample_seed,
        )
        row = run.learn(step, samples, time.time() - t0)
        if on_step is not None:
            on_step(step, row)
        if progress:
            steps.set_postfix(reward=f"{row['reward']:.3f}", acc=f"{row['accuracy']:.3f}")  # type: ignore[union-attr]
    return run.history


def policy_update(
    model,
    ref,
    opt,
    sched,
    rows: list[tuple[list[int], list[int], float]],
    kl_coef: float,
    grad_clip: float,
    micro_batch: int,
    pad: int,
) -> dict:
    """One optimizer step over `rows` of (prompt ids, completion ids, advantage), in micro-batches; raises
    on a non-finite loss. Shared by the student (here) and the teacher (soar.method.loop)."""
    n_tokens = sum(len(c) for _, c, _ in rows)
    model.train()
    opt.zero_grad(set_to_none=True)
    pg = kl = 0.0
    order = sorted(range(len(rows)), key=lambda i: len(rows[i][0]) + len(rows[i][1]))
    for s in range(0, len(order), micro_batch):
        chunk = [rows[i] for i in order[s : s + micro_batch]]
        p_ids, c_ids = [r[0] for r in chunk], [r[1] for r in chunk]
        a = torch.tensor([r[2] for r in chunk], device=next(model.parameters()).device)
        logp, mask = token_logprobs(model, p_ids, c_ids, pad)
        ref_logp = None
        if ref is not None:
            with torch.no_grad():
                ref_logp, _ = token_logprobs(ref, p_ids, c_ids, pad)
        loss, st = policy_loss(logp, mask, a, ref_logp, kl_coef, n_tokens=n_tokens)
        if not torch.isfinite(loss):
            raise FloatingPointError(
                f"RLOO loss became {loss.item()} (pg={st['pg_loss']}, kl={st['kl']}); "
                "the run diverged: lower rloo.lr or check the model's dtype"
            )
        loss.backward()
        pg += st["pg_loss"]
        kl += st["kl"]
    gnorm = 0.0
    if grad_clip > 0:
        gnorm = float(torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip))
    opt.step()
    sched.step()
    model.eval()
    return {"pg_loss": pg, "kl": kl, "grad_norm": gnorm}
