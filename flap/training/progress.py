"""A progress bar for a training run bounded by steps *and* time: stage, step, loss and an honest ETA."""

from __future__ import annotations

import time

import lightning as L

__all__ = ["StageProgress"]


class StageProgress(L.Callback):
    """tqdm bar over optimizer steps whose total is the number of steps that will actually run.

    A run stops at ``max_steps`` or when its time budget is spent, whichever comes first, so the
    bar's total is ``min(max_steps, step + steps that fit in the time left)``, re-estimated from
    the measured seconds per step; tqdm's ETA is then the real time to the end of the stage.

    Args:
        description: bar label, e.g. ``"stage 1/3 head motion"``.
        max_steps: step limit of the run.
        seconds: time budget of the run in seconds (the Trainer's ``max_time``).
        enabled: draw the bar (``False``: silent).
    """

    def __init__(self, description: str, max_steps: int, seconds: float, enabled: bool = True):
        self.description, self.max_steps, self.seconds, self.enabled = description, int(max_steps), float(seconds), enabled
        self.bar = None
        self._t0 = self._step0 = None

    def _elapsed_before(self, trainer) -> float:
        timer = next((c for c in trainer.callbacks if type(c).__name__ == "Timer"), None)
        return float(timer.time_elapsed("train")) if timer is not None else 0.0

    def on_train_start(self, trainer, pl_module) -> None:
        """Open the bar at the current step (a resumed run starts where it stopped)."""
        if not self.enabled:
            return
        from tqdm import tqdm

        self._t0, self._step0 = time.perf_counter(), trainer.global_step
        self.bar = tqdm(total=self.max_steps, initial=trainer.global_step, desc=self.description, unit="step",
                        dynamic_ncols=True)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        """Advance one step, show the loss, re-estimate the total from the time left."""
        if self.bar is None:
            return
        step = trainer.global_step
        done = step - self._step0
        if done > 0:
            per_step = (time.perf_counter() - self._t0) / done
            left = max(0.0, self.seconds - self._elapsed_before(trainer))
            self.bar.total = min(self.max_steps, step + int(left / per_step))
        loss = trainer.callback_metrics.get("train/loss_step", trainer.callback_metrics.get("train/loss"))
        if loss is not None:
            self.bar.set_postfix(loss=f"{float(loss):.4f}", refresh=False)
        self.bar.update(step - self.bar.n)

    def on_train_end(self, trainer, pl_module) -> None:
        """Close the bar."""
        if self.bar is not None:
            self.bar.total = self.bar.n
            self.bar.close()
            self.bar = None

    def on_exception(self, trainer, pl_module, exception) -> None:
        """Close the bar when the run stops on an error or an interrupt."""
        self.on_train_end(trainer, pl_module)
