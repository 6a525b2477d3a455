"""HeadCoeffs layout, validation, I/O, and the rotation conversions."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from flap.flame import HeadCoeffs
from flap.flame.rotations import (
    axis_angle_to_degrees,
    axis_angle_to_matrix,
    compose_axis_angle,
    degrees_to_axis_angle,
    degrees_to_matrix,
    matrix_to_axis_angle,
    matrix_to_degrees,
    matrix_to_rotation_6d,
    rotation_6d_to_matrix,
)


def _random_degrees(n=2000, seed=0):
    return (torch.rand(n, 3, generator=torch.Generator().manual_seed(seed), dtype=torch.float64) * 2 - 1) * 89.999


def test_degrees_axis_angle_matrix_round_trips():
    deg = _random_degrees()
    mat = degrees_to_matrix(deg)
    aa = degrees_to_axis_angle(deg)
    assert torch.allclose(axis_angle_to_matrix(aa), mat, atol=1e-12)
    assert (axis_angle_to_degrees(aa) - deg).abs().max() < 1e-6
    assert (matrix_to_degrees(mat) - deg).abs().max() < 1e-6
    assert (matrix_to_axis_angle(mat) - aa).abs().max() < 1e-6
    assert (rotation_6d_to_matrix(matrix_to_rotation_6d(mat)) - mat).abs().max() < 1e-6


def test_convention_hand_computed():
    # Pitch 90° about x maps y to z; yaw 90° about y maps z to x; roll 90° about z maps x to y.
    ey, ez, ex = torch.tensor([0.0, 1, 0], dtype=torch.float64), torch.tensor([0.0, 0, 1], dtype=torch.float64), torch.tensor([1.0, 0, 0], dtype=torch.float64)
    assert torch.allclose(degrees_to_matrix(torch.tensor([90.0, 0, 0], dtype=torch.float64)) @ ey, ez, atol=1e-12)
    assert torch.allclose(degrees_to_matrix(torch.tensor([0.0, 90, 0], dtype=torch.float64)) @ ez, ex, atol=1e-12)
    assert torch.allclose(degrees_to_matrix(torch.tensor([0.0, 0, 90], dtype=torch.float64)) @ ex, ey, atol=1e-12)
    # Axis-angle of a pure yaw is along y with the angle in radians.
    aa = degrees_to_axis_angle(torch.tensor([0.0, 30.0, 0.0], dtype=torch.float64))
    assert torch.allclose(aa, torch.tensor([0.0, math.radians(30), 0.0], dtype=torch.float64), atol=1e-12)
    # Order: R = Rz(roll) Ry(yaw) Rx(pitch).
    r = degrees_to_matrix(torch.tensor([10.0, 20.0, 30.0], dtype=torch.float64))
    rx = degrees_to_matrix(torch.tensor([10.0, 0, 0], dtype=torch.float64))
    ry = degrees_to_matrix(torch.tensor([0.0, 20, 0], dtype=torch.float64))
    rz = degrees_to_matrix(torch.tensor([0.0, 0, 30], dtype=torch.float64))
    assert torch.allclose(r, rz @ ry @ rx, atol=1e-12)


def test_compose_is_matrix_product():
    a = degrees_to_axis_angle(torch.tensor([0.0, 30.0, 0.0], dtype=torch.float64))
    b = degrees_to_axis_angle(torch.tensor([10.0, 0.0, 0.0], dtype=torch.float64))
    expected = axis_angle_to_matrix(b) @ axis_angle_to_matrix(a)
    assert torch.allclose(axis_angle_to_matrix(compose_axis_angle(a, b)), expected, atol=1e-12)


def test_layout_views_and_neutral():
    c = HeadCoeffs.neutral(4, fps=30)
    assert c.data.shape == (4, 120) and c.fps == 30.0 and c.duration == pytest.approx(4 / 30)
    assert c.global_rot.shape == (4, 3) and c.eyes.shape == (4, 12) and c.jaw.shape == (4, 3)
    assert c.eyelids.shape == (4, 2) and c.expression.shape == (4, 100)
    assert c.c_motion.shape == (4, 3) and c.c_exp.shape == (4, 117)
    assert torch.equal(c.eyes[0], torch.tensor([1.0, 0, 0, 0, 1, 0] * 2))
    c.jaw[:, 0] = 0.25  # views write through
    assert torch.equal(c.data[:, 15], torch.full((4,), 0.25))
    assert torch.equal(c.c_exp[:, 12], c.data[:, 15])
    torch.testing.assert_close(c.eye_matrices(), torch.eye(3).expand(4, 2, 3, 3))


def test_pose_degrees_round_trip_and_flame_inputs():
    c = HeadCoeffs.neutral(3)
    pyr = np.array([[10.0, -20.0, 5.0], [0.0, 45.0, 0.0], [-30.0, 0.0, 15.0]])
    c.set_pose_degrees(pyr)
    assert np.allclose(c.pose_degrees().numpy(), pyr, atol=1e-4)
    inputs = c.to_flame_inputs(shape=torch.zeros(300))
    assert inputs["shape"].shape == (3, 300) and inputs["eyes"].shape == (3, 2, 3)
    assert torch.allclose(inputs["eyes"], torch.zeros(3, 2, 3), atol=1e-7)


@pytest.mark.parametrize("suffix", [".npz", ".safetensors"])
def test_save_load_round_trip_is_exact(tmp_path, suffix):
    c = HeadCoeffs(torch.randn(17, 120, generator=torch.Generator().manual_seed(1)), fps=29.97)
    path = c.save(tmp_path / f"coeffs{suffix}")
    back = HeadCoeffs.load(path)
    assert torch.equal(back.data, c.data) and back.fps == c.fps
    assert list(tmp_path.iterdir()) == [path]  # no temp file left behind


def test_validation_errors(tmp_path):
    with pytest.raises(ValueError, match=r"shape \(T, 120\), got \(5, 119\)"):
        HeadCoeffs(torch.zeros(5, 119))
    bad = torch.zeros(5, 120)
    bad[2, 7] = float("nan")
    with pytest.raises(ValueError, match="NaN or inf .*frame 2, column 7"):
        HeadCoeffs(bad)
    with pytest.raises(ValueError, match="fps must be a positive"):
        HeadCoeffs(torch.zeros(5, 120), fps=0)
    with pytest.raises(ValueError, match="fps must be a positive"):
        HeadCoeffs(torch.zeros(5, 120), fps=-25)
    with pytest.raises(ValueError, match=r"\.txt"):
        HeadCoeffs.neutral(2).save(tmp_path / "c.txt")
    np.savez(tmp_path / "nofps.npz", coeffs=np.zeros((2, 120)))
    with pytest.raises(ValueError, match=r"nofps\.npz: missing key 'fps'"):
        HeadCoeffs.load(tmp_path / "nofps.npz")
    with pytest.raises(FileNotFoundError, match="missing.npz"):
        HeadCoeffs.load(tmp_path / "missing.npz")


def test_from_parts_and_slicing():
    c = HeadCoeffs.from_parts(fps=25, jaw=np.full((6, 3), 0.1), expression=np.ones((6, 10)))
    assert c.num_frames == 6 and torch.allclose(c.jaw, torch.full((6, 3), 0.1))
    assert c.expression[:, :10].eq(1).all() and c.expression[:, 10:].eq(0).all()
    assert c[2:4].num_frames == 2 and c[2:4].fps == 25
    with pytest.raises(ValueError, match="'eyelids' has 6 frames, expected 5"):
        HeadCoeffs.from_parts(fps=25, jaw=np.zeros((5, 3)), eyelids=np.zeros((6, 2)))
