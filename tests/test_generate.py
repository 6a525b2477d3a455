"""`python -m flap.generate` (Hydra): outputs (frames, fps, audio), pose variants, video-driven mode,
bad-input errors that leave no file. A tiny random checkpoint keeps it fast."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import av
import numpy as np
import pytest
from hydra import compose, initialize_config_dir

from flap import CONFIG_DIR
from flap.flame.coeffs import HeadCoeffs
from flap.generate import PROJECT_ROOT, generate
from flap.testing import tiny_random_pipeline

SPEECH = "audio/ljspeech_LJ002-0020.wav"  # 1.5 s
PORTRAIT = "portraits/grid_bbaf2n_frame.png"


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("ckpt") / "tiny"
    tiny_random_pipeline(seed=0, image_size=64).save_pretrained(path)
    return path


def run(args: list[str]):
    """Compose ``flap/conf/generate.yaml`` with command-line style ``args`` and generate."""
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        cfg = compose("generate", overrides=args)
    return generate(cfg)


def base_args(checkpoint, shared_data, out: Path) -> list[str]:
    return [f"checkpoint={checkpoint}", f"image={shared_data / PORTRAIT}", f"audio={shared_data / SPEECH}",
            "num_inference_steps=1", "guidance_scale=1.0", "progress=false", f"out={out}"]


def describe_mp4(path: Path) -> dict:
    """Streams, codecs, decoded frame count, fps, and the video / audio stream durations (s) of an mp4.

    Durations are the streams' own (``duration * time_base``, what ffprobe reports: the AAC
    priming and padding samples are excluded by the mp4 edit list).
    """
    with av.open(str(path)) as c:
        v = c.streams.video[0]
        info = {"video_streams": len(c.streams.video), "audio_streams": len(c.streams.audio),
                "codec": v.codec_context.name, "fps": float(v.average_rate),
                "video_seconds": float(v.duration * v.time_base)}
        if c.streams.audio:
            a = c.streams.audio[0]
            info["audio_codec"] = a.codec_context.name
            info["audio_seconds"] = float(a.duration * a.time_base)
        info["frames"] = sum(1 for _ in c.decode(video=0))
    return info


def check_output(out: Path, frames: int, fps: float = 25.0) -> dict:
    info = describe_mp4(out)
    assert info["video_streams"] == 1 and info["audio_streams"] == 1
    assert info["codec"] == "h264" and info["audio_codec"] == "aac"
    assert info["frames"] == frames and info["fps"] == pytest.approx(fps)
    assert abs(info["audio_seconds"] - info["video_seconds"]) <= 1.0 / fps  # within one frame
    coeffs = HeadCoeffs.load(out.with_name(out.stem + ".coeffs.npz"))
    assert len(coeffs) == frames and coeffs.fps == fps
    return info


def expected_frames(shared_data, fps: float = 25.0) -> int:
    import soundfile

    return round(soundfile.info(str(shared_data / SPEECH)).duration * fps)


# --------------------------------------------------------------------------------------- poses
@pytest.mark.parametrize("pose", ["nod.yaml", "turn_left"])
def test_bundled_pose_scripts(pose, checkpoint, shared_data, tmp_path):
    out = tmp_path / "video.mp4"
    result = run(base_args(checkpoint, shared_data, out) + [f"pose={pose}"])
    t = expected_frames(shared_data)
    assert result["num_frames"] == t and result["video"] == out
    check_output(out, t)
    pyr = HeadCoeffs.load(tmp_path / "video.coeffs.npz").pose_degrees().numpy()
    if pose == "turn_left":
        assert pyr[-1, 1] - pyr[0, 1] > 5  # yaw turns
    else:
        assert np.ptp(pyr[:, 0]) > 5  # pitch nods


def test_pose_script_from_absolute_path_with_cfg(checkpoint, shared_data, tmp_path):
    script = tmp_path / "custom.yaml"
    script.write_text("mode: fixed\nkeyframes:\n  - {t: 0.0, yaw: 20, pitch: -5}\n")
    out = tmp_path / "custom.mp4"
    run(base_args(checkpoint, shared_data, out) + [f"pose={script.resolve()}", "guidance_scale=2.0",
                                                   "paste=false", "blinks_per_minute=0"])
    info = check_output(out, expected_frames(shared_data))
    assert info["frames"] > 0
    pyr = HeadCoeffs.load(tmp_path / "custom.coeffs.npz").pose_degrees().numpy()
    np.testing.assert_allclose(pyr[:, 1], 20, atol=1e-3)
    np.testing.assert_allclose(pyr[:, 0], -5, atol=1e-3)
    with av.open(str(out)) as c:  # no paste-back: the 64 px face crop
        assert (c.streams.video[0].codec_context.width, c.streams.video[0].codec_context.height) == (64, 64)


def test_video_driven_mode_uses_the_clip_motion_and_audio(checkpoint, shared_data, tmp_path):
    out = tmp_path / "driven.mp4"
    clip = shared_data / "video" / "grid" / "lbax4n.mpg"
    run([f"checkpoint={checkpoint}", f"image={shared_data / PORTRAIT}", f"driving_video={clip}",
         "num_frames=10", "num_inference_steps=1", "guidance_scale=1.0", "progress=false", f"out={out}"])
    check_output(out, 10)  # the GRID clip's own speech is the audio track


# --------------------------------------------------------------------------------------- bad input
def _no_files(folder: Path) -> bool:
    return not any(folder.iterdir())


@pytest.mark.parametrize("case", ["no_face", "unreadable", "missing_checkpoint", "bad_pose", "missing_image"])
def test_bad_input_clear_error_and_no_output(case, checkpoint, shared_data, tmp_path):
    inputs = tmp_path / "inputs"
    inputs.mkdir()
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    args = base_args(checkpoint, shared_data, out_dir / "video.mp4")
    if case == "no_face":
        import cv2

        cv2.imwrite(str(inputs / "wall.png"), np.full((240, 320, 3), 127, np.uint8))
        args.append(f"image={inputs / 'wall.png'}")
        error, match = ValueError, "no face"
    elif case == "unreadable":
        (inputs / "broken.png").write_bytes(b"\x89PNG not really")
        args.append(f"image={inputs / 'broken.png'}")
        error, match = ValueError, "broken.png"
    elif case == "missing_checkpoint":
        args.append(f"checkpoint={inputs / 'no_such_ckpt'}")
        error, match = FileNotFoundError, "no_such_ckpt"
    elif case == "bad_pose":
        (inputs / "bad.yaml").write_text("mode: sideways\nkeyframes:\n  - {t: 0, yaw: 10}\n")
        args.append(f"pose={inputs / 'bad.yaml'}")
        error, match = ValueError, "bad.yaml"
    else:
        args.append(f"image={inputs / 'nobody.png'}")
        error, match = FileNotFoundError, "nobody.png"
    with pytest.raises(error, match=match):
        run(args)
    assert _no_files(out_dir), sorted(out_dir.iterdir())


def test_command_line_error_exit_status_and_message(shared_data, tmp_path):
    env = {**os.environ, "PYTHONPATH": str(PROJECT_ROOT)}
    proc = subprocess.run(
        [sys.executable, "-m", "flap.generate", f"checkpoint={tmp_path / 'missing'}", f"out={tmp_path / 'o.mp4'}",
         f"image={shared_data / PORTRAIT}", f"audio={shared_data / SPEECH}", f"hydra.run.dir={tmp_path / 'run'}"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 1
    assert "flap.generate: error:" in proc.stderr and "missing" in proc.stderr
    assert not (tmp_path / "o.mp4").exists()


def test_command_line_stderr_is_only_the_progress_bar(checkpoint, shared_data, tmp_path):
    """A clean `python -m flap.generate` run writes nothing to stderr but its progress bar: no
    accelerate / float32 notices from diffusers, no MediaPipe / TFLite C++ logs, no protobuf warnings."""
    env = {**os.environ, "PYTHONPATH": str(PROJECT_ROOT), "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(
        [sys.executable, "-m", "flap.generate", "num_frames=4", "progress=true", f"hydra.run.dir={tmp_path / 'run'}",
         *(a for a in base_args(checkpoint, shared_data, tmp_path / "o.mp4") if not a.startswith("progress="))],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = [ln.strip() for ln in proc.stderr.replace("\r", "\n").splitlines() if ln.strip()]
    assert lines, "expected the progress bar on stderr"
    assert all(ln.startswith("FLAP denoising") for ln in lines), proc.stderr
    assert "generating 4 frames" in proc.stdout and "wrote" in proc.stdout
