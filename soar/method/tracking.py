"""One logging call per outer step, to the backends a run lists in `report_to` (tensorboard, wandb).

Metric names are flat and namespaced (`outer/rhat`, `promotion/count`). W&B honours its own environment
(`WANDB_MODE=offline` writes the run under the run folder and needs no network).
"""

from __future__ import annotations

from pathlib import Path

REPORTERS = ("tensorboard", "wandb")


def check_report_to(report_to: tuple[str, ...]) -> None:
    bad = [r for r in report_to if r not in REPORTERS]
    if bad:
        raise ValueError(f"report_to: unknown backend(s) {bad}; valid: {', '.join(REPORTERS)} (or [] for none)")


class Tracker:
    """Scalar metrics to every listed backend; a backend that is not installed is reported once and skipped."""

    def __init__(self, out: str | Path, report_to: tuple[str, ...], name: str, config: dict | None = None):
        check_report_to(report_to)
        self._tb = self._wandb = None
        if "tensorboard" in report_to:
            try:
                from torch.utils.tensorboard import SummaryWriter

                self._tb = SummaryWriter(str(Path(out) / "tensorboard"))
            except ImportError:
                print("report_to: tensorboard is not installed; its logs are skipped")
        if "wandb" in report_to:
            try:
                import wandb
            except ImportError:
                print("report_to: wandb is not installed (pip install wandb); its logs are skipped")
            else:
                self._wandb = wandb.init(project="soar", name=name, dir=str(out), config=config, reinit="create_new")

    def log(self, metrics: dict[str, float], step: int) -> None:
        if self._tb is not None:
            for key, value in metrics.items():
                self._tb.add_scalar(key, value, step)
            self._tb.flush()
        if self._wandb is not None:
            self._wandb.log(metrics, step=step)

    def close(self) -> None:
        if self._tb is not None:
            self._tb.close()
        if self._wandb is not None:
            self._wandb.finish()
