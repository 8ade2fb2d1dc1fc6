"""`soar make-hard`: fail@k hard sets. Keep the problems the base model never solves in k samples.

Paper: 128 samples per problem (student prompt, temperature 1.0), keep 0/128, split 50/50 at random into
train and test. A problem leaves the screen once solved (it can no longer be fail@k). `rescreen` adds a
second, fresh k-sample pass.

Departure (`max_log10_p`, arithmetic only): fail@k only bounds a problem's per-sample success p below
about 1/k, while Hard-Only draws tens of thousands of samples. With `max_log10_p` set, two estimates of p
screen the pool first, and the fail@k passes run on what is left:
1. `solution_logprobs`: the probability of writing the canonical worked solution exactly, a lower bound on
   p, from one forward pass;
2. `success_estimates`: `estimate_k` sampled scratchpads, each cut where the final value starts, times the
   exact probability of then writing the right final value: an unbiased estimate of p below 1/estimate_k.
Problems with both below 10^max_log10_p and no sampled success are kept. What each screen kept on each
model is in docs/world-design.md ("Screening deeper" onward).
"""

from __future__ import annotations

import json
import math
import random
import time
from dataclasses import dataclass, field
from pathlib import Path

from tqdm import tqdm

from soar.core import seeds
from soar.core.config import at_least, to_dict
from soar.core.io import atomic_write_text
from soar.core.lock import run_lock
from soar.core.problems import Problem, save_problems
from soar.engine.evaluate import completion_logprobs, correct_counts
from soar.engine.model import load_policy
from soar.engine.setup import ModelSetup
from soar.world import World, make_world
from soar.world.arithmetic import make_problem
from soar.world.mathdata import FORMATS, load_math_problems

LN10 = math.log(10)


@dataclass
class HardSetSettings:
    """How a fail@k hard set is screened (the main job's `hardset:` section)."""

    pool_file: str | None = None
    """pool of problems to screen: a .jsonl/.json/.parquet file, hf:NAME (needs network) or champ (offline);
    None draws from the arithmetic generator"""
    pool_format: str = "problems"
    """how pool_file's records read: problems (soar JSONL) | math | harp | olympiadbench | champ | fields"""
    pool_fields: dict = field(default_factory=dict)
    """pool_format=fields: soar name -> record field, e.g. {question: prompt, answer: target}"""
    pool_split: str = "test"
    """hf: sources: the split (MATH's pool is its 5000-problem test split)"""
    pool_hf_configs: tuple[str, ...] = ()
    """hf: sources: dataset configs to concatenate (e.g. MATH's seven subjects)"""
    pool_limit: int = 0
    """keep only the first N pool problems (0 = all)"""
    family: str = "mix"
    """generator family of the pool"""
    levels: tuple[int, ...] = (5,)
    """generator levels of the pool (number of hard steps, drawn uniformly)"""
    min_run: int = 2
    """look-ahead of the pool's hard steps: at least this (2 = any hard step; 3 = only the harder ones)"""
    max_run: int = 3
    """look-ahead of the pool's hard steps: at most this (at most 4)"""
    pool: int = 4000
    """problems to draw for the pool"""
    k: int = 128
    """samples per screening pass"""
    chunk: int = 32
    """samples per problem per round (solved problems leave after each round)"""
    rescreen: bool = True
    """screen the survivors a second time with fresh samples"""
    temperature: float = 1.0
    seed: int = 0
    """seeds the pool, the sampling and the split"""
    train_fraction: float = 0.5
    """share of the hard problems that go to train (the rest to test)"""
    max_log10_p: float | None = None
    """screen on estimated per-sample success first (arithmetic; module docstring): keep only problems whose
    success the base model has below 10^max_log10_p (e.g. -5); None skips it"""
    estimate_k: int = 32
    """sampled scratchpads per problem for the success estimate of max_log10_p"""
    second_estimate_k: int = 0
    """max_log10_p: scratchpads of a second, independent success estimate that a problem must also pass (below
    10^max_log10_p, no sampled success); 0 skips it (docs/world-design.md, m17)"""

    def __post_init__(self) -> None:
        at_least(self, 1, "k", "chunk", "pool", "estimate_k")
        at_least(self, 0, "temperature", "pool_limit")
        if not 0 < self.train_fraction < 1:
            raise ValueError(f"train_fraction must be between 0 and 1, got {self.train_fraction}")
        if not self.levels:
            raise ValueError("levels must name at least one level")
        if self.pool_format not in FORMATS:
            raise ValueError(f"pool_format must be one of {', '.join(FORMATS)}, got {self.pool_format!r}")


@dataclass
class HardSetConfig(HardSetSettings, ModelSetup):
    """`soar make-hard`: the screening, the base model that must fail, and where the sets go."""

    out: str = "data/hard"
    """folder for train.jsonl, test.jsonl and manifest.json"""

    def __post_init__(self) -> None:
        ModelSetup.__post_init__(self)
        HardSetSettings.__post_init__(self)


def screen(
    model,
    tokenizer,
    world: World,
    problems: list[Problem],
    k: int,
    chunk: int,
    temperature: float,
    max_new_tokens: int,
    seed: int,
    desc: str = "screen",
) -> list[bool]:
    """True for each problem with 0 correct out of k samples."""
    alive = list(range(len(problems)))
    drawn = 0
    rng = random.Random(seed)
    while drawn < k and alive:
        n = min(chunk, k - drawn)
        round_seed = rng.randrange(2**31)
        block = max(1, 2048 // n)  # problems per sampling call, so the bar moves every few seconds
        still: list[int] = []
        bar = tqdm(
            total=len(alive), unit="problem", leave=False, desc=f"{desc}: samples {drawn + 1}-{drawn + n} of {k}"
        )
        for b in range(0, len(alive), block):
            ids = alive[b : b + block]
            counts = correct_counts(
                model, tokenizer, world, [problems[i] for i in ids], n, temperature, max_new_tokens, round_seed + b
            )
            still += [i for i, c in zip(ids, counts, strict=True) if c == 0]
            bar.update(len(ids))
            bar.set_postfix(unsolved=len(still))
        bar.close()
        alive = still
        drawn += n
    keep = set(alive)
    return [i in keep for i in range(len(problems))]


def solution_logprobs(
    model, tokenizer, world: World, problems: list[Problem], batch_size: int = 256, desc: str = "log p(solution)"
) -> list[float]:
    """Natural log of the probability that the model, given the student prompt, writes the world's worked
    solution of each problem exactly (up to and including its boxed answer), at temperature 1.

    A lower bound on the problem's per-sample success: a correct box reached through another text also
    counts in sampling (docs/world-design.md)."""
    if world.worked_solution is None:
        raise ValueError(f"the {world.name} world cannot write worked solutions; max_log10_p needs one (arithmetic)")
    sols = [world.worked_solution(p.question) for p in problems]
    bad = [p.question for p, s in zip(problems, sols, strict=True) if s is None]
    if bad:
        raise ValueError(f"no worked solution for {bad[0]!r}: the question is outside the world's grammar")
    comps = [tokenizer(s, add_special_tokens=False).input_ids for s in sols]
    batches = completion_logprobs(model, tokenizer, world, problems, comps, batch_size, desc)
    return [x for lp in batches for x in lp.sum(-1).tolist()]  # padding is 0


def success_estimates(
    model,
    tokenizer,
    world: World,
    problems: list[Problem],
    k: int,
    seed: int,
    max_new_tokens: int = 64,
    chunk: int = 64,
    desc: str = "success estimate",
) -> tuple[list[float], list[int]]:
    """Per problem: a Rao-Blackwellised estimate of the per-sample success p at temperature 1, and the number
    of the k samples that were correct.

    Each of k sampled completions is cut where its final value starts (`world.final_split`); the estimate is
    the mean over samples of P(the model then writes the right final value and box | prompt, cut text), 0 for
    a sample that never reaches a final value. Unbiased for p up to correct boxes reached without the world's
    final-value marker, with a resolution far below 1/k."""
    import torch

    from soar.engine.rloo import token_logprobs
    from soar.engine.sampling import encode_prompts, sample

    if world.final_split is None:
        raise ValueError(f"the {world.name} world cannot split a completion at its final answer (arithmetic can)")
    estimates: list[float] = []
    hits: list[int] = []
    rng = random.Random(seed)
    for b in tqdm(range(0, len(problems), chunk), desc=desc, unit="chunk", leave=False):
        part = problems[b : b + chunk]
        prompts = [world.student_prompt(p.question) for p in part]
        outs = sample(model, tokenizer, prompts, k, max_new_tokens=max_new_tokens, seed=rng.randrange(2**31))
        for p, prompt, row in zip(part, prompts, outs, strict=True):
            hits.append(sum(world.solves(p.answer, s.text) for s in row))
            splits = [world.final_split(s.text, p.answer) for s in row]
            pre = [x for x in splits if x is not None]
            if not pre:
                estimates.append(0.0)
                continue
            ids = encode_prompts(tokenizer, [prompt + cut for cut, _ in pre])
            tails = [tokenizer(tail, add_special_tokens=False).input_ids for _, tail in pre]
            with torch.no_grad():
                lp, mask = token_logprobs(model, ids, tails, tokenizer.pad_token_id)
            estimates.append(float(torch.exp((lp * mask).sum(-1).double()).sum()) / k)
    return estimates, hits


def second_estimate_screen(
    model, tokenizer, world: World, problems: list[Problem], k: int, max_log10_p: float, seed: int, max_new_tokens: int
) -> list[Problem]:
    """The problems whose fresh k-scratchpad success estimate is also below 10^max_log10_p, with no success."""
    est, hits = success_estimates(model, tokenizer, world, problems, k, seed, max_new_tokens, desc="second estimate")
    return [
        Problem(
            p.family,
            p.level,
            p.question,
            p.answer,
            {**p.meta, "log10_p_estimate_2": round(math.log10(e), 3) if e > 0 else None},
        )
        for p, e, h in zip(problems, est, hits, strict=True)
        if h == 0 and e < 10**max_log10_p
    ]


def _portable(path: str) -> str:
    """A model path relative to the working directory when it lies inside it (provenance that survives a clone)."""
    try:
        return str(Path(path).resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return path


def make_hard(cfg: HardSetConfig, world: World | None = None) -> dict:
    """Draw or load the pool, screen it (estimates when `max_log10_p` is set, then fail@k once or twice), split
    it and write train.jsonl, test.jsonl and manifest.json to `cfg.out` (locked throughout); returns the
    manifest."""
    with run_lock(cfg.out):
        return _make_hard(cfg, world)


def _make_hard(cfg: HardSetConfig, world: World | None) -> dict:
    import torch

    torch.set_num_threads(cfg.threads)
    t0 = time.time()
    model, tokenizer = load_policy(cfg.model, opts=cfg.load)
    world = world or make_world(cfg.world, tokenizer, cfg.prompts)
    rng = random.Random(cfg.seed)
    pool, source = draw_pool(cfg, rng)
    deep, n_bound = estimate_screen(model, tokenizer, world, pool, cfg) if cfg.max_log10_p is not None else (pool, None)
    n_first_estimate = len(deep) if cfg.max_log10_p is not None else None
    if cfg.max_log10_p is not None and cfg.second_estimate_k > 0:
        second = (cfg.second_estimate_k, cfg.max_log10_p, cfg.seed + seeds.SECOND_ESTIMATE, cfg.max_new_tokens)
        deep = second_estimate_screen(model, tokenizer, world, deep, *second)

    def fail_pass(problems: list[Problem], seed: int, desc: str) -> list[Problem]:
        fail = screen(
            model, tokenizer, world, problems, cfg.k, cfg.chunk, cfg.temperature, cfg.max_new_tokens, seed, desc
        )
        return [p for p, f in zip(problems, fail, strict=True) if f]

    hard = fail_pass(deep, cfg.seed + seeds.FAIL_PASS[0], "fail@k pass 1")
    n_first = len(hard)
    if cfg.rescreen and hard:
        hard = fail_pass(hard, cfg.seed + seeds.FAIL_PASS[1], "fail@k pass 2")
    counts = {
        "pool": len(pool),
        "solution_bound_below_max_log10_p": n_bound,
        "estimate_below_max_log10_p": n_first_estimate,
        "second_estimate_below_max_log10_p": len(deep)
        if cfg.max_log10_p is not None and cfg.second_estimate_k
        else None,
        "fail_first_pass": n_first,
        "fail_both_passes": len(hard) if cfg.rescreen else None,
    }
    return write_hard_sets(cfg, rng, hard, source, counts, t0)


def draw_pool(cfg: HardSetSettings, rng: random.Random) -> tuple[list[Problem], str]:
    """(pool, a description of its source): `pool_file`'s problems, or distinct generator problems."""
    if cfg.pool_file:
        pool = load_math_problems(
            cfg.pool_file,
            cfg.pool_format,
            split=cfg.pool_split,
            hf_configs=cfg.pool_hf_configs,
            fields=cfg.pool_fields,
            limit=cfg.pool_limit,
        )
        source = f"file:{cfg.pool_file}" if cfg.pool_format == "problems" else f"{cfg.pool_format}:{cfg.pool_file}"
        return pool, source
    seen: set[str] = set()
    pool = []
    while len(pool) < cfg.pool:
        p = make_problem(cfg.family, rng.choice(cfg.levels), rng, min_run=cfg.min_run, max_run=cfg.max_run)
        if p.question not in seen:
            seen.add(p.question)
            pool.append(p)
    return pool, f"arithmetic:{cfg.family} levels={list(cfg.levels)} look-ahead={cfg.min_run}-{cfg.max_run}"


def estimate_screen(
    model, tokenizer, world: World, pool: list[Problem], cfg: HardSetConfig
) -> tuple[list[Problem], int]:
    """Keep the problems whose canonical-solution bound and unbiased success estimate are both below
    10^max_log10_p and that no estimate scratchpad solved; returns (kept, how many passed the bound)."""
    limit = cfg.max_log10_p * LN10
    bound = solution_logprobs(model, tokenizer, world, pool)  # a lower bound on log p
    below = [(p, lb) for p, lb in zip(pool, bound, strict=True) if lb < limit]
    est, hits = success_estimates(
        model, tokenizer, world, [p for p, _ in below], cfg.estimate_k, cfg.seed + seeds.ESTIMATE, cfg.max_new_tokens
    )
    kept = [
        Problem(
            p.family,
            p.level,
            p.question,
            p.answer,
            {
                **p.meta,
                "log10_p_solution": round(lb / LN10, 3),
                "log10_p_estimate": round(math.log10(e), 3) if e > 0 else None,
            },
        )
        for (p, lb), e, h in zip(below, est, hits, strict=True)
        if h == 0 and e < 10**cfg.max_log10_p
    ]
    return kept, len(below)


def write_hard_sets(
    cfg: HardSetConfig, rng: random.Random, hard: list[Problem], source: str, counts: dict, t0: float
) -> dict:
    """Shuffle and split the hard problems, write them with their provenance, and the manifest."""
    rng.shuffle(hard)
    n_train = round(len(hard) * cfg.train_fraction)
    prov = {
        "source": source,
        "k": cfg.k,
        "rescreen": cfg.rescreen,
        "seed": cfg.seed,
        "model": _portable(cfg.model),
        "temperature": cfg.temperature,
        "max_log10_p": cfg.max_log10_p,
        "estimate_k": cfg.estimate_k if cfg.max_log10_p is not None else None,
        **({"second_estimate_k": cfg.second_estimate_k} if cfg.second_estimate_k else {}),
    }
    train = [Problem(p.family, p.level, p.question, p.answer, {**p.meta, "provenance": prov}) for p in hard[:n_train]]
    test = [Problem(p.family, p.level, p.question, p.answer, {**p.meta, "provenance": prov}) for p in hard[n_train:]]
    out = Path(cfg.out)
    save_problems(out / "train.jsonl", train)
    save_problems(out / "test.jsonl", test)
    manifest = {
        **counts,
        "train": len(train),
        "test": len(test),
        "seconds": round(time.time() - t0, 1),
        "config": {**to_dict(cfg), "model": _portable(cfg.model)},
        **prov,
    }
    atomic_write_text(out / "manifest.json", json.dumps(manifest, indent=2) + "\n")
    return manifest
