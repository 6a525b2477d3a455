"""Tests for flap.io: video/audio round trips, atomic writes and clear errors on bad input."""

from __future__ import annotations

import numpy as np
import pytest

from flap.io import (
    VideoReadError,
    atomic_output,
    iter_video,
    probe_video,
    read_audio_track,
    read_video,
    write_video,
)


def _frames(t=12, h=64, w=80, seed=0):
    # smooth gradients survive H.264 well; values are compared loosely
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w]
    out = []
    for i in range(t):
        c = rng.integers(40, 200, 3)
        img = np.stack([(xx * 2 + i * 5) % 256, (yy * 3) % 256, np.full_like(xx, c[2])], -1)
        out.append(img.astype(np.uint8))
    return np.stack(out)


def test_round_trip_frames_fps(tmp_path):
    frames = _frames()
    out = write_video(tmp_path / "a.mp4", frames, fps=30)
    got, fps = read_video(out)
    assert got.shape == frames.shape and got.dtype == np.uint8
    assert fps == pytest.approx(30.0)
    assert np.abs(got.astype(int) - frames.astype(int)).mean() < 6
    info = probe_video(out)
    assert (info.height, info.width, info.num_frames, info.has_audio) == (64, 80, 12, False)


def test_round_trip_audio_duration(tmp_path):
    sr = 16000
    audio = (0.3 * np.sin(2 * np.pi * 440 * np.arange(sr) / sr)).astype(np.float32)  # 1.0 s
    frames = _frames(t=25)
    out = write_video(tmp_path / "b.mp4", iter(frames), fps=25, audio=audio, sample_rate=sr)
    assert probe_video(out).has_audio
    got = read_audio_track(out, sample_rate=sr)
    assert abs(len(got) / sr - 1.0) < 0.1
    # the tone survives AAC: dominant frequency is 440 Hz
    spec = np.abs(np.fft.rfft(got[: sr // 2]))
    assert abs(np.argmax(spec) * 2 - 440) <= 4


def test_iter_video_metadata_and_max_frames(tmp_path):
    out = write_video(tmp_path / "c.mp4", _frames(t=10), fps=25)
    stream = iter_video(out, max_frames=4)
    assert stream.info.fps == 25 and stream.info.size == (64, 80) and stream.info.num_frames == 10
    assert len(list(stream)) == 4


def test_odd_size_is_padded(tmp_path):
    out = write_video(tmp_path / "d.mp4", _frames(t=3, h=33, w=41), fps=25)
    assert read_video(out)[0].shape == (3, 34, 42, 3)


def test_image_reads_as_one_frame(tmp_path):
    from PIL import Image

    Image.fromarray(_frames(t=1)[0]).save(tmp_path / "p.png")
    frames, fps = read_video(tmp_path / "p.png")
    assert frames.shape == (1, 64, 80, 3) and fps > 0


def test_refuses_to_overwrite_input(tmp_path):
    src = write_video(tmp_path / "in.mp4", _frames(t=3), fps=25)
    before = src.read_bytes()
    with pytest.raises(ValueError, match="refusing to overwrite input"):
        write_video(src, _frames(t=3, seed=1), fps=25, inputs=[src])
    assert src.read_bytes() == before


def test_failed_write_leaves_nothing(tmp_path):
    def bad_frames():
        yield _frames(t=1)[0]
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        write_video(tmp_path / "e.mp4", bad_frames(), fps=25)
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(ValueError, match="no frames"):
        write_video(tmp_path / "f.mp4", [], fps=25)
    with pytest.raises(ValueError, match="uint8"):
        write_video(tmp_path / "g.mp4", [np.zeros((8, 8, 3), np.float32)], fps=25)
    assert list(tmp_path.iterdir()) == []


def test_atomic_output_keeps_old_file_on_error(tmp_path):
    target = tmp_path / "x.txt"
    target.write_text("old")
    with pytest.raises(KeyError), atomic_output(target) as tmp:
        tmp.write_text("new")
        raise KeyError("fail")
    assert target.read_text() == "old" and list(tmp_path.iterdir()) == [target]
    with atomic_output(target) as tmp:
        tmp.write_text("new")
    assert target.read_text() == "new"


@pytest.mark.parametrize(
    "make, match",
    [
        (lambda p: None, "not found"),
        (lambda p: p.write_bytes(b""), "empty"),
        (lambda p: p.write_text("this is a text file, not a video\n" * 50), "cannot read"),
        (
            lambda p: p.write_bytes(bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8))),
            "cannot read|corrupt|zero",
        ),
    ],
    ids=["missing", "zero-length", "text", "random-bytes"],
)
def test_bad_input_errors_name_the_file(tmp_path, make, match):
    path = tmp_path / "bad.mp4"
    make(path)
    with pytest.raises(VideoReadError, match=match) as err:
        read_video(path)
    assert str(path) in str(err.value)


def test_truncated_video_is_an_error(tmp_path):
    src = write_video(tmp_path / "ok.mp4", _frames(t=10), fps=25)
    bad = tmp_path / "trunc.mp4"
    bad.write_bytes(src.read_bytes()[:300])
    with pytest.raises(VideoReadError) as err:
        read_video(bad)
    assert str(bad) in str(err.value)


def test_audio_only_file_is_not_a_video(tmp_path):
    import soundfile as sf

    wav = tmp_path / "speech.wav"
    sf.write(wav, np.zeros(1600, np.float32), 16000)
    with pytest.raises(VideoReadError, match="no video stream"):
        read_video(wav)
    assert read_audio_track(wav).shape == (1600,)


def test_real_clip_metadata(shared_data):
    info = probe_video(shared_data / "video" / "grid" / "bbaf2n.mpg")
    assert info.fps == pytest.approx(25.0) and info.size == (288, 360) and info.has_audio
    frames, fps = read_video(shared_data / "video" / "liveportrait_d0.mp4", max_frames=5)
    assert frames.shape == (5, 512, 512, 3) and fps == pytest.approx(25.0)
