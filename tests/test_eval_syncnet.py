"""SyncNet: the published state-dict layout loads; MFCC and the SYNC-C / SYNC-D procedure."""

import numpy as np
import pytest
import torch

from flap.eval.syncnet import SyncNetModel, mfcc, sync_scores, syncnet_face_crop
from flap.eval.weights import MetricSkipped, load_state_dict

# syncnet_python `SyncNetModel` (joonson/syncnet_python): Sequential index -> (kind, in, out, kernel)
_AUD_CONV = {0: (1, 64, (3, 3)), 4: (64, 192, (3, 3)), 8: (192, 384, (3, 3)), 11: (384, 256, (3, 3)),
             14: (256, 256, (3, 3)), 18: (256, 512, (5, 4))}  # fmt: skip
_LIP_CONV = {0: (3, 96, (5, 7, 7)), 4: (96, 256, (1, 5, 5)), 8: (256, 256, (1, 3, 3)), 11: (256, 256, (1, 3, 3)),
             14: (256, 256, (1, 3, 3)), 18: (256, 512, (1, 6, 6))}  # fmt: skip


def _published_layout(embed=1024) -> dict[str, tuple]:
    """Key -> shape of the published syncnet_v2.model state dict, written out independently."""
    shapes = {}
    for prefix, convs in (("netcnnaud", _AUD_CONV), ("netcnnlip", _LIP_CONV)):
        for i, (cin, cout, k) in convs.items():
            shapes[f"{prefix}.{i}.weight"] = (cout, cin, *k)
            shapes[f"{prefix}.{i}.bias"] = (cout,)
            for name in ("weight", "bias", "running_mean", "running_var"):
                shapes[f"{prefix}.{i + 1}.{name}"] = (cout,)
            shapes[f"{prefix}.{i + 1}.num_batches_tracked"] = ()
    for prefix in ("netfcaud", "netfclip"):
        shapes[f"{prefix}.0.weight"], shapes[f"{prefix}.0.bias"] = (512, 512), (512,)
        for name in ("weight", "bias", "running_mean", "running_var"):
            shapes[f"{prefix}.1.{name}"] = (512,)
        shapes[f"{prefix}.1.num_batches_tracked"] = ()
        shapes[f"{prefix}.3.weight"], shapes[f"{prefix}.3.bias"] = (embed, 512), (embed,)
    return shapes


def test_loads_state_dict_with_published_names(tmp_path):
    gen = torch.Generator().manual_seed(0)
    state = {}
    for k, shape in _published_layout().items():
        if k.endswith("num_batches_tracked"):
            state[k] = torch.tensor(7)
        elif k.endswith("running_var"):
            state[k] = torch.rand(shape, generator=gen) + 0.5
        else:
            state[k] = torch.randn(shape, generator=gen) * 0.05
    path = tmp_path / "syncnet_v2.model"
    torch.save(state, path)

    model = SyncNetModel().eval()
    missing = model.load_state_dict(load_state_dict(path, "syncnet", "metrics.syncnet.weights"), strict=True)
    assert not missing.missing_keys and not missing.unexpected_keys
    for k, v in state.items():
        assert torch.equal(model.state_dict()[k], v), k
    # the loaded weights are used: outputs differ from a freshly initialised network
    x = torch.randn(2, 1, 13, 20, generator=gen)
    assert model.forward_aud(x).shape == (2, 1024)
    assert not torch.allclose(model.forward_aud(x), SyncNetModel().eval().forward_aud(x))


def test_missing_weights_are_skipped_with_key():
    with pytest.raises(MetricSkipped, match="metrics.syncnet.weights"):
        load_state_dict("", "syncnet", "metrics.syncnet.weights")
    with pytest.raises(MetricSkipped, match="not found"):
        load_state_dict("/nonexistent/syncnet_v2.model", "syncnet", "metrics.syncnet.weights")


def test_mfcc_rate_and_energy():
    sr = 16000
    t = np.arange(sr) / sr
    tone = 0.5 * np.sin(2 * np.pi * 440 * t)
    feats = mfcc(tone * 32768, sr)
    assert feats.shape == (99, 13)  # 1 + ceil((16000-400)/160) frames of 25 ms every 10 ms
    # c0 is the log frame energy: quadrupling the amplitude adds log(16)
    louder = mfcc(4 * tone * 32768, sr)
    np.testing.assert_allclose(louder[:, 0] - feats[:, 0], np.log(16.0), atol=1e-6)
    np.testing.assert_allclose(louder[:, 1:], feats[:, 1:], atol=1e-6)


def test_sync_scores_small_random_model():
    torch.manual_seed(0)
    model = SyncNetModel(embed_dim=16).eval()
    crops = np.random.default_rng(0).integers(0, 255, (12, 224, 224, 3), dtype=np.uint8)
    audio = np.random.default_rng(1).normal(0, 0.1, 16000 * 12 // 25).astype(np.float32)
    res = sync_scores(model, crops, audio, fps=25, vshift=3)
    assert res["num_windows"] == 12 - 5
    assert res["sync_d"] > 0 and res["sync_c"] >= 0
    assert -3 <= res["offset_frames"] <= 3
    with pytest.raises(ValueError, match="at least"):
        sync_scores(model, crops[:4], audio, fps=25)


def test_face_crop_shape_and_padding():
    frame = np.full((100, 120, 3), 200, np.uint8)
    crop = syncnet_face_crop(frame, (40, 30, 80, 70), size=64)
    assert crop.shape == (64, 64, 3)
    edge = syncnet_face_crop(frame, (0, 0, 40, 40), size=64)
    assert (edge[0, 0] == 110).all()  # outside the image is grey 110
