"""`soar premise`: is the world at the edge of learnability? Hard-Only vs an oracle curriculum.

1. The base model's pass@1 / pass@32 per family and level (the "edge of learnability").
2. Over several seeds, at equal total RLOO steps, the held-out hard TEST set's pass@k after
   (a) Hard-Only: RLOO on the hard train set, and
   (b) oracle curriculum: RLOO on true easier stepping stones first, then on the hard train set;
   (c) self-answered curriculum: the same stones answered by the base model itself (one temperature-1
       sample each), then the hard train set: what the right questions give before a teacher learns
       anything about answers.
The world is right only when (a) stays near the base model and (b) lifts hard-test pass@32 clearly:
(b) is the upper bound that SOAR's teacher must discover by itself, and (c) above (a) says that a
teacher's own answers can teach.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass, field
from pathlib import Path

import torch

from soar.core import seeds
from soar.core.config import at_least, dump_config
from soar.core.io import atomic_write_text
from soar.core.lock import run_lock
from soar.core.parallel import ParallelConfig, Workers
from soar.core.problems import Problem, load_problems
from soar.engine.evaluate import EvalConfig, evaluate, own_answers
from soar.engine.model import DEFAULT_MODEL, clone_model, load_policy
from soar.engine.rloo import BatchFn, RLOOConfig, both, cycling_batches, phased, train_rloo
from soar.jobs.harness import GridContext, Trained, hard_phase_counts, run_grid, summarize
from soar.world import ARITHMETIC
from soar.world.arithmetic import FAMILIES, LEVELS, make_problem
from soar.world.base import check_answer_prompt

ARMS = ("base", "hard_only", "curriculum", "self_answered")
MODES = ("curriculum", "mixed")


@dataclass
class PremiseConfig:
    """The Hard-Only vs oracle-curriculum experiment."""

    model: str = str(DEFAULT_MODEL)
    """base model"""
    hard_dir: str = "data/hard"
    """folder with train.jsonl / test.jsonl from `soar make-hard`"""
    out: str = "runs/premise"
    """output folder (results.jsonl, premise.md, premise.png)"""
    seeds: tuple[int, ...] = (0, 1, 2)
    """one training run per arm per seed"""
    mode: str = "curriculum"
    """how a curriculum arm meets its stones, as the paper's PQ student: curriculum (`curriculum_steps` on the
    stones, then the hard train set) | mixed (every batch: `mixed_stones` stones, the rest hard problems)"""
    curriculum_steps: int = 200
    """curriculum mode: of the rloo.steps of each arm, the steps on stepping stones first (paper: 64)"""
    mixed_stones: int = 4
    """mixed mode: stones in each batch of rloo.batch_size (the paper pools its PQ with the hard set; the stones
    here are a fresh stream, so each batch takes a fixed share)"""
    stones: tuple[str, ...] = ("mix:1", "mix:2", "add:1", "sub:1")
    """stepping stones as family:level (level = number of hard steps)"""
    stone_min_run: int = 2
    """look-ahead of the stepping stones' hard steps: at least this (match the hard set's, see manifest.json)"""
    stone_max_run: int = 3
    """look-ahead of the stepping stones' hard steps: at most this (at most 4)"""
    edge_problems: int = 24
    """problems per family/level cell of the edge table (0 = skip it, e.g. in a parallel worker)"""
    rloo: RLOOConfig = field(default_factory=RLOOConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    max_new_tokens: int = 64
    """longest student completion (training and evaluation)"""
    answer_prompt: str = "student"
    """self_answered: the prompt the base model answers the stones in, as `teacher.answer_prompt` (student | key)"""
    arms: tuple[str, ...] = ARMS
    parallel: ParallelConfig = field(default_factory=ParallelConfig)
    """(arm, seed) pairs side by side: parallel.workers processes"""
    threads: int = 2

    def __post_init__(self) -> None:
        if not self.seeds:
            raise ValueError("seeds must name at least one seed")
        bad = [a for a in self.arms if a not in ARMS]
        if bad:
            raise ValueError(f"unknown arms {bad}; valid: {list(ARMS)}")
        at_least(self, 1, "max_new_tokens", "threads")
        at_least(self, 0, "curriculum_steps", "edge_problems")
        if self.mode not in MODES:
            raise ValueError(f"mode must be one of {', '.join(MODES)}, got {self.mode!r}")
        if self.mode == "mixed" and not 1 <= self.mixed_stones < self.rloo.batch_size:
            raise ValueError(
                f"mixed_stones must be 1 to rloo.batch_size - 1 ({self.rloo.batch_size - 1}), got {self.mixed_stones}"
            )
        check_answer_prompt(self.answer_prompt)
        parse_stones(self.stones)


def parse_stones(specs: tuple[str, ...]) -> list[tuple[str, int]]:
    out = []
    for s in specs:
        fam, _, lvl = s.partition(":")
        if fam not in FAMILIES or not lvl.isdigit() or int(lvl) not in LEVELS[fam]:
            raise ValueError(
                f"bad stepping stone {s!r}: use family:level with family in {FAMILIES} and a level "
                f"from {LEVELS.get(fam, '?')}"
            )
        out.append((fam, int(lvl)))
    return out


def stone_batches(specs: list[tuple[str, int]], batch_size: int, min_run: int = 2, max_run: int = 3):
    """Fresh stepping-stone problems every step (true answers)."""

    def next_batch(step: int, rng: random.Random) -> list[Problem]:
        return [make_problem(*rng.choice(specs), rng, min_run=min_run, max_run=max_run) for _ in range(batch_size)]

    return next_batch


def self_answered_batches(
    stones: BatchFn, base, tokenizer, max_new_tokens: int, answer_prompt: str = "student"
) -> BatchFn:
    """`stones`, each answered by the frozen base model `base` (one temperature-1 sample, in the prompt that
    `answer_prompt` names)."""
    prompt_of = ARITHMETIC.answer_prompt(answer_prompt)

    def next_batch(step: int, rng: random.Random) -> list[Problem]:
        problems = stones(step, rng)
        seed = rng.randrange(2**31)
        return own_answers(base, tokenizer, ARITHMETIC, problems, seed, max_new_tokens, prompt_of=prompt_of)

    return next_batch


def edge_table(model, tokenizer, cfg: PremiseConfig) -> list[dict]:
    """Base pass@1 / pass@32 and greedy accuracy for every family and level."""
    rng = random.Random(seeds.EDGE_TABLE)
    rows = []
    ecfg = EvalConfig(n=cfg.eval.n, ks=(1, cfg.eval.n))
    for fam in FAMILIES:
        for lvl in LEVELS[fam]:
            probs = [make_problem(fam, lvl, rng) for _ in range(cfg.edge_problems)]
            s, _ = evaluate(model, tokenizer, ARITHMETIC, probs, ecfg, rng.randrange(2**31), cfg.max_new_tokens)
            rows.append({"family": fam, "level": lvl, **s})
    return rows


def run_premise(cfg: PremiseConfig) -> dict:
    """The edge table, then every (arm, seed) of Hard-Only vs the oracle curriculum; resumable, its folder
    locked throughout."""
    with run_lock(cfg.out):
        return _premise(cfg)


def _premise(cfg: PremiseConfig) -> dict:
    torch.set_num_threads(cfg.threads)
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    dump_config(cfg, out / "config.yaml")
    ctx = premise_context(cfg)

    if cfg.edge_problems > 0 and not (out / "edge.json").exists():
        print("measuring the base model's edge of learnability ...")
        atomic_write_text(out / "edge.json", json.dumps(edge_table(ctx.base, ctx.tokenizer, cfg), indent=1))

    with Workers(cfg.parallel, premise_context, cfg, local_context=ctx) as workers:
        results = run_grid(out, cfg.arms, cfg.seeds, workers)
    edge = json.loads((out / "edge.json").read_text()) if (out / "edge.json").exists() else []
    return write_report(cfg, results, edge)


@dataclass
class PremiseContext(GridContext):
    base: object = None


def premise_context(cfg: PremiseConfig) -> PremiseContext:
    """The base model, the hard sets and the arms' training, for this process or a worker."""
    base, tokenizer = load_policy(cfg.model)
    hard = Path(cfg.hard_dir)
    train = load_problems(hard / "train.jsonl", ARITHMETIC.in_grammar)
    test = load_problems(hard / "test.jsonl", ARITHMETIC.in_grammar)
    n_stones = cfg.mixed_stones if cfg.mode == "mixed" else cfg.rloo.batch_size
    stones = stone_batches(parse_stones(cfg.stones), n_stones, cfg.stone_min_run, cfg.stone_max_run)
    make_problem("mix", 1, random.Random(0), min_run=cfg.stone_min_run, max_run=cfg.stone_max_run)  # fail early

    def train_arm(arm: str, seed: int):
        model = clone_model(base)
        if arm == "base":
            return Trained(model)
        first = (
            self_answered_batches(stones, base, tokenizer, cfg.max_new_tokens, cfg.answer_prompt)
            if arm == "self_answered"
            else stones
        )
        if cfg.mode == "mixed" and arm != "hard_only":
            batches = both(first, cycling_batches(train, cfg.rloo.batch_size - cfg.mixed_stones))
        else:
            batches = phased(first, hard_phase_start(arm, cfg), cycling_batches(train, cfg.rloo.batch_size))
        print(f"[seed {seed}] training {arm} for {cfg.rloo.steps} steps")
        history = train_rloo(
            model,
            tokenizer,
            ARITHMETIC,
            batches,
            cfg.rloo,
            seed,
            cfg.max_new_tokens,
            progress=cfg.parallel.workers == 1,
        )
        return Trained(model, history)

    return PremiseContext(train_arm, tokenizer, ARITHMETIC, test, cfg.eval, cfg.max_new_tokens, base=base)


def hard_phase_start(arm: str, cfg: PremiseConfig) -> int:
    """The step at which `arm` starts training on the hard train set (Hard-Only and mixed mode: at once)."""
    return 0 if arm == "hard_only" or cfg.mode == "mixed" else cfg.curriculum_steps


def hard_phase(arm: str, cfg: PremiseConfig) -> tuple[int, int]:
    """(hard_phase_start, the row of `arm`'s batches where its hard problems start: a mixed batch's stones
    come first)."""
    return hard_phase_start(arm, cfg), cfg.mixed_stones if cfg.mode == "mixed" and arm != "hard_only" else 0


def write_report(cfg: PremiseConfig, results: list[dict], edge: list[dict]) -> dict:
    from soar.jobs.report import edge_plot, pass_at_k_plot, premise_markdown

    out = Path(cfg.out)
    table = summarize(results)
    manifest_path = Path(cfg.hard_dir) / "manifest.json"
    manifest = json.loads(manifest_path.read_text()) if manifest_path.exists() else {}
    hard_phases = hard_phase_counts(out, results, lambda arm: hard_phase(arm, cfg))
    md = premise_markdown(table, edge, manifest, cfg, results, hard_phases)
    atomic_write_text(out / "premise.md", md)
    pass_at_k_plot(table, cfg.eval.ks, out / "premise.png", "Held-out hard TEST set")
    if edge:
        edge_plot(edge, out / "edge.png")
    print(md)
    return table
