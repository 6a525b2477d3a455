"""FlameModel on the FLAME-format proxy: loading path, LBS behaviour, landmarks, eyelids."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from flap.flame.assets import load_flame_arrays
from flap.flame.model import FlameModel
from flap.flame.proxy import ensure_proxy_model
from flap.flame.rotations import degrees_to_axis_angle

LOWER_LIP = [56, 57, 58, 65, 66, 67]
UPPER_LIP = [50, 51, 52, 61, 62, 63]


@pytest.fixture(scope="module")
def flame() -> FlameModel:
    return FlameModel(ensure_proxy_model())


@pytest.fixture(scope="module")
def rest(flame):
    with torch.no_grad():
        return flame()


def test_proxy_has_official_keys_shapes_and_loads_through_the_pickle_path(flame, monkeypatch):
    import flap.flame.assets as assets

    calls = []
    real = assets.safe_load_pickle
    monkeypatch.setattr(assets, "safe_load_pickle", lambda p: calls.append(p) or real(p))
    path = ensure_proxy_model()
    arrays = load_flame_arrays(path)
    assert path.suffix == ".pkl" and calls == [path]
    expected = {
        "v_template": (5023, 3), "f": (9976, 3), "shapedirs": (5023, 3, 400), "posedirs": (5023, 3, 36),
        "J_regressor": (5, 5023), "weights": (5023, 5), "kintree_table": (2, 5),
        "l_eyelid": (5023, 3), "r_eyelid": (5023, 3),
    }
    assert {k: arrays[k].shape for k in expected} == expected
    assert arrays["weights"].sum(1) == pytest.approx(np.ones(5023), abs=1e-9)
    assert flame.has_eyelids and flame.num_vertices == 5023


def test_npz_with_same_keys_gives_same_model(tmp_path, flame):
    arrays = load_flame_arrays(ensure_proxy_model())
    np.savez(tmp_path / "flame.npz", **arrays)
    other = FlameModel(tmp_path / "flame.npz")
    jaw = torch.tensor([[0.2, 0.0, 0.0]])
    torch.testing.assert_close(other(jaw=jaw).vertices, flame(jaw=jaw).vertices, rtol=0, atol=0)


def test_zero_pose_and_coefficients_give_the_template(flame, rest):
    assert rest.vertices.shape == (1, 5023, 3)
    assert rest.landmarks.shape == (1, 68, 3) and rest.joints.shape == (1, 5, 3)
    # LBS with identity transforms only adds float32 rounding (< 0.1 micrometre).
    torch.testing.assert_close(rest.vertices[0], flame.v_template, rtol=0, atol=1e-7)


def test_joints_are_anatomically_placed(rest):
    j = rest.joints[0]
    root, neck, jaw, eye_l, eye_r = j
    assert root[1] < neck[1] < jaw[1] < eye_l[1]  # neck base < skull base < jaw pivot < eyes
    assert abs(jaw[0]) < 5e-3 and jaw[2] < eye_l[2]  # jaw pivot on the midline, behind the eyes
    assert eye_l[0] > 0.02 and eye_r[0] < -0.02  # subject's left eye at +x


def test_jaw_opens_mouth_and_keeps_forehead_fixed(flame, rest):
    with torch.no_grad():
        out = flame(jaw=torch.tensor([[0.3, 0.0, 0.0]]))
    dy = (out.landmarks - rest.landmarks)[0, :, 1]
    assert (dy[LOWER_LIP] < -0.003).all(), dy[LOWER_LIP]  # several millimetres down
    assert dy[UPPER_LIP].abs().max() < 1e-4  # the upper lip stays (corners blend slightly)
    forehead = rest.vertices[0, :, 1] > rest.landmarks[0, 17:27, 1].max() + 0.01
    assert forehead.sum() > 100
    moved = (out.vertices - rest.vertices)[0].norm(dim=-1)
    assert moved[forehead].max() < 1e-6


def test_global_rotation_is_rigid(flame):
    g = torch.Generator().manual_seed(0)
    shape, exp = torch.randn(1, 300, generator=g).expand(2, -1), torch.randn(1, 100, generator=g).expand(2, -1)
    rot = degrees_to_axis_angle(torch.tensor([[25.0, -40.0, 10.0], [0.0, 0.0, 0.0]], dtype=torch.float64)).float()
    with torch.no_grad():
        out = flame(shape=shape, expression=exp, global_rot=rot)
    idx = torch.randperm(5023, generator=g)[:400]
    mode = "donot_use_mm_for_euclid_dist"
    d0 = torch.cdist(out.vertices[1, idx], out.vertices[1, idx], compute_mode=mode)
    d1 = torch.cdist(out.vertices[0, idx], out.vertices[0, idx], compute_mode=mode)
    assert (d0 - d1).abs().max() < 1e-6
    assert (out.vertices[0] - out.vertices[1]).abs().max() > 0.01  # it did rotate


def test_eyelid_weight_one_closes_the_eyes(flame, rest):
    with torch.no_grad():
        closed = flame(eyelids=torch.ones(1, 2))
    for up, lo in ((37, 41), (38, 40), (43, 47), (44, 46)):
        before = (rest.landmarks[0, up] - rest.landmarks[0, lo]).norm()
        after = (closed.landmarks[0, up] - closed.landmarks[0, lo]).norm()
        assert after <= 0.2 * before, (up, lo, before, after)


def test_eye_rotation_moves_only_the_eyeballs(flame, rest):
    with torch.no_grad():
        out = flame(eyes=torch.tensor([[[0.0, 0.3, 0.0], [0.0, 0.3, 0.0]]]))
    moved = (out.vertices - rest.vertices)[0].norm(dim=-1) > 1e-7
    idx = moved.nonzero().flatten()
    assert idx.numel() > 100 and idx.min() >= 3931 and idx.max() <= 5022


def test_contour_landmarks_follow_yaw(flame, rest):
    yaw = degrees_to_axis_angle(torch.tensor([[0.0, 30.0, 0.0]], dtype=torch.float64)).float()
    with torch.no_grad():
        out = flame(global_rot=yaw)
        rotated_rest = rest.landmarks[0, :17] @ torch.linalg.matrix_exp(
            torch.tensor([[0.0, -yaw[0, 2], yaw[0, 1]], [yaw[0, 2], 0.0, -yaw[0, 0]], [-yaw[0, 1], yaw[0, 0], 0.0]])
        ).T
    # The contour slides over the surface (different embedding bin), not just rigidly rotated.
    assert (out.landmarks[0, :17] - rotated_rest).norm(dim=-1).max() > 1e-3


def test_expression_components_are_local_and_millimetre_sized(flame, rest):
    for k in range(13):
        exp = torch.zeros(1, 100)
        exp[0, k] = 1.0
        with torch.no_grad():
            d = (flame(expression=exp).vertices - rest.vertices)[0].norm(dim=-1)
        assert 0.002 < d.max() < 0.01, (k, d.max())
        assert d[3931:].max() < 1e-7  # eyeballs never deform


def test_bad_inputs_are_reported(flame):
    with pytest.raises(ValueError, match="inconsistent batch"):
        flame(jaw=torch.zeros(2, 3), global_rot=torch.zeros(3, 3))
    with pytest.raises(ValueError, match="expression has 101"):
        flame(expression=torch.zeros(1, 101))


def test_missing_key_is_named(tmp_path):
    arrays = load_flame_arrays(ensure_proxy_model())
    del arrays["weights"]
    np.savez(tmp_path / "broken.npz", **arrays)
    with pytest.raises(ValueError, match=r"broken\.npz: missing key 'weights'"):
        FlameModel(tmp_path / "broken.npz")
    with pytest.raises(FileNotFoundError, match="nowhere.pkl"):
        FlameModel(tmp_path / "nowhere.pkl")
