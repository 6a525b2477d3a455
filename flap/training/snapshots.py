"""Export the networks every few minutes of training, so a run's quality can be plotted against time."""

from __future__ import annotations

import json
from pathlib import Path

import lightning as L

__all__ = ["TimedSnapshots", "list_snapshots"]


class TimedSnapshots(L.Callback):
    """Write ``export_pretrained`` folders every ``every_minutes`` of training time.

    Each snapshot is ``folder/min{MMM.M}`` (reference_net/, denoising_net/, training_stage.json) plus
    ``snapshot.json`` with ``{"minutes", "stage", "global_step"}``, where ``minutes`` is
    ``offset_minutes`` (time of the whole run spent before this stage) + the Trainer's training time
    so far (its ``Timer``, which a resumed run restores). Used by ``flap.finetune`` for the
    metric-against-minutes curve (``tools/finetune_curve.py``).

    Args:
        folder: where the snapshots go (created on first use).
        every_minutes: training minutes between snapshots (> 0).
        offset_minutes: minutes of the run before this stage started (preparation, earlier stages).

    Raises:
        ValueError: ``every_minutes`` is not positive.
    """

    def __init__(self, folder: str | Path, every_minutes: float, offset_minutes: float = 0.0):
        if not every_minutes > 0:
            raise ValueError(f"snapshot_minutes: expected a number > 0, got {every_minutes}")
        self.folder, self.every, self.offset = Path(folder), float(every_minutes), float(offset_minutes)
        self._next = None

    @staticmethod
    def _train_minutes(trainer) -> float:
        timer = next((c for c in trainer.callbacks if type(c).__name__ == "Timer"), None)
        return float(timer.time_elapsed("train")) / 60 if timer is not None else 0.0

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        """Export when the training clock passes the next multiple of ``every_minutes``."""
        minutes = self._train_minutes(trainer)
        if self._next is None:  # first batch (also of a resumed run): next multiple after now
            self._next = (int(minutes / self.every) + 1) * self.every
        if minutes < self._next:
            return
        self._next = (int(minutes / self.every) + 1) * self.every
        self.export(pl_module, self.offset + minutes)

    def on_train_end(self, trainer, pl_module) -> None:
        """Always export the end of the stage too (the last point of the curve)."""
        self.export(pl_module, self.offset + self._train_minutes(trainer))

    def export(self, pl_module, minutes: float) -> Path | None:
        """Write one snapshot at ``minutes``; returns its folder (``None`` on non-zero DDP ranks)."""
        target = self.folder / f"min{minutes:05.1f}"
        if target.exists():
            return target
        done = pl_module.export_pretrained(target)
        if done is not None:
            info = {"minutes": round(minutes, 2), "stage": int(pl_module.stage),
                    "global_step": int(pl_module.global_step)}
            (done / "snapshot.json").write_text(json.dumps(info))
        return done


def list_snapshots(folder: str | Path) -> list[tuple[float, Path]]:
    """``[(minutes, snapshot folder), ...]`` sorted by minutes; ``[]`` if ``folder`` has none."""
    out = []
    for info in Path(folder).glob("min*/snapshot.json"):
        out.append((float(json.loads(info.read_text())["minutes"]), info.parent))
    return sorted(out)
