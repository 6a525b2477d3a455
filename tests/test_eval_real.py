"""Done-when checks of the evaluation on a real clip, with the project's FLAME tracker.

* Self-consistency: a real clip (2 s of ``liveportrait_d11.mp4`` from 4.0 s, a child talking and
  turning the head: yaw up to ~17°, roll down to ~-10°, pitch nods of ±10°) is tracked; its coefficients are the request, and the clip re-encoded at a lower H.264 quality plays
  the "generated" video. The pose error must be < 2° and the jaw correlation > 0.8.
* The metric can fail: the same video against a different request (the bundled ``nod`` and
  ``turn_left`` pose scripts) gives a pose error > 5°.
"""

from pathlib import Path

import numpy as np
import pytest
from omegaconf import OmegaConf

from flap import CONFIG_DIR
from flap.eval.runner import resolve_tracker
from flap.eval.tracked import track_for_eval
from flap.evaluate import run
from flap.io.video import read_video, write_video

ROOT = Path(__file__).resolve().parents[1]
START, NUM_FRAMES = 100, 50  # frames 100..149 = 4.0 s .. 6.0 s at 25 fps


def _cfg(video, out, request):
    cfg = OmegaConf.load(CONFIG_DIR / "evaluate.yaml")
    cfg = OmegaConf.to_container(cfg, resolve=False)
    cfg.pop("hydra", None)
    cfg.update(video=str(video), out=str(out), request=str(request), print_table=False)
    return cfg


@pytest.fixture(scope="module")
def real_clip(shared_data, tmp_path_factory):
    from flap.audio import load_audio

    src = shared_data / "video" / "liveportrait_d11.mp4"
    frames, fps = read_video(src, max_frames=START + NUM_FRAMES)
    frames = frames[START:]
    a0 = int(round(START / fps * 16000))
    audio = load_audio(src)[a0 : a0 + int(round(NUM_FRAMES / fps * 16000))]
    d = tmp_path_factory.mktemp("eval_real")
    source = write_video(d / "source.mp4", frames, fps, audio=audio, crf=12)
    tracker = resolve_tracker(OmegaConf.load(CONFIG_DIR / "evaluate.yaml").tracker.target)
    track_for_eval(source, tracker).coeffs.save(d / "request.npz")
    generated = write_video(d / "generated.mp4", frames, fps, audio=audio, crf=28)
    return d, generated


def test_self_consistency(real_clip):
    d, video = real_clip
    res = run(_cfg(video, d / "self", d / "request.npz"))["videos"][0]
    print({k: res["pose"][k] for k in ("pose_error_deg", "mae_deg", "corr_pitch", "corr_yaw")}, res["jaw"])
    assert res["pose"]["frames_compared"] == NUM_FRAMES
    assert res["pose"]["pose_error_deg"] < 2.0
    assert res["pose"]["mae_deg"] < 2.0
    assert res["jaw"]["jaw_corr"] > 0.8
    assert np.isfinite(res["lipsync"]["mouth_envelope_corr"])
    for name in ("metrics.json", "table.md", "table.txt", "generated.json", "generated_pose.png"):
        assert (d / "self" / name).is_file(), name


@pytest.mark.parametrize("script", ["nod", "turn_left"])
def test_metric_can_fail(real_clip, script):
    d, video = real_clip
    res = run(_cfg(video, d / script, script))["videos"][0]
    print(script, {k: res["pose"][k] for k in ("pose_error_deg", "mae_deg", "mae_deg_pitch", "mae_deg_yaw")})
    assert res["request_kind"] == "pose_script"
    assert res["pose"]["pose_error_deg"] > 5.0
