"""Tables (markdown) and plots (PNG) of results. Only formatting here: numbers come from the callers."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from soar.core.io import atomic_write_text  # noqa: E402
from soar.engine.rloo import lr_schedule  # noqa: E402
from soar.jobs.harness import ARM_NAMES  # noqa: E402
from soar.method.rewards import moving_average  # noqa: E402


def pm(ms: tuple[float, float], scale: float = 100.0, digits: int = 1) -> str:
    m, s = ms
    return f"{m * scale:.{digits}f} ± {s * scale:.{digits}f}"


def pass_at_k_table(
    table: dict[str, dict[str, tuple[float, float]]], ks, names: dict[str, str], prefix: str = ""
) -> str:
    """One row per arm that has the `prefix`ed columns (prefix "transfer/<set>/": a transfer set's)."""
    head = "| method | " + " | ".join(f"pass@{k}" for k in ks) + " | greedy | solved (of N) |"
    lines = [head, "|---" * (len(ks) + 3) + "|"]
    for arm, stats in table.items():
        if f"{prefix}solved" not in stats:
            continue
        cells = [pm(stats[f"{prefix}pass@{k}"]) for k in ks]
        solved = stats[f"{prefix}solved"]
        n = int(stats[f"{prefix}n_problems"][0])
        lines.append(
            f"| {names.get(arm, arm)} | "
            + " | ".join(cells)
            + f" | {pm(stats[f'{prefix}greedy'])} | {solved[0]:.1f} ± {solved[1]:.1f} (of {n}) |"
        )
    return "\n".join(lines)


def schedule_phrase(rloo, switch: int | None = None) -> str:
    """The learning rate of an RLOOConfig in words, and the share of the peak at step `switch` (where a
    curriculum's hard phase starts: under a cosine decay it runs at the schedule's tail)."""
    warm = f"after {rloo.warmup} warm-up steps" if rloo.warmup else "without warm-up"
    shape = "constant" if rloo.schedule == "constant" else "a cosine decay to 0 at the last step"
    words = f"learning rate {rloo.lr:g}, {shape} {warm}"
    if switch is not None:
        share = lr_schedule(rloo.steps, rloo.warmup, rloo.schedule)(switch)
        words += f" (the curricula's hard phase starts at {100 * share:.0f}% of it)"
    return words


def per_seed_table(results: list[dict], key: str = "pass@32", hard_phases: dict | None = None) -> str:
    """One row per arm (ARM_NAMES order), one column per seed: `key` in % and the problems solved, and where
    `hard_phases` has the pair, its (first step with a hard success or None, steps with one)."""
    seeds = sorted({r["seed"] for r in results})
    cell = {(r["arm"], r["seed"]): r for r in results}
    arms = [a for a in ARM_NAMES if any(r["arm"] == a for r in results)]
    arms += sorted({r["arm"] for r in results} - set(arms))
    lines = [f"| method ({key}, solved) | " + " | ".join(f"seed {s}" for s in seeds) + " |"]
    lines.append("|---" * (len(seeds) + 1) + "|")
    hard_phases = hard_phases or {}

    def text(arm: str, seed: int) -> str:
        if (arm, seed) not in cell:
            return "-"
        row = cell[arm, seed]
        words = f"{100 * row[key]:.1f}% ({row['solved']}"
        if (arm, seed) in hard_phases:
            first, steps = hard_phases[arm, seed]
            words += f"; hard successes from step {first}, in {steps} steps" if steps else "; no hard success"
        return words + ")"

    for arm in arms:
        cells = [text(arm, s) for s in seeds]
        lines.append(f"| {ARM_NAMES.get(arm, arm)} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def per_seed_section(results: list[dict], ks, hard_phases: dict | None) -> list[str]:
    """The per-seed table at the largest k, with its one-line heading (report lines)."""
    return [
        "Per seed, with the training batches of the hard phase that held a right answer (a mean over seeds hides"
        " a run that never took off):",
        "",
        per_seed_table(results, f"pass@{max(ks)}", hard_phases),
        "",
    ]


def hard_set_line(manifest: dict) -> str:
    """One sentence on how the hard sets were screened, from their manifest.json."""
    steps = [f"pool {manifest.get('pool')}"]
    if manifest.get("max_log10_p") is not None:
        steps.append(
            f"canonical-solution bound below 1e-{-manifest['max_log10_p']:g} "
            f"{manifest.get('solution_bound_below_max_log10_p')}, estimated success below it "
            f"{manifest.get('estimate_below_max_log10_p')}"
        )
    if manifest.get("second_estimate_below_max_log10_p") is not None:
        steps.append(f"a second, independent estimate below it {manifest['second_estimate_below_max_log10_p']}")
    steps.append(f"fail@{manifest.get('k')} {manifest.get('fail_first_pass')}")
    if manifest.get("fail_both_passes") is not None:
        steps.append(f"fail@{manifest.get('k')} again {manifest.get('fail_both_passes')}")
    return (
        f"Hard sets: {' -> '.join(steps)}; train {manifest.get('train')}, test {manifest.get('test')} "
        f"({manifest.get('source')})."
    )


def premise_markdown(
    table, edge: list[dict], manifest: dict, cfg, results: list[dict], hard_phases: dict | None = None
) -> str:
    seeds = len(cfg.seeds)
    parts = ["# The premise: Hard-Only vs an oracle curriculum", ""]
    mixed = getattr(cfg, "mode", "curriculum") == "mixed"
    use = (
        f"in mixed mode, every batch of {cfg.rloo.batch_size} holding {cfg.rloo.batch_size - cfg.mixed_stones} "
        f"hard train problems and {cfg.mixed_stones} stepping stones throughout"
        if mixed
        else f"the curriculum spending the first {cfg.curriculum_steps} on stepping stones"
    )
    parts.append(
        f"Held-out hard TEST set, pass@k in % from n={cfg.eval.n} samples (temperature "
        f"{cfg.eval.temperature}), mean ± SD over {seeds} seed(s); {cfg.rloo.steps} RLOO steps per arm, "
        f"{use} ({', '.join(cfg.stones)}; hard steps with look-ahead "
        f"{getattr(cfg, 'stone_min_run', 2)}-{getattr(cfg, 'stone_max_run', 3)}; true answers for the oracle "
        "curriculum, the base model's own temperature-1 answer for the self-answered one); "
        f"{schedule_phrase(cfg.rloo, None if mixed else cfg.curriculum_steps)}."
    )
    parts += ["", pass_at_k_table(table, cfg.eval.ks, ARM_NAMES), ""]
    parts += per_seed_section(results, cfg.eval.ks, hard_phases)
    parts += ["![pass@k](premise.png)", ""]
    if manifest:
        parts.append(hard_set_line(manifest))
        parts.append("")
    if not edge:
        return "\n".join(parts) + "\n"
    parts += [
        "## Base model by family and level (edge of learnability)",
        "",
        "![edge](edge.png)",
        "",
        "| family | level | pass@1 | pass@32 | greedy |",
        "|---|---|---|---|---|",
    ]
    for r in edge:
        top = max(k for k in (int(x.split("@")[1]) for x in r if x.startswith("pass@")))
        parts.append(
            f"| {r['family']} | {r['level']} | {100 * r['pass@1']:.1f} | {100 * r[f'pass@{top}']:.1f} | "
            f"{100 * r['greedy']:.1f} |"
        )
    return "\n".join(parts) + "\n"


def pass_at_k_plot(table, ks, path: str | Path, title: str, names: dict[str, str] | None = None) -> None:
    names = names or ARM_NAMES
    fig, ax = plt.subplots(figsize=(5.5, 4))
    for arm, stats in table.items():
        m = [100 * stats[f"pass@{k}"][0] for k in ks]
        s = [100 * stats[f"pass@{k}"][1] for k in ks]
        ax.errorbar(list(ks), m, yerr=s, marker="o", capsize=3, label=names.get(arm, arm))
    ax.set_xscale("log", base=2)
    ax.set_xticks(list(ks), [str(k) for k in ks])
    ax.set_xlabel("k")
    ax.set_ylabel("pass@k (%)")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)


def edge_plot(edge: list[dict], path: str | Path) -> None:
    """Base pass@1 (bars) per family and level."""
    fams: dict[str, list[dict]] = {}
    for r in edge:
        fams.setdefault(r["family"], []).append(r)
    fig, axes = plt.subplots(1, len(fams), figsize=(3 * len(fams), 3), sharey=True)
    for ax, (fam, rows) in zip(axes, fams.items(), strict=True):
        top = max(int(k.split("@")[1]) for k in rows[0] if k.startswith("pass@"))
        x = [r["level"] for r in rows]
        ax.bar([v - 0.2 for v in x], [100 * r["pass@1"] for r in rows], width=0.4, label="pass@1")
        ax.bar([v + 0.2 for v in x], [100 * r[f"pass@{top}"] for r in rows], width=0.4, label=f"pass@{top}")
        ax.set_title(fam, fontsize=9)
        ax.set_xlabel("level")
    axes[0].set_ylabel("%")
    axes[0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def spread_note(cfg) -> str:
    """What the +- of the teacher arms covers when there are several teacher seeds."""
    tseeds = getattr(cfg, "teacher_seeds", ())
    if len(tseeds) < 2:
        return ""
    return (
        f"; for the arms that depend on a teacher run (Grounded-T, Intrinsic-T, PQ, PS and their variants), "
        f"mean ± SD over {len(tseeds)} teacher seeds {list(tseeds)}, each the mean over the student seeds"
    )


def student_mode_phrase(student) -> str:
    """How a main-job student meets its question set, in words."""
    bs = student.rloo.batch_size
    if student.mode == "curriculum":
        return f"curriculum; {student.synthetic_steps} on synthetic questions first"
    if n := student.mixed_questions:
        return f"mixed; every batch of {bs} holding {n} questions and {bs - n} hard train problems"
    return f"mixed; batches of {bs} drawn from the questions pooled with the hard train set"


def main_report(
    cfg,
    out: Path,
    table,
    qstats: dict,
    teacher_metrics: dict[str, list[dict]],
    promos: dict[str, list[dict]],
    seconds: float,
    mix: dict[str, list[dict]] | None = None,
    results: list[dict] | None = None,
    hard_phases: dict | None = None,
) -> str:
    """`report.md` of `soar run` plus its plots: pass@k table (and per seed, from `results`, with the
    `hard_phases` counts of per_seed_table), Vendi table, promotions, teacher reward."""
    out = Path(out)
    ks = cfg.eval.ks
    switch = cfg.student.synthetic_steps if cfg.student.mode == "curriculum" else None
    parts = [
        "# SOAR run report",
        "",
        f"Held-out hard TEST set{f' (its first {cfg.test_limit} problems)' if getattr(cfg, 'test_limit', 0) else ''}, "
        f"pass@k in % from n={cfg.eval.n} samples, mean ± SD over "
        f"{len(cfg.seeds)} student seed(s){spread_note(cfg)}. Trained students: {cfg.student.rloo.steps} RLOO steps "
        f"({student_mode_phrase(cfg.student)}), "
        f"{schedule_phrase(cfg.student.rloo, switch)}."
        f" Wall time of this call: {seconds / 60:.1f} min (a resumed run counts only its own part).",
        "",
    ]
    if table:
        parts += [pass_at_k_table(table, ks, ARM_NAMES), "", "![pass@k](pass_at_k.png)", ""]
        pass_at_k_plot(table, ks, out / "pass_at_k.png", "Held-out hard TEST set", ARM_NAMES)
    if results:
        parts += per_seed_section(results, ks, hard_phases)
    for name in getattr(cfg, "transfer", {}):
        parts += [
            f"## Transfer: {name}",
            "",
            f"The same students on {cfg.transfer[name]}, evaluated at training step "
            f"{min(cfg.student.transfer_step, cfg.student.rloo.steps)} (the base model and PS as they are).",
            "",
            pass_at_k_table(table, ks, ARM_NAMES, f"transfer/{name}/"),
            "",
        ]
    parts += [
        "## Question sets",
        "",
        f"| set | questions | Vendi ({'n-gram' if getattr(cfg, 'vendi_embedding', 'ngram') == 'ngram' else 'model'}) "
        "| teacher answers correct | difficulty (family:level: count) |",
        "|---|---|---|---|---|",
    ]
    for name, s in qstats.items():
        corr = "n/a" if s["answer_correct"] is None else f"{100 * s['answer_correct']:.1f}%"
        hist = ", ".join(f"{k}: {v}" for k, v in s["histogram"].items())
        parts.append(
            f"| {ARM_NAMES.get(name, name)} | {s['n']} | {s['vendi']:.2f} ± {s['vendi_sd']:.2f} | {corr} | {hist} |"
        )
    parts += ["", "## Promotions", ""]
    if any(promos.values()):
        parts += ["| SOAR run | outer step | moving average | dataset | R_k | PQ size |", "|---|---|---|---|---|---|"]
        parts += [
            f"| {run} | {p['step']} | {p['rbar']:.4f} | {p['dataset']} | {p['R_k']:.4f} | {p['pq_size']} |"
            for run, rows in promos.items()
            for p in rows
        ]
    else:
        parts.append(f"No promotion: the moving average of the teacher reward never exceeded tau = {cfg.soar.tau}.")
    if teacher_metrics:
        teacher_plot(teacher_metrics, cfg.soar.window, out / "teacher_reward.png")
        parts += ["", "## Teacher reward", "", "![teacher reward](teacher_reward.png)", ""]
    if mix and any(mix.values()):
        question_mix_plot(mix, out / "question_mix.png")
        parts += ["", "## The teacher's question mix over outer steps", "", question_mix_table(mix), ""]
        parts += ["![question mix](question_mix.png)", ""]
    md = "\n".join(parts) + "\n"
    atomic_write_text(out / "report.md", md)
    print(md)
    return md


def teacher_plot(metrics: dict[str, list[dict]], window: int, path: str | Path) -> None:
    """Rhat per outer step and its moving average, and the baseline student's Q_R accuracy."""
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.5))
    for name, rows in metrics.items():
        steps = [r["step"] for r in rows]
        rhat = [r["rhat"] for r in rows]
        ma = [moving_average(rhat[: i + 1], window) for i in range(len(rhat))]
        (line,) = axes[0].plot(steps, rhat, alpha=0.4, label=f"{name}: R-hat")
        axes[0].plot(steps, ma, color=line.get_color(), label=f"{name}: moving average (m={window})")
        axes[1].plot(steps, [r["baseline_acc"] for r in rows], label=name)
    axes[0].set_xlabel("outer step")
    axes[0].set_ylabel("teacher reward")
    axes[0].legend(fontsize=7)
    axes[1].set_xlabel("outer step")
    axes[1].set_ylabel("baseline student accuracy on Q_R")
    axes[1].legend(fontsize=7)
    for ax in axes:
        ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _mean_shares(steps: list[dict]) -> dict[str, float]:
    kinds = dict.fromkeys(k for r in steps for k in r["shares"])
    return {k: sum(r["shares"].get(k, 0.0) for r in steps) / len(steps) for k in kinds}


def question_mix_table(mix: dict[str, list[dict]], edge: int = 3) -> str:
    """Per teacher run: each kind's share of the questions in its first and last `edge` outer steps, and the
    share of right teacher answers there."""
    lines = ["| teacher run | kind | first steps | last steps |", "|---|---|---|---|"]
    for run, steps in mix.items():
        if not steps:
            continue
        first, last = steps[:edge], steps[-edge:]
        a, b = _mean_shares(first), _mean_shares(last)
        for k in sorted(set(a) | set(b), key=lambda k: -a.get(k, 0.0)):
            lines.append(f"| {run} | {k} | {100 * a.get(k, 0.0):.1f}% | {100 * b.get(k, 0.0):.1f}% |")
        right = [[r["answer_correct"] for r in part if r["answer_correct"] is not None] for part in (first, last)]
        if all(right):
            cells = " | ".join(f"{100 * sum(x) / len(x):.1f}%" for x in right)
            lines.append(f"| {run} | (teacher answers right) | {cells} |")
    span = f"first / last {edge} outer steps"
    return f"Share of the questions each teacher run wrote, {span}.\n\n" + "\n".join(lines)


def question_mix_plot(mix: dict[str, list[dict]], path: str | Path) -> None:
    """One panel per teacher run: the share of each question kind per outer step."""
    runs = [r for r, steps in mix.items() if steps]
    fig, axes = plt.subplots(1, len(runs), figsize=(4 * len(runs), 3.2), sharey=True, squeeze=False)
    for ax, run in zip(axes[0], runs, strict=True):
        steps = mix[run]
        kinds = dict.fromkeys(k for r in steps for k in r["shares"])
        for k in kinds:
            ax.plot([r["step"] for r in steps], [r["shares"].get(k, 0.0) for r in steps], marker=".", label=k)
        ax.set_title(run, fontsize=9)
        ax.set_xlabel("outer step")
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("share of the teacher's questions")
    axes[0][-1].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
