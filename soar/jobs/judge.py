"""`soar judge`: a local judge model rates each question of a set as well-posed or not, and its answer as
correct or not (the paper's question-quality analysis of Base-T / Intrinsic-T / Grounded-T / PQ).

The judge ends its reply with three labelled lines in a fixed vocabulary (`DEFAULT_TEMPLATE`):

    WELL-POSED: yes | no
    ANSWER: correct | wrong
    ERROR: none | missing_information | contradictory | ambiguous | not_a_problem | wrong_answer

The paper gives well-posed and correct-answer rates but no list of error kinds: `ERROR_KINDS` is ours.
A reply is read as text, never evaluated. A field that is absent, outside the vocabulary, or given two
different values is None (unparsable); a verdict whose three lines contradict each other is unparsable as
a whole. Unparsable verdicts are counted and reported, never guessed; the rates are over parsed verdicts.
Where the world knows the true answer (arithmetic), the judge's answer verdicts are scored against it.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

from soar.core import seeds
from soar.core.config import at_least, dump_config
from soar.core.io import atomic_write_text, write_jsonl
from soar.core.problems import Problem, load_problems
from soar.engine.setup import ModelSetup
from soar.world import World, make_world
from soar.world.formats import STUDENT_TEMPLATE

ILL_POSED = {
    "missing_information": "a quantity or condition needed to solve it is not given",
    "contradictory": "its conditions contradict each other or ask for something impossible",
    "ambiguous": "it can be read in more than one way, or has more than one answer",
    "not_a_problem": "it is not a math problem at all: garbled text, a statement, a solution",
}
"""the kinds of an ill-posed question (ours: the paper names none)"""
ERROR_KINDS = ("none", *ILL_POSED, "wrong_answer")
"""none = well-posed with a correct answer; wrong_answer = well-posed with a wrong one; else why ill-posed"""

DEFAULT_TEMPLATE = (
    "You are checking a math problem and the answer its author gave.\n\n"
    "Problem: {question}\n"
    "Proposed answer: {answer}\n\n"
    "First decide whether the problem is well-posed: complete, consistent, unambiguous, with exactly one "
    "answer. If it is not, name the error: "
    + "; ".join(f"{k} ({v})" for k, v in ILL_POSED.items())
    + ". Then solve it and decide whether the proposed answer is correct (an ill-posed problem has no "
    "correct answer). End your reply with exactly these three lines:\n"
    "WELL-POSED: yes or no\n"
    "ANSWER: correct or wrong\n"
    "ERROR: one of " + ", ".join(ERROR_KINDS) + " (none: well-posed and correct; wrong_answer: well-posed "
    "but the answer is wrong)"
)


@dataclass
class JudgeConfig(ModelSetup):
    """`soar judge`: `model` is the judge; `world` says whether true answers are known (arithmetic)."""

    questions: tuple[str, ...] = ("hard_test=data/hard/test.jsonl",)
    """question sets as [NAME=]PATH: a JSONL file of problems (e.g. a teacher run's pq.jsonl) or a folder of
    them (a main job's runs/main/questions: one set per file); NAME defaults to the file's stem"""
    out: str = "runs/judge"
    """folder for judgments.jsonl, summary.json and judge.md"""
    template: str = DEFAULT_TEMPLATE
    """the judge's request; {question} and {answer} are filled in (other braces are kept as written)"""
    max_new_tokens: int = 256
    """longest judge reply"""
    temperature: float = 0.0
    """0 = greedy"""
    seed: int = 0
    """sampling seed (temperature > 0): batch b draws with seeds.derive(seed, b)"""
    limit: int = 0
    """judge only the first `limit` questions of each set (0 = all)"""
    batch_size: int = 16
    """questions per generation batch"""

    def __post_init__(self) -> None:
        super().__post_init__()
        at_least(self, 0, "temperature", "limit")
        at_least(self, 1, "batch_size")
        missing = [f"{{{k}}}" for k in ("question", "answer") if f"{{{k}}}" not in self.template]
        if missing:
            raise ValueError(f"template must contain {' and '.join(missing)}")
        if not self.questions:
            raise ValueError("questions must name at least one set")
        for spec in self.questions:
            parse_set_spec(spec)


# --------------------------------------------------------------------------------------------------------
# Prompt and verdict (pure)
_SET_NAME = re.compile(r"[\w.-]+")
_FIELD = re.compile(r"\{(question|answer)\}")


def parse_set_spec(spec: str) -> tuple[str | None, Path]:
    """`'pq=runs/teach/pq.jsonl'` -> `('pq', Path(...))`; a bare path -> `(None, path)`. A left side that
    is not a plain name (`runs/a=b/x.jsonl`) is part of the path."""
    name, sep, path = spec.partition("=")
    if sep and _SET_NAME.fullmatch(name):
        if not path.strip():
            raise ValueError(f"questions: {spec!r} names no file")
        return name, Path(path)
    if not spec.strip():
        raise ValueError("questions: an empty entry")
    return None, Path(spec)


def judge_prompt(template: str, question: str, answer: str) -> str:
    """`template` with {question} and {answer} filled in, in one pass (a question that contains the text
    "{answer}" stays as written)."""
    values = {"question": question, "answer": answer}
    return _FIELD.sub(lambda m: values[m.group(1)], template)


def wrap_prompt(text: str, tokenizer, chat_template: bool, date_string: str) -> str:
    """`text` as one user turn of the tokenizer's chat template when asked and it has one, else the plain
    "User: ... Assistant: " of the text worlds."""
    if chat_template:
        from soar.world.math import chat_prompt

        wrapped = chat_prompt(tokenizer, text, date_string)
        if wrapped is not None:
            return wrapped
    return STUDENT_TEMPLATE.format(question=text)


_WELL_POSED = {"yes": True, "no": False}
_ANSWER = {"correct": True, "wrong": False, "incorrect": False}
_ERROR = {k: k for k in ERROR_KINDS}
# A label at the start of a line, after any markdown (`**WELL-POSED:** yes`, `- Answer: correct`, `3. ...`).
_LABEL = re.compile(r"^[^\w\n]*(?:\d+[.)])?[^\w\n]*(well[ _-]*posed|answer|error)[^\w\n:]*:(.*)$", re.I | re.M)


def _phrase(word: str) -> str:
    """A vocabulary item as a pattern: its words joined by spaces, underscores or hyphens."""
    return r"[\s_-]+".join(map(re.escape, re.split(r"[\s_]+", word)))


def _read_value(text: str, vocab: dict[str, object]) -> object | None:
    """The vocabulary item that `text` (what follows a label's colon) starts with; None when it starts with
    none, or lists a second one right after it (`yes or no`: the format line echoed, not a verdict)."""
    t = text.strip().lower().lstrip("*`'\" ")
    for word in sorted(vocab, key=len, reverse=True):  # the longest first: `none` before `no`
        m = re.match(_phrase(word) + r"(?![a-z0-9_])", t)
        if m:
            rest = re.sub(r"^[\s*`'\",/|]*(?:or\b|and\b)?[\s*`'\"]*", "", t[m.end() :])
            if any(re.match(_phrase(w) + r"(?![a-z0-9_])", rest) for w in vocab):
                return None
            return vocab[word]
    return None


def _field(found: list[object]) -> object | None:
    """One field's value from all its readable lines: the value they agree on, else None."""
    return found[0] if found and all(v == found[0] for v in found) else None


def consistent(well_posed: bool, answer_correct: bool, error_kind: str) -> bool:
    """Do the three lines agree: none = well-posed and correct, wrong_answer = well-posed and wrong, an
    ill-posed kind = not well-posed (and so no correct answer)?"""
    if error_kind == "none":
        return well_posed and answer_correct
    if error_kind == "wrong_answer":
        return well_posed and not answer_correct
    return not well_posed and not answer_correct


def parse_verdict(reply: str) -> tuple[bool | None, bool | None, str | None]:
    """(well_posed, answer_correct, error_kind) from a judge's reply; None = that field is unparsable.
    Contradictory lines (e.g. `WELL-POSED: no` with `ERROR: none`) make all three None."""
    found: dict[str, list[object]] = {"well": [], "answer": [], "error": []}
    vocab = {"well": _WELL_POSED, "answer": _ANSWER, "error": _ERROR}
    for m in _LABEL.finditer(reply):
        label = m.group(1).lower()
        key = "well" if label.startswith("well") else label
        value = _read_value(m.group(2), vocab[key])
        if value is not None:
            found[key].append(value)
    well, answer, error = (_field(found[k]) for k in ("well", "answer", "error"))
    if None not in (well, answer, error) and not consistent(well, answer, error):  # type: ignore[arg-type]
        return None, None, None
    return well, answer, error  # type: ignore[return-value]


def parsed(row: dict) -> bool:
    return None not in (row["well_posed"], row["answer_correct"], row["error_kind"])


def _pct(k: int, n: int) -> float | None:
    return 100.0 * k / n if n else None


def summarize_set(rows: list[dict]) -> dict:
    """n, unparsable verdicts, well-posed and answer-correct rates (over parsed verdicts), counts per error
    kind, and where rows carry `truth_correct`: the true correct-answer rate and the judge's agreement."""
    ok = [r for r in rows if parsed(r)]
    s = {
        "n": len(rows),
        "parsed": len(ok),
        "unparsable": len(rows) - len(ok),
        "unparsable_pct": _pct(len(rows) - len(ok), len(rows)),
        "well_posed_pct": _pct(sum(r["well_posed"] for r in ok), len(ok)),
        "answer_correct_pct": _pct(sum(r["answer_correct"] for r in ok), len(ok)),
        "error_kinds": {k: sum(r["error_kind"] == k for r in ok) for k in ERROR_KINDS},
        "unparsable_fields": {
            f: sum(r[f] is None for r in rows) for f in ("well_posed", "answer_correct", "error_kind")
        },
    }
    known = [r for r in rows if r.get("truth_correct") is not None]
    if known:
        both = [r for r in known if r["answer_correct"] is not None]
        s["truth"] = {
            "n": len(known),
            "answer_correct_pct": _pct(sum(r["truth_correct"] for r in known), len(known)),
            "compared": len(both),
            "judge_agrees_pct": _pct(sum(r["answer_correct"] == r["truth_correct"] for r in both), len(both)),
        }
    return s


def judge_markdown(summary: dict[str, dict], model: str) -> str:
    """The per-set table of judge.md."""
    truth = any("truth" in s for s in summary.values())
    head = ["set", "n", "unparsable %", "well-posed %", "answer correct %", *ERROR_KINDS]
    head += ["true answer correct %", "judge agrees with truth %"] if truth else []

    def f(x: float | None) -> str:
        return "–" if x is None else f"{x:.1f}"

    lines = [
        f"# Question quality (judge: {model})",
        "",
        "Rates are over parsed verdicts; an unparsable reply is counted, never guessed (judgments.jsonl keeps it).",
        "",
        "| " + " | ".join(head) + " |",
        "|---" * len(head) + "|",
    ]
    for name, s in summary.items():
        cells = [name, str(s["n"]), f(s["unparsable_pct"]), f(s["well_posed_pct"]), f(s["answer_correct_pct"])]
        cells += [str(s["error_kinds"][k]) for k in ERROR_KINDS]
        if truth:
            t = s.get("truth", {})
            cells += [f(t.get("answer_correct_pct")), f(t.get("judge_agrees_pct"))]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------------------------------------
# The job
def read_sets(specs: tuple[str, ...], limit: int = 0) -> dict[str, list[Problem]]:
    """Set name -> its problems (the first `limit`, when > 0); a folder gives one set per *.jsonl file."""
    sets: dict[str, list[Problem]] = {}
    where: dict[str, Path] = {}
    for spec in specs:
        name, path = parse_set_spec(spec)
        if path.is_dir():
            if name is not None:
                raise ValueError(f"questions: {spec!r}: the sets of a folder are named by their files; drop {name}=")
            files = sorted(path.glob("*.jsonl"))
            if not files:
                raise FileNotFoundError(f"questions: {path} holds no .jsonl file")
            named = [(p.stem, p) for p in files]
        else:
            named = [(name or path.stem, path)]
        for n, p in named:
            if n in sets:
                raise ValueError(f"questions: two sets named {n!r} ({where[n]}, {p}); name them: NAME=PATH")
            problems = load_problems(p)
            sets[n], where[n] = problems[:limit] if limit > 0 else problems, p
    return sets


def truth_correct(world: World, p: Problem) -> bool | None:
    """Is the set's answer the true one, where the world knows it (None elsewhere)?"""
    truth = world.true_answer(p.question) if world.true_answer is not None else None
    return None if truth is None else world.is_equal(truth, p.answer) is True


def judge_sets(model, tokenizer, sets: dict[str, list[Problem]], cfg: JudgeConfig, world: World) -> list[dict]:
    """One row per question: its set, the question and answer, the verdict, the truth where known, the reply."""
    from tqdm import tqdm

    from soar.engine.sampling import sample

    chat = cfg.prompts.chat_template
    items = [(name, i, p) for name, problems in sets.items() for i, p in enumerate(problems)]
    rows = []
    bar = tqdm(total=len(items), desc="judge", unit="question", dynamic_ncols=True)
    for b, start in enumerate(range(0, len(items), cfg.batch_size)):
        batch = items[start : start + cfg.batch_size]
        prompts = [
            wrap_prompt(judge_prompt(cfg.template, p.question, p.answer), tokenizer, chat, cfg.prompts.date_string)
            for _, _, p in batch
        ]
        replies = sample(
            model,
            tokenizer,
            prompts,
            1,
            temperature=cfg.temperature,
            max_new_tokens=cfg.max_new_tokens,
            seed=seeds.derive(cfg.seed, b),
        )
        for (name, i, p), (reply,) in zip(batch, replies, strict=True):
            well, answer, error = parse_verdict(reply.text)
            row = {"set": name, "index": i, "question": p.question, "answer": p.answer}
            row |= {"well_posed": well, "answer_correct": answer, "error_kind": error}
            if world.true_answer is not None:
                row["truth_correct"] = truth_correct(world, p)
            rows.append(row | {"reply": reply.text})
        bar.update(len(batch))
    bar.close()
    return rows


def run_judge(cfg: JudgeConfig) -> dict[str, dict]:
    """Judge every set; write judgments.jsonl, summary.json (per set) and judge.md. Returns the summary."""
    import torch

    from soar.engine.model import load_policy

    torch.set_num_threads(cfg.threads)
    sets = read_sets(cfg.questions, cfg.limit)  # bad input fails before the model loads
    model, tokenizer = load_policy(cfg.model, opts=cfg.load)
    world = make_world(cfg.world)
    rows = judge_sets(model, tokenizer, sets, cfg, world)
    summary = {name: summarize_set([r for r in rows if r["set"] == name]) for name in sets}
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    dump_config(cfg, out / "config.yaml")
    write_jsonl(out / "judgments.jsonl", rows)
    atomic_write_text(out / "summary.json", json.dumps({"judge": cfg.model, "sets": summary}, indent=1))
    md = judge_markdown(summary, cfg.model)
    atomic_write_text(out / "judge.md", md)
    print(md)
    return summary
