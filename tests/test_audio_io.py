"""flap.audio.load_audio: formats, sample rates, channels, and clear errors."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import soundfile as sf

from flap.audio import AudioError, load_audio, num_frames_for


def _tone(seconds: float, sr: int, channels: int = 1, freq: float = 440.0) -> np.ndarray:
    t = np.arange(int(round(seconds * sr))) / sr
    x = 0.5 * np.sin(2 * np.pi * freq * t).astype(np.float32)
    return np.stack([x * (c + 1) / channels for c in range(channels)], axis=1) if channels > 1 else x


@pytest.mark.parametrize(
    "sr,channels,fmt", [(16000, 1, "WAV"), (44100, 2, "WAV"), (22050, 1, "FLAC"), (8000, 6, "WAV")]
)
def test_any_rate_and_channels(tmp_path, sr, channels, fmt):
    path = tmp_path / f"tone.{fmt.lower()}"
    sf.write(path, _tone(0.5, sr, channels), sr, format=fmt)
    audio = load_audio(path)
    assert audio.dtype == np.float32 and audio.ndim == 1
    assert audio.shape[0] == 8000  # 0.5 s at 16 kHz
    # the tone survives resampling and downmixing: dominant frequency 440 Hz
    spec = np.abs(np.fft.rfft(audio))
    assert abs(np.argmax(spec) * 16000 / audio.shape[0] - 440) < 4
    expected_amp = 0.5 * np.mean([(c + 1) / channels for c in range(channels)]) if channels > 1 else 0.5
    assert abs(np.abs(audio[1000:-1000]).max() - expected_amp) < 0.02


def test_output_rate_argument(tmp_path):
    path = tmp_path / "a.wav"
    sf.write(path, _tone(1.0, 16000), 16000)
    assert load_audio(path, sr=8000).shape == (8000,)


def test_real_files(shared_data):
    for name, seconds in [
        ("cmu_arctic_awb_a0007.wav", 4.0),
        ("commonvoice_en_651325.mp3", 2.376),
        ("ljspeech_LJ002-0020.wav", 1.54),
        ("sadtalker_RD_Radio31_000.wav", 8.0),
    ]:
        audio = load_audio(shared_data / "audio" / name)
        assert audio.dtype == np.float32 and audio.ndim == 1
        assert abs(audio.shape[0] / 16000 - seconds) < 0.05, name
        assert 0.05 < np.abs(audio).max() <= 1.5, name


def test_audio_track_of_videos(shared_data):
    mpg = load_audio(shared_data / "video" / "grid" / "bbaf2n.mpg")  # mp2 in MPEG-PS
    mp4 = load_audio(shared_data / "video" / "liveportrait_d11.mp4")  # AAC in mp4
    assert abs(mpg.shape[0] / 16000 - 3.0) < 0.05
    assert abs(mp4.shape[0] / 16000 - 9.0) < 0.05
    assert np.abs(mpg).max() > 0.05 and np.abs(mp4).max() > 0.05


def test_video_without_audio(shared_data):
    with pytest.raises(AudioError, match="liveportrait_d0.mp4.*audio stream"):
        load_audio(shared_data / "video" / "liveportrait_d0.mp4")


def test_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.wav"):
        load_audio(tmp_path / "nope.wav")


def test_empty_file(tmp_path):
    path = tmp_path / "empty.wav"
    path.write_bytes(b"")
    with pytest.raises(AudioError, match=r"empty.wav.*0 bytes"):
        load_audio(path)


def test_png_renamed_wav(tmp_path, shared_data):
    path = tmp_path / "image.wav"
    shutil.copy(shared_data / "portraits" / "skimage_astronaut.png", path)
    with pytest.raises(AudioError, match=r"image.wav.*not audio.*audio stream"):
        load_audio(path)


def test_garbage_bytes(tmp_path):
    path = tmp_path / "garbage.wav"
    path.write_bytes(np.random.default_rng(0).integers(0, 256, 5000, dtype=np.uint8).tobytes())
    with pytest.raises(AudioError, match="garbage.wav"):
        load_audio(path)


def test_one_sample(tmp_path):
    path = tmp_path / "one.wav"
    sf.write(path, np.array([0.1], np.float32), 16000)
    with pytest.raises(AudioError, match=r"one.wav.*1 samples.*shorter than one video frame"):
        load_audio(path)


def test_one_frame_is_enough(tmp_path):
    path = tmp_path / "frame.wav"
    sf.write(path, _tone(0.04, 48000), 48000)
    audio = load_audio(path)
    assert audio.shape == (640,)
    assert num_frames_for(audio.shape[0], 16000, 25) == 1


def test_directory(tmp_path):
    with pytest.raises(AudioError, match="directory"):
        load_audio(tmp_path)


def test_num_frames_for():
    assert num_frames_for(16000 * 600, 16000, 25) == 15000
    assert num_frames_for(640, 16000, 25) == 1
    assert num_frames_for(16000, 16000, 30) == 30
    assert num_frames_for(1000, 16000, 25) == round(1000 / 16000 * 25)
