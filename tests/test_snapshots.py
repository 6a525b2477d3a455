"""``TimedSnapshots``: exports at each multiple of the training clock, minutes offset, resumed runs."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest

from flap.training.snapshots import TimedSnapshots, list_snapshots


class Timer:  # found by class name, like Lightning's Timer callback
    def __init__(self):
        self.seconds = 0.0

    def time_elapsed(self, stage):
        assert stage == "train"
        return self.seconds


class FakeModule:
    stage, global_step = 1, 0

    def export_pretrained(self, folder):
        folder.mkdir(parents=True)
        (folder / "training_stage.json").write_text("{}")
        return folder


def _run(snap, timer, module, seconds):
    trainer = SimpleNamespace(callbacks=[timer, snap])
    for s in seconds:
        timer.seconds, module.global_step = s, module.global_step + 1
        snap.on_train_batch_end(trainer, module, None, None, 0)
    return trainer


def test_exports_at_each_multiple_with_offset(tmp_path):
    snap, timer, module = TimedSnapshots(tmp_path, every_minutes=2, offset_minutes=10), Timer(), FakeModule()
    trainer = _run(snap, timer, module, [0, 60, 119, 121, 200, 239, 241, 500])
    # exports when the clock passes 2 min (step 4), 4 min (step 7) and at 8.3 min (step 8: one, not two)
    got = [(m, json.loads((p / "snapshot.json").read_text())["global_step"]) for m, p in list_snapshots(tmp_path)]
    assert got == [(pytest.approx(10 + 121 / 60, abs=0.01), 4), (pytest.approx(10 + 241 / 60, abs=0.01), 7),
                   (pytest.approx(10 + 500 / 60, abs=0.01), 8)]
    snap.on_train_end(trainer, module)  # the end of the stage is always a point (same clock: not twice)
    assert len(list_snapshots(tmp_path)) == 3
    timer.seconds = 530
    snap.on_train_end(trainer, module)
    assert [round(m, 2) for m, _ in list_snapshots(tmp_path)][-1] == pytest.approx(10 + 530 / 60, abs=0.01)


def test_resumed_run_waits_for_the_next_multiple(tmp_path):
    snap, timer, module = TimedSnapshots(tmp_path, every_minutes=1), Timer(), FakeModule()
    _run(snap, timer, module, [150, 170])  # restored clock at 2.5 min: nothing until 3 min
    assert list_snapshots(tmp_path) == []
    _run(snap, timer, module, [181])
    assert [round(m, 2) for m, _ in list_snapshots(tmp_path)] == [pytest.approx(181 / 60, abs=0.01)]


def test_rejects_non_positive_interval(tmp_path):
    with pytest.raises(ValueError, match="snapshot_minutes"):
        TimedSnapshots(tmp_path, every_minutes=0)
    assert list_snapshots(tmp_path / "absent") == []
