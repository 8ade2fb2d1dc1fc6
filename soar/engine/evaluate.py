"""`soar eval`: pass@k from n samples (unbiased estimator), greedy accuracy, per-problem counts.

The paper reports pass@k for k in {1, 4, 8, 16, 32} from 32 samples per problem at temperature 1.0.
Greedy accuracy is reported beside it: if greedy decoding solves a problem, a pass@k gain may only be
lower entropy, not learning, and the paper's teacher reward is a greedy accuracy.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

from transformers import PreTrainedModel, PreTrainedTokenizerBase

from soar.core.config import at_least
from soar.core.problems import Problem
from soar.engine.metrics import mean_pass_at_k, mean_sd
from soar.engine.sampling import sample
from soar.world import World
from soar.world.verifiers import extract_boxed


@dataclass
class EvalConfig:
    """Evaluation of a student on a problem set."""

    n: int = 32
    """samples per problem at `temperature`"""
    ks: tuple[int, ...] = (1, 4, 8, 16, 32)
    """the k of pass@k (each <= n)"""
    temperature: float = 1.0
    """sampling temperature"""
    greedy: bool = True
    """also decode greedily once per problem"""
    batch_size: int = 256
    """rows per sampling batch"""

    def __post_init__(self) -> None:
        at_least(self, 1, "n", "batch_size")
        at_least(self, 0, "temperature")
        if not self.ks:
            raise ValueError("ks must name at least one k")
        bad = [k for k in self.ks if not 1 <= k <= self.n]
        if bad:
            raise ValueError(f"every k must be in 1..n={self.n}; got {bad}")


def correct_counts(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    world: World,
    problems: list[Problem],
    n: int,
    temperature: float,
    max_new_tokens: int,
    seed: int,
    batch_size: int = 256,
) -> list[int]:
    """Number of correct samples out of n, per problem."""
    prompts = [world.student_prompt(p.question) for p in problems]
    out = sample(
        model,
        tokenizer,
        prompts,
        n,
        temperature=temperature,
        max_new_tokens=max_new_tokens,
        seed=seed,
        batch_size=batch_size,
    )
    return [sum(world.solves(p.answer, s.text) for s in row) for p, row in zip(problems, out, strict=True)]


def greedy_correct(
    model, tokenizer, world: World, problems: list[Problem], max_new_tokens: int, batch_size: int = 256
) -> list[bool]:
    return [c == 1 for c in correct_counts(model, tokenizer, world, problems, 1, 0.0, max_new_tokens, 0, batch_size)]


def evaluate(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    world: World,
    problems: list[Problem],
    cfg: EvalConfig,
    seed: int,
    max_new_tokens: int,
) -> tuple[dict, list[dict]]:
    """(summary, per-problem records). Summary keys: `pass@k`, `greedy`, `solved` (problems with >= 1
    correct sample), `n_problems`."""
    counts = correct_counts(
        model, tokenizer, world, problems, cfg.n, cfg.temperature, max_new_tokens, seed, cfg.batch_size
    )
    greedy = (
        greedy_correct(model, tokenizer, world, problems, max_new_tokens, cfg.batch_size)
        if cfg.greedy
        else [False] * len(problems)
    )
    summary = {f"pass@{k}": mean_pass_at_k([(cfg.n, c) for c in counts], k) for k in cfg.ks}
    summary["greedy"] = sum(greedy) / len(problems) if cfg.greedy else float("nan")
    summary["solved"] = sum(c > 0 for c in counts)
    summary["n_problems"] = len(problems)
    records = [
        {
            "question": p.question,
            "answer": p.answer,
            "family": p.family,
            "level": p.level,
            "n": cfg.n,
            "correct": c,
            "greedy_correct": g,
        }
        for p, c, g in zip(problems, counts, greedy, strict=True)
    ]
    return summary, records


def aggregate(summaries: list[dict]) -> dict[str, tuple[float, float]]:
    """Mean and SD over seeds of every numeric key."""
    keys = [k for k in summaries[0] if isinstance(summaries[0][k], int | float)]
    return {k: mean_sd([s[k] for s in summaries]) for k in keys}


def own_answers(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    world: World,
    problems: list[Problem],
    seed: int,
    max_new_tokens: int,
    temperature: float = 1.0,
    prompt_of=None,
) -> list[Problem]:
    """The same problems with the model's own answer to each at `temperature` (0 = greedy; in the prompt
    `prompt_of(question)`, the student prompt by default; an answer it does not box is kept as "?", which
    matches nothing)."""
    prompt_of = prompt_of or world.student_prompt
    prompts = [prompt_of(p.question) for p in problems]
    outs = sample(model, tokenizer, prompts, 1, temperature=temperature, max_new_tokens=max_new_tokens, seed=seed)
    return [replace(p, answer=(extract_boxed(o[0].text) or "?").strip()) for p, o in zip(problems, outs, strict=True)]


def span_tokens(offsets: list[tuple[int, int]], spans: list[tuple[int, int]]) -> list[list[int]]:
    """For each character span, the indices of the tokens (by their character `offsets`) that overlap it."""
    return [[i for i, (a, b) in enumerate(offsets) if a < end and b > start] for start, end in spans]


def completion_logprobs(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    world: World,
    problems: list[Problem],
    completions: list[list[int]],
    batch_size: int,
    desc: str | None = None,
) -> list:
    """Log-probs at temperature 1 of each given completion's tokens (ids) after its problem's student prompt, in
    eval mode without gradients: one (rows, T) tensor per batch of `batch_size` problems, each completion
    right-aligned, 0 on padding. `desc`: a progress bar over the batches."""
    import torch
    from tqdm import tqdm

    from soar.engine.rloo import token_logprobs
    from soar.engine.sampling import encode_prompts

    out = []
    was_training = model.training
    model.eval()
    starts = range(0, len(problems), batch_size)
    for b in tqdm(starts, desc=desc, unit="batch", leave=False) if desc else starts:
        prompts = encode_prompts(tokenizer, [world.student_prompt(p.question) for p in problems[b : b + batch_size]])
        with torch.no_grad():
            lp, _ = token_logprobs(model, prompts, completions[b : b + batch_size], tokenizer.pad_token_id)
        out.append(lp)
    model.train(was_training)
    return out


def forced_step_credit(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    world: World,
    problems: list[Problem],
    batch_size: int = 64,
) -> float:
    """Teacher-forced step credit: the mean, over problems and their steps, of the probability at temperature 1
    that the model writes the step's value right when everything before it in the worked solution is right.

    No sampling, so no scoring noise; on a hard set whose every step is hard it is the mean per-step care, of
    which a problem's success is about the product (docs/world-design.md, "A teacher-forced Q_R metric")."""
    if world.step_spans is None:
        raise ValueError(f"qr_metric=forced: the {world.name} world cannot write worked solutions with steps")
    solved = [world.step_spans(p.question) for p in problems]
    bad = [p.question for p, s in zip(problems, solved, strict=True) if s is None]
    if bad:
        raise ValueError(f"no worked solution for {bad[0]!r}: the question is outside the world's grammar")
    enc = [tokenizer(text, add_special_tokens=False, return_offsets_mapping=True) for text, _ in solved]
    batches = completion_logprobs(model, tokenizer, world, problems, [e.input_ids for e in enc], batch_size)
    rows = [row for lp in batches for row in lp.tolist()]  # (T,) each, completions right-aligned
    probs = []
    for row, e, (_, spans) in zip(rows, enc, solved, strict=True):
        start = len(row) - len(e.input_ids)
        probs += [math.exp(sum(row[start + i] for i in group)) for group in span_tokens(e.offset_mapping, spans)]
    return sum(probs) / len(probs)
