"""Per-frame pose overrides (flap.control.pose): replace / overlay / fixed with hand-computed values."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from flap.control import apply_pose, apply_pose_track, scale_rotation
from flap.flame.coeffs import HeadCoeffs
from flap.flame.rotations import (
    axis_angle_to_degrees,
    axis_angle_to_matrix,
    degrees_to_axis_angle,
    degrees_to_matrix,
)


def _rx(deg):
    a = math.radians(deg)
    return np.array([[1, 0, 0], [0, math.cos(a), -math.sin(a)], [0, math.sin(a), math.cos(a)]])


def _ry(deg):
    a = math.radians(deg)
    return np.array([[math.cos(a), 0, math.sin(a)], [0, 1, 0], [-math.sin(a), 0, math.cos(a)]])


def _audio_like(num_frames=20, seed=0) -> HeadCoeffs:
    """Coefficients with small varying 'speech nods' (float64 for exact comparisons)."""
    rng = np.random.default_rng(seed)
    pyr = np.cumsum(rng.normal(0, 0.8, size=(num_frames, 3)), axis=0)
    coeffs = HeadCoeffs.neutral(num_frames, 25.0, dtype=torch.float64)
    coeffs.data[:, 0:3] = degrees_to_axis_angle(torch.as_tensor(pyr))
    coeffs.data[:, 20:30] = torch.as_tensor(rng.normal(size=(num_frames, 10)))
    return coeffs


def test_replace_sets_exact_angles_and_keeps_unset_ones():
    src = _audio_like()
    out = apply_pose(src, yaw=30.0, frames=slice(5, 10), mode="replace")
    before, after = src.pose_degrees().numpy(), out.pose_degrees().numpy()
    np.testing.assert_allclose(after[5:10, 1], 30.0, atol=1e-9)
    np.testing.assert_allclose(after[5:10, [0, 2]], before[5:10, [0, 2]], atol=1e-9)  # pitch, roll kept
    np.testing.assert_array_equal(out.data[:5], src.data[:5])  # other frames untouched
    np.testing.assert_array_equal(out.data[10:], src.data[10:])
    np.testing.assert_array_equal(out.data[:, 3:], src.data[:, 3:])  # expression untouched
    assert out is not src and not torch.equal(out.data, src.data)


def test_replace_per_frame_arrays():
    src = HeadCoeffs.neutral(4, dtype=torch.float64)
    out = apply_pose(src, pitch=[0, 10, 20, 30], yaw=np.array([5, 5, 5, 5]), roll=0, mode="replace")
    np.testing.assert_allclose(
        out.pose_degrees().numpy(), [[0, 5, 0], [10, 5, 0], [20, 5, 0], [30, 5, 0]], atol=1e-9
    )
    with pytest.raises(ValueError, match="pitch: expected a scalar or 2 per-frame values"):
        apply_pose(src, pitch=[1, 2, 3], frames=[0, 1])


def test_overlay_of_zero_motion_is_identity():
    src = _audio_like()
    out = apply_pose(src, pitch=0, yaw=0, roll=0, mode="overlay")
    np.testing.assert_allclose(out.data.numpy(), src.data.numpy(), atol=1e-12)
    out = apply_pose(src, mode="overlay")  # None angles are 0
    np.testing.assert_allclose(out.data.numpy(), src.data.numpy(), atol=1e-12)


def test_overlay_composes_rotations_on_so3():
    # Source pose: yaw 30 deg; user overlay: pitch 10 deg -> R = Rx(10) @ Ry(30) (hand-built matrices).
    src = HeadCoeffs.neutral(3, dtype=torch.float64).set_pose_degrees([0.0, 30.0, 0.0])
    out = apply_pose(src, pitch=10.0, mode="overlay")
    expected = _rx(10) @ _ry(30)
    got = axis_angle_to_matrix(out.global_rot).numpy()
    for r in got:
        np.testing.assert_allclose(r, expected, atol=1e-12)
    # Not the same as adding Euler angles (pitch 10, yaw 30 -> Rz Ry(30) Rx(10) != Rx(10) Ry(30)).
    assert (
        np.abs(
            degrees_to_matrix(torch.tensor([10.0, 30.0, 0.0], dtype=torch.float64)).numpy() - expected
        ).max()
        > 1e-2
    )


def test_overlay_keeps_speech_nods():
    src = _audio_like()
    out = apply_pose(src, yaw=25.0, mode="overlay")
    r_src = axis_angle_to_matrix(src.global_rot)
    r_out = axis_angle_to_matrix(out.global_rot)
    # Relative motion between consecutive frames is unchanged by a constant overlay: R_out[t] R_out[t-1]^T
    # = R_u R_src[t] R_src[t-1]^T R_u^T is a conjugate, so its rotation angle is the same.
    rel_src = r_src[1:] @ r_src[:-1].transpose(1, 2)
    rel_out = r_out[1:] @ r_out[:-1].transpose(1, 2)
    angle = lambda r: torch.arccos(((r.diagonal(dim1=1, dim2=2).sum(-1) - 1) / 2).clamp(-1, 1))  # noqa: E731
    np.testing.assert_allclose(angle(rel_out).numpy(), angle(rel_src).numpy(), atol=1e-7)
    assert angle(rel_src).max() > 1e-3  # there were nods to keep


def test_fixed_gives_constant_global_rot():
    src = _audio_like()
    out = apply_pose(src, pitch=5, yaw=-10, mode="fixed")
    expected = degrees_to_axis_angle(torch.tensor([5.0, -10.0, 0.0], dtype=torch.float64))
    np.testing.assert_allclose(out.global_rot.numpy(), expected.expand(len(src), 3).numpy(), atol=1e-12)
    assert (out.global_rot == out.global_rot[0]).all()
    with pytest.raises(ValueError, match="fixed"):
        apply_pose(src, pitch=[1, 2] * 10, mode="fixed")


def test_pose_track_and_cut():
    src = HeadCoeffs.neutral(5, dtype=torch.float64)
    track = np.array([[1.0, 2.0, 3.0]] * 10)  # longer than the clip: cut
    out = apply_pose_track(src, track, mode="replace", start_frame=2)
    np.testing.assert_allclose(out.pose_degrees().numpy()[2:], track[:3], atol=1e-9)
    np.testing.assert_array_equal(out.global_rot[:2].numpy(), 0.0)


def test_bad_arguments():
    src = HeadCoeffs.neutral(5)
    with pytest.raises(ValueError, match="mode must be one of"):
        apply_pose(src, pitch=1, mode="add")
    with pytest.raises(ValueError, match="indices must be in"):
        apply_pose(src, pitch=1, frames=[7])
    with pytest.raises(ValueError, match="NaN"):
        apply_pose(src, pitch=float("nan"))
    with pytest.raises(ValueError, match=r"\(N, 3\)"):
        apply_pose_track(src, np.zeros((4, 2)))


def test_scale_rotation_is_angle_scaling():
    rot = degrees_to_axis_angle(torch.tensor([[0.0, 40.0, 0.0]], dtype=torch.float64))
    np.testing.assert_allclose(
        axis_angle_to_degrees(scale_rotation(rot, 0.5)).numpy(), [[0, 20, 0]], atol=1e-9
    )


angle = st.floats(-89.0, 89.0, allow_nan=False)


@settings(max_examples=60, deadline=None)
@given(p=angle, y=angle, r=angle)
def test_property_degrees_round_trip_through_coeffs(p, y, r):
    """degrees -> HeadCoeffs.global_rot (axis-angle) -> degrees round trips to 1e-6 within +-89 deg."""
    out = apply_pose(HeadCoeffs.neutral(1, dtype=torch.float64), pitch=p, yaw=y, roll=r, mode="replace")
    np.testing.assert_allclose(out.pose_degrees().numpy()[0], [p, y, r], atol=1e-6)
    # And the matrix is the hand-built Rz(roll) Ry(yaw) Rx(pitch).
    a = math.radians(r)
    rz = np.array([[math.cos(a), -math.sin(a), 0], [math.sin(a), math.cos(a), 0], [0, 0, 1]])
    np.testing.assert_allclose(
        axis_angle_to_matrix(out.global_rot[0]).numpy(), rz @ _ry(y) @ _rx(p), atol=1e-9
    )


@settings(max_examples=40, deadline=None)
@given(p=angle, y=angle, r=angle, q=angle, z=angle)
def test_property_overlay_matches_matrix_product(p, y, r, q, z):
    src = HeadCoeffs.neutral(1, dtype=torch.float64).set_pose_degrees([q, z, 0.0])
    out = apply_pose(src, pitch=p, yaw=y, roll=r, mode="overlay")
    expected = degrees_to_matrix(torch.tensor([p, y, r], dtype=torch.float64)) @ axis_angle_to_matrix(
        src.global_rot[0]
    )
    np.testing.assert_allclose(axis_angle_to_matrix(out.global_rot[0]).numpy(), expected.numpy(), atol=1e-9)
