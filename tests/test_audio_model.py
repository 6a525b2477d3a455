"""Audio2Flame: shapes, lengths, chunked inference without seams, save/load, errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from flap.audio import extract_features
from flap.audio.model import Audio2Flame
from flap.flame.coeffs import HeadCoeffs


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    m = Audio2Flame(hidden_dim=32, dilations=(1, 2)).eval()
    torch.nn.init.normal_(m.head.weight, std=0.3)  # untrained heads are zero; make outputs vary
    rng = np.random.default_rng(0)
    m.set_normalization(
        np.full(80, -40.0),
        np.full(80, 20.0),
        HeadCoeffs.neutral(1).data[0] + 0.01,
        rng.uniform(0.01, 0.2, 120),
    )
    return m


def _noise(seconds, seed=0):
    return np.random.default_rng(seed).normal(0, 0.1, int(round(seconds * 16000))).astype(np.float32)


@pytest.mark.parametrize("seconds", [0.04, 0.05, 0.3, 2.99, 61.3])
def test_output_length(model, seconds):
    out = model.predict(_noise(seconds))
    assert isinstance(out, HeadCoeffs)
    assert out.num_frames == round(seconds * 25) and out.fps == 25.0
    assert torch.isfinite(out.data).all()


def test_ten_minutes_length(model):
    out = model.predict(np.zeros(16000 * 600, np.float32))
    assert out.num_frames == 15000


def test_other_fps(model):
    assert model.predict(_noise(2.0), fps=30).num_frames == 60


def test_chunking_has_no_seams(model):
    audio = _noise(9.0, seed=3)
    whole = model.predict(audio, chunk_seconds=100.0)
    chunked = model.predict(audio, chunk_seconds=1.0)
    assert torch.allclose(whole.data, chunked.data, atol=1e-4)
    feats = extract_features(audio, model.feature_extractor)
    assert torch.allclose(model.predict_features(feats, chunk_frames=17).data, whole.data, atol=1e-4)


def test_receptive_field(model):
    feats = torch.randn(1, 80, 80) * 20 - 40
    base = model(feats)
    bumped = feats.clone()
    bumped[0, 40] += 30.0
    changed = (model(bumped) - base).abs().amax(-1)[0] > 0
    rf = model.receptive_field
    assert rf == 3 + 1 + 2
    assert (
        changed[40 - rf : 40 + rf + 1].any()
        and not changed[: 40 - rf].any()
        and not changed[40 + rf + 1 :].any()
    )


def test_silence_gives_constant_output(model, tmp_path):
    # windows beyond the ends see the silence feature and the convolutions replicate their edges, so
    # digital silence gives the same coefficients on every frame, ends included
    m = Audio2Flame(hidden_dim=32, dilations=(1, 2)).eval()
    m.load_state_dict(model.state_dict())
    m.set_normalization(
        model.feature_mean,
        model.feature_std,
        model.coeff_mean,
        model.coeff_std,
        pad_feature=torch.full((80,), -80.0),
    )
    out = m.predict(np.zeros(32000, np.float32)).data
    assert torch.allclose(out, out[:1].expand_as(out), atol=1e-5)
    assert not torch.allclose(model.predict(np.zeros(32000, np.float32)).data[0], out[0])  # pad matters


def test_valid_eyes_and_eyelids(model):
    out = model.predict(_noise(1.0))
    mats = out.eye_matrices()
    eye = torch.eye(3).expand_as(mats)
    assert torch.allclose(mats @ mats.transpose(-1, -2), eye, atol=1e-5)
    assert (out.eyelids >= 0).all() and (out.eyelids <= 1).all()


def test_untrained_model_is_neutral():
    out = Audio2Flame().eval().predict(_noise(1.0))
    assert torch.allclose(out.data, HeadCoeffs.neutral(25).data, atol=1e-6)


def test_save_load_round_trip(model, tmp_path):
    model.save_pretrained(tmp_path)
    assert (tmp_path / "config.json").is_file() and (
        tmp_path / "diffusion_pytorch_model.safetensors"
    ).is_file()
    loaded = Audio2Flame.from_pretrained(tmp_path).eval()
    for name in ("feature_mean", "feature_std", "coeff_mean", "coeff_std"):
        assert torch.equal(getattr(loaded, name), getattr(model, name))
    audio = _noise(1.5)
    assert torch.allclose(loaded.predict(audio).data, model.predict(audio).data)
    assert loaded.config.features is None and loaded.feature_extractor.kind == "logmel"


def test_from_pretrained_missing_folder(tmp_path):
    with pytest.raises(FileNotFoundError, match="nothing_here.*config.json"):
        Audio2Flame.from_pretrained(tmp_path / "nothing_here")


def test_shipped_checkpoint_loads():
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "checkpoints" / "audio2flame"
    model = Audio2Flame.from_pretrained(path).eval()
    assert model.config.features["type"] == "logmel"
    out = model.predict(np.zeros(16000, np.float32))
    assert out.num_frames == 25 and torch.isfinite(out.data).all()


def test_bad_inputs(model):
    with pytest.raises(ValueError, match=r"mono audio of shape \(N,\)"):
        model.predict(np.zeros((2, 16000), np.float32))
    with pytest.raises(ValueError, match="shorter than one frame"):
        model.predict(np.zeros(1, np.float32))
    with pytest.raises(ValueError, match=r"expected features \(B, T, 80\)"):
        model(torch.zeros(1, 10, 12))
    with pytest.raises(ValueError, match="expect 16000 Hz"):
        model.predict(np.zeros(8000, np.float32), sr=8000)
    with pytest.raises(ValueError, match="coeff_std must have shape"):
        model.set_normalization(np.zeros(80), np.ones(80), np.zeros(120), np.ones(3))


def test_predict_file(model, shared_data):
    out = model.predict_file(shared_data / "audio" / "cmu_arctic_awb_a0007.wav")
    assert out.num_frames == 100
