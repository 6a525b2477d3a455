"""Per-frame audio features: alignment to fps, lengths, chunking, windows, Wav2Vec2 path."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from flap.audio import LogMelFeatures, Wav2Vec2Features, build_features, extract_features, frame_windows
from flap.audio.features import area_resample


@pytest.fixture(scope="module")
def logmel():
    return LogMelFeatures()


def test_area_resample_hand_computed():
    # source at 100 Hz centred on j/100: frames of 25 fps average 4 source values
    vals = np.arange(12, dtype=np.float64)[:, None]
    out = area_resample(vals, 100.0, 3, 25.0)
    # frame 0 spans [0, 0.04): half of value 0's cell [-.005,.005) is inside -> 0.5*0 + 1 + 2 + 3 + 0.5*4 over 4
    assert np.allclose(
        out[:, 0],
        [
            (1 + 2 + 3 + 0.5 * 4) / 4,
            (0.5 * 4 + 5 + 6 + 7 + 0.5 * 8) / 4,
            (0.5 * 8 + 9 + 10 + 11 + 0.5 * 11) / 4,
        ],
    )


@pytest.mark.parametrize("seconds", [0.04, 0.06, 0.5, 1.234, 3.0])
@pytest.mark.parametrize("fps", [25.0, 30.0, 24.0])
def test_length_is_round_duration_times_fps(logmel, seconds, fps):
    n = int(round(seconds * 16000))
    feats = extract_features(np.zeros(n, np.float32), logmel, fps=fps)
    assert feats.shape == (round(n / 16000 * fps), 80)
    assert feats.dtype == np.float32


def test_ten_minutes_length(logmel):
    audio = np.random.default_rng(0).normal(0, 0.05, 16000 * 600).astype(np.float32)
    assert extract_features(audio, logmel).shape == (15000, 80)


def test_silence_is_floor_and_tone_is_in_its_band(logmel):
    sr = 16000
    t = np.arange(sr) / sr
    audio = np.concatenate(
        [np.zeros(sr, np.float32), (0.5 * np.sin(2 * np.pi * 1000 * t)).astype(np.float32)]
    )
    feats = extract_features(audio, logmel)
    assert feats.shape == (50, 80)
    assert np.allclose(feats[:24], -80.0)  # digital silence (frame 24 touches the tone's window)
    band = np.argmax(feats[30:].mean(0))
    import librosa

    centres = librosa.mel_frequencies(n_mels=82, fmin=20.0, fmax=8000.0)[1:-1]
    assert abs(centres[band] - 1000) < 100
    # onset alignment: the tone starts at 1.0 s = frame 25
    energy = feats.max(1)
    assert energy[23] < -79 and energy[26] > energy[23] + 40


def test_chunking_has_no_seam(logmel):
    audio = np.random.default_rng(1).normal(0, 0.1, 16000 * 7).astype(np.float32)
    whole = extract_features(audio, logmel, chunk_seconds=100.0)
    chunked = extract_features(audio, logmel, chunk_seconds=1.0)
    assert np.abs(whole - chunked).max() < 1e-3


def test_num_frames_override(logmel):
    feats = extract_features(np.zeros(16000, np.float32), logmel, num_frames=30)
    assert feats.shape == (30, 80)


def test_bad_input(logmel):
    with pytest.raises(ValueError, match=r"mono audio of shape \(N,\)"):
        extract_features(np.zeros((2, 100), np.float32), logmel)
    with pytest.raises(ValueError, match="unknown feature type"):
        build_features({"type": "mfcc"})


def test_frame_windows_zero_padded():
    x = torch.arange(1, 11, dtype=torch.float32).reshape(1, 5, 2)
    w = frame_windows(x, 3)
    assert w.shape == (1, 5, 7, 2)
    assert torch.equal(w[0, 0, 3], x[0, 0])  # centre is the frame itself
    assert torch.equal(w[0, 0, :3], torch.zeros(3, 2))  # zero padding before the start
    assert torch.equal(w[0, 3, 0], x[0, 0]) and torch.equal(w[0, 2, 6], torch.zeros(2))
    assert torch.equal(w[0, 4, 2], x[0, 3])


def test_frame_windows_custom_pad():
    x = torch.ones(2, 4, 3)
    w = frame_windows(x, 2, pad=torch.tensor([5.0, 6.0, 7.0]))
    assert w.shape == (2, 4, 5, 3)
    assert torch.equal(w[1, 0, 0], torch.tensor([5.0, 6.0, 7.0])) and torch.equal(w[1, 0, 2], torch.ones(3))
    assert torch.equal(w[0, 3, 4], torch.tensor([5.0, 6.0, 7.0])) and torch.equal(w[0, 2, 3], torch.ones(3))


def make_tiny_wav2vec2(path, num_layers: int = 2):
    """Save a tiny random Wav2Vec2Model (hidden 16, ``num_layers`` layers, stride 320) to ``path``."""
    from transformers import Wav2Vec2Config, Wav2Vec2Model

    torch.manual_seed(0)
    cfg = Wav2Vec2Config(
        hidden_size=16,
        num_hidden_layers=num_layers,
        num_attention_heads=2,
        intermediate_size=32,
        conv_dim=(16, 16),
        conv_stride=(5, 64),
        conv_kernel=(10, 64),
        num_conv_pos_embeddings=16,
        num_conv_pos_embedding_groups=2,
    )
    Wav2Vec2Model(cfg).eval().save_pretrained(path)
    return path


@pytest.fixture(scope="module")
def tiny_wav2vec2(tmp_path_factory):
    return make_tiny_wav2vec2(tmp_path_factory.mktemp("w2v"))


def test_wav2vec2_all_layers(tiny_wav2vec2):
    ex = Wav2Vec2Features(tiny_wav2vec2)
    assert ex.layers == [0, 1, 2] and ex.dim == 48
    audio = np.random.default_rng(0).normal(0, 0.1, 16000 * 2 + 123).astype(np.float32)
    feats = extract_features(audio, ex)
    assert feats.shape == (50, 48) and np.isfinite(feats).all()
    assert feats.std(0).mean() > 0


def test_wav2vec2_layer_subset_and_interpolation(tiny_wav2vec2):
    ex = Wav2Vec2Features(tiny_wav2vec2, layers=[-1])
    assert ex.layers == [2] and ex.dim == 16
    audio = np.random.default_rng(0).normal(0, 0.1, 16000).astype(np.float32)
    # direct check against the model's last hidden state interpolated to 25 frames
    x = (audio - audio.mean()) / np.sqrt(audio.var() + 1e-7)
    with torch.no_grad():
        hs = ex.model(torch.from_numpy(x)[None]).last_hidden_state
    ref = torch.nn.functional.interpolate(hs.transpose(1, 2), size=25, mode="linear", align_corners=False)[
        0
    ].T
    assert np.allclose(ex(audio, 25, 25.0), ref.numpy(), atol=1e-5)
    assert extract_features(audio[:640], ex).shape == (1, 16)
    with pytest.raises(ValueError, match="layer 5 out of range"):
        Wav2Vec2Features(tiny_wav2vec2, layers=[5])


def test_wav2vec2_missing_folder(tmp_path):
    with pytest.raises(FileNotFoundError, match="config.json"):
        Wav2Vec2Features(tmp_path / "nothing")


def test_real_speech_features(shared_data, logmel):
    from flap.audio import load_audio

    audio = load_audio(shared_data / "video" / "grid" / "bbaf2n.mpg")
    assert extract_features(audio, logmel).shape == (round(audio.shape[0] / 16000 * 25), 80)
    feats = extract_features(audio, logmel, num_frames=75)  # the video's frame count
    assert feats.shape == (75, 80)
    energy = feats.mean(1)
    assert energy[30:50].mean() > energy[:3].mean() + 10  # speech louder than the leading pause
