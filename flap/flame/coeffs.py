"""`HeadCoeffs`: FLAP's per-frame condition, 120 numbers per frame (paper Eq. 3, Sec. 5.1).

| slice  | name         | size | representation                                      |
|--------|--------------|------|-----------------------------------------------------|
| 0:3    | global_rot   | 3    | axis-angle, radians (θ_globalR)                     |
| 3:15   | eyes         | 12   | 6D rotation, left then right eyeball (θ_eyes)       |
| 15:18  | jaw          | 3    | axis-angle, radians (θ_jaw)                         |
| 18:20  | eyelids      | 2    | blendshape weights, left then right, 0 = open       |
| 20:120 | expression   | 100  | FLAME expression coefficients ψ_exp                 |

``c_motion = global_rot`` (3) and ``c_exp = [eyes, jaw, eyelids, expression]`` (117).
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import save_file

from flap.errors import InputError, InputNotFoundError
from flap.flame.rotations import (
    axis_angle_to_degrees,
    degrees_to_axis_angle,
    identity_rotation_6d,
    matrix_to_axis_angle,
    rotation_6d_to_matrix,
)
from flap.io.atomic import atomic_output

__all__ = ["HeadCoeffs", "SLICES", "COND_DIM", "C_MOTION_DIM", "C_EXP_DIM", "DEFAULT_FPS", "jaw_opening"]

#: Named slices of the 120-number condition (docs/DESIGN.md).
SLICES: dict[str, slice] = {
    "global_rot": slice(0, 3),
    "eyes": slice(3, 15),
    "jaw": slice(15, 18),
    "eyelids": slice(18, 20),
    "expression": slice(20, 120),
}
COND_DIM = 120
C_MOTION_DIM = 3
C_EXP_DIM = 117
C_MOTION_SLICE = slice(0, 3)
C_EXP_SLICE = slice(3, 120)
DEFAULT_FPS = 25.0


def _check_fps(fps, where: str) -> float:
    try:
        fps = float(fps)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{where}: fps must be a positive number, got {fps!r}") from exc
    if not math.isfinite(fps) or fps <= 0:
        raise ValueError(f"{where}: fps must be a positive finite number, got {fps}")
    return fps


@dataclass(eq=False)
class HeadCoeffs:
    """Per-frame FLAME condition: a ``(T, 120)`` float tensor plus its frame rate.

    Args:
        data: ``(T, 120)`` tensor or array (layout in the module docstring). Stored as a float32 torch tensor unless already float64.
        fps: frames per second (> 0).

    Named views (``global_rot``, ``eyes``, ``jaw``, ``eyelids``, ``expression``, ``c_motion``,
    ``c_exp``) are *views* into ``data``: writing to them edits the coefficients.

    Raises:
        ValueError: wrong shape, NaN/inf values, or fps ≤ 0 (message names what was found).
    """

    data: torch.Tensor
    fps: float = DEFAULT_FPS

    def __post_init__(self):
        data = self.data
        if isinstance(data, np.ndarray):
            data = torch.from_numpy(np.ascontiguousarray(data))
        elif not isinstance(data, torch.Tensor):
            data = torch.as_tensor(data)
        if not data.is_floating_point():
            data = data.float()
        if data.dtype not in (torch.float32, torch.float64):
            data = data.float()
        if data.ndim != 2 or data.shape[1] != COND_DIM:
            raise ValueError(f"HeadCoeffs: expected data of shape (T, {COND_DIM}), got {tuple(data.shape)}")
        if not torch.isfinite(data).all():
            bad = (~torch.isfinite(data)).nonzero()[0].tolist()
            raise ValueError(f"HeadCoeffs: data contains NaN or inf (first at frame {bad[0]}, column {bad[1]})")
        self.data = data
        self.fps = _check_fps(self.fps, "HeadCoeffs")

    # ----------------------------------------------------------------- construction
    @classmethod
    def neutral(cls, num_frames: int, fps: float = DEFAULT_FPS, dtype=torch.float32) -> HeadCoeffs:
        """A neutral sequence: zero rotations, eyes looking ahead (identity 6D), open eyelids."""
        data = torch.zeros(num_frames, COND_DIM, dtype=dtype)
        data[:, SLICES["eyes"]] = identity_rotation_6d(num_frames, 2, dtype=dtype).reshape(num_frames, 12)
        return cls(data, fps)

    @classmethod
    def from_parts(
        cls,
        fps: float = DEFAULT_FPS,
        *,
        global_rot=None,
        eyes=None,
        jaw=None,
        eyelids=None,
        expression=None,
        num_frames: int | None = None,
    ) -> HeadCoeffs:
        """Assemble from named parts, each ``(T, size)``; missing parts are neutral.

        ``expression`` may have fewer than 100 columns (zero-padded).

        Raises:
            ValueError: inconsistent frame counts or a part with the wrong width.
        """
        parts = {"global_rot": global_rot, "eyes": eyes, "jaw": jaw, "eyelids": eyelids, "expression": expression}
        lengths = {k: len(v) for k, v in parts.items() if v is not None}
        if num_frames is None:
            if not lengths:
                raise ValueError("HeadCoeffs.from_parts: give num_frames or at least one part")
            num_frames = next(iter(lengths.values()))
        for k, n in lengths.items():
            if n != num_frames:
                raise ValueError(f"HeadCoeffs.from_parts: part {k!r} has {n} frames, expected {num_frames}")
        out = cls.neutral(num_frames, fps)
        for k, v in parts.items():
            if v is None:
                continue
            v = torch.as_tensor(np.asarray(v) if not isinstance(v, torch.Tensor) else v, dtype=out.data.dtype)
            width = SLICES[k].stop - SLICES[k].start
            if k == "expression" and v.shape[-1] < width:
                v = torch.nn.functional.pad(v, (0, width - v.shape[-1]))
            if v.ndim != 2 or v.shape[1] != width:
                raise ValueError(f"HeadCoeffs.from_parts: part {k!r} must be (T, {width}), got {tuple(v.shape)}")
            out.data[:, SLICES[k]] = v
        out.__post_init__()
        return out

    # ----------------------------------------------------------------- views
    def __len__(self) -> int:
        return self.data.shape[0]

    @property
    def num_frames(self) -> int:
        return self.data.shape[0]

    @property
    def duration(self) -> float:
        """Duration in seconds, ``T / fps``."""
        return self.num_frames / self.fps

    @property
    def global_rot(self) -> torch.Tensor:
        """``(T, 3)`` head rotation, axis-angle radians (c_motion)."""
        return self.data[:, SLICES["global_rot"]]

    @property
    def eyes(self) -> torch.Tensor:
        """``(T, 12)`` eyeball rotations, 6D, left then right."""
        return self.data[:, SLICES["eyes"]]

    @property
    def jaw(self) -> torch.Tensor:
        """``(T, 3)`` jaw rotation, axis-angle radians."""
        return self.data[:, SLICES["jaw"]]

    @property
    def eyelids(self) -> torch.Tensor:
        """``(T, 2)`` eyelid blendshape weights, left then right, 0 = open, 1 = closed."""
        return self.data[:, SLICES["eyelids"]]

    @property
    def expression(self) -> torch.Tensor:
        """``(T, 100)`` FLAME expression coefficients ψ."""
        return self.data[:, SLICES["expression"]]

    @property
    def c_motion(self) -> torch.Tensor:
        """``(T, 3)`` head-motion condition (= ``global_rot``)."""
        return self.data[:, C_MOTION_SLICE]

    @property
    def c_exp(self) -> torch.Tensor:
        """``(T, 117)`` expression condition ``[eyes, jaw, eyelids, expression]``."""
        return self.data[:, C_EXP_SLICE]

    # ----------------------------------------------------------------- angles
    def pose_degrees(self) -> torch.Tensor:
        """``(T, 3)`` head pitch / yaw / roll in degrees (see :mod:`flap.flame.rotations`)."""
        return axis_angle_to_degrees(self.global_rot.double()).to(self.data.dtype)

    def set_pose_degrees(self, pyr_deg, frames=None) -> HeadCoeffs:
        """Set head pose from pitch / yaw / roll degrees ``(T', 3)`` or ``(3,)`` for ``frames``; in place."""
        pyr = torch.as_tensor(np.asarray(pyr_deg, dtype=np.float64))
        idx = slice(None) if frames is None else torch.as_tensor(frames, dtype=torch.long)
        self.data[idx, SLICES["global_rot"]] = degrees_to_axis_angle(pyr).to(self.data.dtype)
        return self

    def eye_matrices(self) -> torch.Tensor:
        """``(T, 2, 3, 3)`` eyeball rotation matrices (left, right)."""
        return rotation_6d_to_matrix(self.eyes.reshape(-1, 2, 6))

    # ----------------------------------------------------------------- misc
    def clone(self) -> HeadCoeffs:
        return HeadCoeffs(self.data.clone(), self.fps)

    def __getitem__(self, idx) -> HeadCoeffs:
        """Frame slicing: ``coeffs[10:20]`` is a HeadCoeffs of 10 frames (a copy)."""
        data = self.data[idx]
        if data.ndim == 1:
            data = data[None]
        return HeadCoeffs(data.clone(), self.fps)

    def to(self, *args, **kwargs) -> HeadCoeffs:
        return HeadCoeffs(self.data.to(*args, **kwargs), self.fps)

    def numpy(self) -> np.ndarray:
        return self.data.detach().cpu().numpy()

    def __repr__(self) -> str:
        return f"HeadCoeffs(T={self.num_frames}, fps={self.fps:g}, dtype={self.data.dtype})"

    def to_flame_inputs(self, shape: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """Keyword arguments for :meth:`flap.flame.FlameModel.forward`, batch = frames.

        Returns ``global_rot (T,3)``, ``jaw (T,3)``, ``neck (T,3)`` (zeros), ``eyes (T,2,3)``
        axis-angle, ``eyelids (T,2)``, ``expression (T,100)`` and, if given, ``shape`` broadcast to
        ``(T, n_shape)``.
        """
        t = self.num_frames
        out = {
            "global_rot": self.global_rot,
            "jaw": self.jaw,
            "neck": torch.zeros_like(self.global_rot),
            "eyes": matrix_to_axis_angle(self.eye_matrices()),
            "eyelids": self.eyelids,
            "expression": self.expression,
        }
        if shape is not None:
            shape = torch.as_tensor(shape, dtype=self.data.dtype)
            out["shape"] = shape.reshape(1, -1).expand(t, -1) if shape.ndim == 1 or shape.shape[0] == 1 else shape
        return out

    # ----------------------------------------------------------------- I/O
    def save(self, path: str | os.PathLike) -> Path:
        """Save to ``.npz`` or ``.safetensors`` (chosen by suffix), fps stored; written atomically.

        Raises:
            ValueError: unknown suffix.
        """
        path = Path(path)
        suffix = path.suffix.lower()
        if suffix not in (".npz", ".safetensors"):
            raise ValueError(f"HeadCoeffs.save: {path}: expected a .npz or .safetensors path, got suffix {suffix!r}")
        with atomic_output(path) as tmp:
            if suffix == ".npz":
                with open(tmp, "wb") as fh:
                    np.savez(fh, coeffs=self.numpy(), fps=np.asarray(self.fps, dtype=np.float64))
            else:
                save_file(
                    {"coeffs": self.data.detach().cpu().contiguous()},
                    str(tmp),
                    metadata={"fps": repr(self.fps), "layout": json.dumps({k: [s.start, s.stop] for k, s in SLICES.items()})},
                )
        return path

    @classmethod
    def load(cls, path: str | os.PathLike) -> HeadCoeffs:
        """Load a file written by :meth:`save` (``.npz`` or ``.safetensors``).

        Raises:
            InputNotFoundError (a FileNotFoundError): missing file.
            InputError (a ValueError): unknown suffix, not a readable npz / safetensors file
                (truncated, garbage), missing ``coeffs``/``fps`` key, non-numeric data, bad shape,
                0 frames, NaN/inf, fps not one positive number. The message names the file.
        """
        path = Path(path)
        if not path.is_file():
            what = "a folder" if path.is_dir() else "no such file"
            raise InputNotFoundError(f"HeadCoeffs.load: {path}: {what}, expected a .npz or .safetensors coefficient file")
        try:
            data, fps = _read_coeffs_file(path)
            return cls(_numeric(data, "'coeffs'"), _scalar_fps(fps))
        except ValueError as exc:
            raise InputError(f"HeadCoeffs.load: {path}: {exc}") from exc


def _read_coeffs_file(path: Path) -> tuple[np.ndarray | torch.Tensor, object]:
    """Raw ``(coeffs, fps)`` of a coefficient file; every decoding failure becomes a ValueError."""
    suffix = path.suffix.lower()
    if suffix == ".npz":
        try:
            with np.load(path, allow_pickle=False) as z:
                for key in ("coeffs", "fps"):
                    if key not in z.files:
                        raise ValueError(f"missing key {key!r} (found keys {sorted(z.files)})")
                return z["coeffs"].copy(), z["fps"]
        except ValueError:
            raise
        except Exception as exc:  # noqa: BLE001 - zipfile / zlib / numpy raise many types for a damaged file
            raise ValueError(f"not a readable .npz file ({type(exc).__name__}: {exc}); truncated or not written by HeadCoeffs.save?") from exc
    if suffix == ".safetensors":
        from safetensors import safe_open

        try:
            with safe_open(str(path), framework="pt") as f:
                if "coeffs" not in f.keys():
                    raise ValueError(f"missing tensor 'coeffs' (found {sorted(f.keys())})")
                meta = f.metadata() or {}
                if "fps" not in meta:
                    raise ValueError("missing metadata key 'fps'")
                return f.get_tensor("coeffs"), meta["fps"]
        except ValueError:
            raise
        except Exception as exc:  # noqa: BLE001 - SafetensorError and OSError for damaged files
            raise ValueError(f"not a readable .safetensors file ({type(exc).__name__}: {exc})") from exc
    raise ValueError(f"expected a .npz or .safetensors file, got suffix {suffix!r}")


def _numeric(data, what: str):
    """``data`` if it is a real-number array with at least one frame, else ValueError naming ``what``."""
    if isinstance(data, np.ndarray):
        if data.dtype.kind not in "fiu":
            raise ValueError(f"{what} must hold real numbers, found dtype {data.dtype}")
    elif isinstance(data, torch.Tensor) and (data.is_complex() or data.dtype == torch.bool):
        raise ValueError(f"{what} must hold real numbers, found dtype {data.dtype}")
    if data.ndim != 2 or data.shape[1] != COND_DIM:
        raise ValueError(f"{what} must have shape (T, {COND_DIM}), found {tuple(data.shape)}")
    if data.shape[0] == 0:
        raise ValueError(f"{what} has 0 frames, expected at least 1")
    return data


def _scalar_fps(fps) -> float:
    """One positive finite fps from an npz array or a safetensors metadata string (ValueError otherwise)."""
    if isinstance(fps, np.ndarray):
        if fps.size != 1 or fps.dtype.kind not in "fiu":
            raise ValueError(f"'fps' must be one number, found {fps.dtype} array of shape {fps.shape}")
        fps = fps.reshape(()).item()
    return _check_fps(fps, "'fps'")


def jaw_opening(coeffs: np.ndarray) -> np.ndarray:
    """Jaw opening per frame: the jaw rotation about the x axis (radians), ``(T,)`` from ``(T,120)``."""
    return np.asarray(coeffs)[:, SLICES["jaw"].start]
