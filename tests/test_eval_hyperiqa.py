"""HyperIQA: torchvision-compatible ResNet-50 names, public HyperNet layout, scoring."""

import numpy as np
import torch

from flap.eval.hyperiqa import HyperNet, hyperiqa_score
from flap.eval.weights import load_state_dict


def test_layout_and_round_trip(tmp_path):
    model = HyperNet().eval()
    keys = model.state_dict()
    # torchvision ResNet-50 names under `res.` (HyperIQA's backbone), no classifier
    assert keys["res.conv1.weight"].shape == (64, 3, 7, 7)
    assert keys["res.layer1.0.downsample.0.weight"].shape == (256, 64, 1, 1)
    assert keys["res.layer3.5.conv3.weight"].shape == (1024, 256, 1, 1)
    assert keys["res.layer4.2.bn3.running_var"].shape == (2048,)
    assert "res.fc.weight" not in keys
    # HyperIQA heads (16, 112, 224, 112, 56, 28, 14, 7)
    assert keys["res.lda1_fc.weight"].shape == (16, 1024)
    assert keys["res.lda4_fc.weight"].shape == (224 - 48, 2048)
    assert keys["fc1w_conv.weight"].shape == (224 * 112 // 49, 112, 3, 3)
    assert keys["fc4w_conv.weight"].shape == (28 * 14 // 49, 112, 3, 3)
    assert keys["fc5w_fc.weight"].shape == (14, 112)
    path = tmp_path / "koniq_pretrained.pkl"
    torch.save(model.state_dict(), path)
    other = HyperNet().eval()
    other.load_state_dict(load_state_dict(path, "hyperiqa", "metrics.hyperiqa.weights"), strict=True)
    for k, v in model.state_dict().items():
        assert torch.equal(other.state_dict()[k], v), k


def test_batch_items_are_independent():
    torch.manual_seed(0)
    model = HyperNet().eval()
    imgs = np.random.default_rng(0).integers(0, 255, (2, 64, 48, 3), dtype=np.uint8)
    both = hyperiqa_score(model, imgs, num_crops=1)
    first = hyperiqa_score(model, imgs[:1], num_crops=1)
    assert both.shape == (2,)
    np.testing.assert_allclose(both[:1], first, rtol=1e-4, atol=1e-5)
