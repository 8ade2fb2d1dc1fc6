"""Tables (markdown) and plots (PNG) of results. Only formatting here: numbers come from the callers."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

ARM_NAMES = {"base": "Base model", "hard_only": "Hard-Only", "curriculum": "Oracle curriculum"}


def pm(ms: tuple[float, float], scale: float = 100.0, digits: int = 1) -> str:
    m, s = ms
    return f"{m * scale:.{digits}f} ± {s * scale:.{digits}f}"


def pass_at_k_table(table: dict[str, dict[str, tuple[float, float]]], ks, names: dict[str, str]) -> str:
    head = "| method | " + " | ".join(f"pass@{k}" for k in ks) + " | greedy | solved (of N) |"
    lines = [head, "|---" * (len(ks) + 3) + "|"]
    for arm, stats in table.items():
        cells = [pm(stats[f"pass@{k}"]) for k in ks]
        solved = stats["solved"]
        n = int(stats["n_problems"][0])
        lines.append(f"| {names.get(arm, arm)} | " + " | ".join(cells)
                     + f" | {pm(stats['greedy'])} | {solved[0]:.1f} ± {solved[1]:.1f} (of {n}) |")
    return "\n".join(lines)


def premise_markdown(table, edge: list[dict], manifest: dict, cfg) -> str:
    seeds = len(cfg.seeds)
    parts = ["# The premise: Hard-Only vs an oracle curriculum", ""]
    parts.append(f"Held-out hard TEST set, pass@k in % from n={cfg.eval.n} samples (temperature "
                 f"{cfg.eval.temperature}), mean ± SD over {seeds} seed(s); {cfg.rloo.steps} RLOO steps per arm, "
                 f"the curriculum spending the first {cfg.curriculum_steps} on stepping stones "
                 f"({', '.join(cfg.stones)}).")
    parts += ["", pass_at_k_table(table, cfg.eval.ks, ARM_NAMES), ""]
    if manifest:
        parts.append(f"Hard sets: pool {manifest.get('pool')}, fail@{manifest.get('k')} on the first pass "
                     f"{manifest.get('fail_first_pass')}, on both passes {manifest.get('fail_both_passes')}; "
                     f"train {manifest.get('train')}, test {manifest.get('test')} ({manifest.get('source')}).")
        parts.append("")
    parts += ["## Base model by family and level (edge of learnability)", "",
              "| family | level | pass@1 | pass@32 | greedy |", "|---|---|---|---|---|"]
    for r in edge:
        top = max(k for k in (int(x.split("@")[1]) for x in r if x.startswith("pass@")))
        parts.append(f"| {r['family']} | {r['level']} | {100 * r['pass@1']:.1f} | {100 * r[f'pass@{top}']:.1f} | "
                     f"{100 * r['greedy']:.1f} |")
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
