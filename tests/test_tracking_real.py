"""Tracking real talking-head clips from ``../shared/data/video`` (done-when checks of the FLAME tracker).

* mirror: a horizontally flipped clip gives opposite yaw and roll (mean |yaw + yaw_flipped| < 2°);
* every clip tracks without error (slow);
* GRID: the tracked jaw opening follows the speech envelope (Pearson r ≥ 0.3 at the best lag within
  ±3 frames over the clip set, slow).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from flap.io import read_audio_track, read_video
from flap.signals import pearson, speech_envelope
from flap.tracking import FlameTracker, detect_landmarks

MAX_LAG = 3


@pytest.fixture(scope="module")
def tracker():
    return FlameTracker()


def mirror_yaw_roll(tracker: FlameTracker, path, max_frames=None) -> dict[str, float]:
    """Track a clip and its horizontal mirror image; mean |yaw + yaw'| and |roll + roll'| in degrees."""
    frames, fps = read_video(path, max_frames=max_frames)
    a = tracker.track_landmarks(detect_landmarks(frames, fps, source=str(path)))
    b = tracker.track_landmarks(
        detect_landmarks(np.ascontiguousarray(frames[:, :, ::-1]), fps, source=str(path))
    )
    pa, pb = a.coeffs.pose_degrees(), b.coeffs.pose_degrees()
    return {
        "yaw_sum": float((pa[:, 1] + pb[:, 1]).abs().mean()),
        "roll_sum": float((pa[:, 2] + pb[:, 2]).abs().mean()),
        "yaw_range": float(pa[:, 1].max() - pa[:, 1].min()),
        "pitch_diff": float((pa[:, 0] - pb[:, 0]).abs().mean()),
    }


def jaw_envelope_correlation(tracker: FlameTracker, clips, max_lag: int = MAX_LAG) -> dict:
    """Pearson r between tracked jaw opening and the RMS speech envelope, per lag, over a set of clips.

    Each clip's signals are standardised (z-scores), shifted by the lag within the clip, and all
    clips are concatenated. A positive lag means the jaw follows the sound.
    """
    pairs = []
    for path in clips:
        result = tracker.track(path)
        jaw = result.coeffs.jaw[:, 0].double().numpy()
        audio = read_audio_track(path, sample_rate=16000)
        env = speech_envelope(audio, 16000, result.fps, len(jaw))
        pairs.append(((jaw - jaw.mean()) / (jaw.std() + 1e-9), (env - env.mean()) / (env.std() + 1e-9)))
    by_lag = {}
    for lag in range(-max_lag, max_lag + 1):
        js, es = [], []
        for jaw, env in pairs:
            n = len(jaw)
            js.append(jaw[max(lag, 0) : n + min(lag, 0)])
            es.append(env[max(-lag, 0) : n - max(lag, 0)])
        by_lag[lag] = pearson(np.concatenate(js), np.concatenate(es))
    best = max(by_lag, key=lambda k: by_lag[k])
    per_clip = [
        pearson(j[max(best, 0) : len(j) + min(best, 0)], e[max(-best, 0) : len(e) - max(best, 0)])
        for j, e in pairs
    ]
    return {"r": by_lag[best], "lag": best, "by_lag": by_lag, "per_clip": per_clip}


def test_mirrored_clip_gives_opposite_yaw_and_roll(shared_data, tracker):
    stats = mirror_yaw_roll(tracker, shared_data / "video" / "liveportrait_d11.mp4", max_frames=40)
    assert stats["yaw_sum"] < 2.0, stats
    assert stats["roll_sum"] < 2.0, stats
    assert stats["pitch_diff"] < 2.0, stats


def test_real_clip_round_trip(shared_data, tmp_path, tracker):
    from flap.flame.coeffs import HeadCoeffs
    from flap.io import probe_video
    from flap.tracking import TrackingResult, track_video

    src = shared_data / "video" / "grid" / "bbaf2n.mpg"
    out = tmp_path / "bbaf2n.coeffs.npz"
    res = track_video(src, out, overlay=True, max_frames=20, tracker=tracker)
    assert len(res) == 20 and res.fps == pytest.approx(25.0) and res.valid.all()
    assert np.nanmean(res.error_px) < 4.0  # landmarks fit within a few pixels on a 360x288 frame
    coeffs = HeadCoeffs.load(out)
    assert coeffs.data.shape == (20, 120) and coeffs.fps == pytest.approx(25.0)
    loaded = TrackingResult.load(out)
    assert loaded.camera.shape == (20, 3) and loaded.shape.shape == (100,)
    overlay = tmp_path / "bbaf2n.coeffs.overlay.mp4"
    assert probe_video(overlay).num_frames == 20
    # the tracked mesh projects onto the face: its landmarks land near the detected ones
    verts = res.vertices(tracker.model)
    assert verts.shape == (20, 5023, 3) and torch.isfinite(verts).all()


def test_single_image(shared_data, tracker):
    res = tracker.track(shared_data / "portraits" / "liveportrait_d9.jpg")  # open mouth
    assert len(res) == 1 and res.valid.all()
    assert res.coeffs.jaw[0, 0] > 0.05  # the open mouth is seen as an open jaw


@pytest.mark.slow
def test_every_clip_tracks(shared_data, tracker):
    """Every real clip (GRID, LivePortrait and the 22 head-motion clips of ``video/motion``) tracks; the
    first 3 s of each (75 frames at 25 fps) keep the sweep to about a minute."""
    clips = sorted((shared_data / "video").rglob("*.mp*"))
    assert len(clips) >= 11
    for path in clips:
        res = tracker.track(path, max_frames=75)
        assert len(res) > 0 and res.valid.mean() > 0.9, path
        assert np.nanmean(res.error_px) < 6.0, path


@pytest.mark.slow
def test_grid_jaw_follows_speech(shared_data, tracker):
    clips = sorted((shared_data / "video" / "grid").glob("*.mpg"))
    stats = jaw_envelope_correlation(tracker, clips)
    assert stats["r"] >= 0.3 and abs(stats["lag"]) <= MAX_LAG, stats
