"""FLAME tracker throughput on a 512×512 talking-head clip, landmark detection included (issue: ≥ 10 frames/s).

Times, in one process on the same frames: decoding + MediaPipe FaceMesh alone (the reference), the
FLAME fit alone (default settings: mirror-averaged, so two fits), and the whole
:meth:`flap.tracking.FlameTracker.track` (decode + landmarks + fit). Reports frames per second and
the ratio of the whole tracker's time to landmark detection alone.
"""

from __future__ import annotations

import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CLIP = ROOT.parent / "shared" / "data" / "video" / "liveportrait_d11.mp4"


def run(clip: str | Path = CLIP, max_frames: int = 150) -> dict:
    import torch

    from flap.io import iter_video
    from flap.tracking import FlameTracker, detect_landmarks

    clip = Path(clip)
    if not clip.is_file():
        return {"skipped": f"benchmark clip not found: {clip}"}
    tracker = FlameTracker()
    torch.set_num_threads(1)

    t0 = time.perf_counter()
    with iter_video(clip, max_frames=max_frames) as stream:
        size = stream.info.size
        track = detect_landmarks(stream, stream.info.fps)
    t_landmarks = time.perf_counter() - t0
    n = len(track)

    t0 = time.perf_counter()
    tracker.track_landmarks(track)
    t_fit = time.perf_counter() - t0

    tracker.symmetric = False
    t0 = time.perf_counter()
    tracker.track_landmarks(track)
    t_fit_single = time.perf_counter() - t0
    tracker.symmetric = True

    t0 = time.perf_counter()
    tracker.track(clip, max_frames=max_frames)
    t_total = time.perf_counter() - t0
    return {
        "frames": n,
        "size": f"{size[1]}x{size[0]}",
        "landmarks_fps": round(n / t_landmarks, 1),
        "fit_fps": round(n / t_fit, 1),
        "fit_fps_no_mirror": round(n / t_fit_single, 1),
        "tracker_fps": round(n / t_total, 1),
        "tracker_vs_landmarks_ratio": round(t_total / t_landmarks, 2),
    }


if __name__ == "__main__":
    print(run())
