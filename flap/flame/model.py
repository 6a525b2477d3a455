"""`FlameModel`: the FLAME head model (Li et al., SIGGRAPH Asia 2017) on smplx's LBS functions.

Loads FLAME 2020 ``generic_model.pkl``, FLAME 2023 / 2023 Open pkls, an ``.npz`` with the same keys,
or the FLAME-format proxy (:mod:`flap.flame.proxy`), all through :func:`load_flame_arrays` (no
code from the file is ever executed). Skinning, blend shapes and joint regression are smplx's
``lbs``; landmarks are smplx's ``vertices2landmarks`` / ``find_dynamic_lmk_idx_and_bcoords``.

Kinematic tree (FLAME): 0 global (root), 1 neck, 2 jaw, 3 left eyeball, 4 right eyeball. "Left" is
the subject's left, +x. Coordinates are metres, y up, z towards the viewer.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from smplx.lbs import find_dynamic_lmk_idx_and_bcoords, lbs, vertices2landmarks

from flap.flame.assets import flame_dir, load_flame_arrays, load_landmark_embeddings
from flap.flame.proxy import ensure_proxy_model

__all__ = ["FlameModel", "FlameOutput", "NUM_LANDMARKS", "JOINT_NAMES", "MODEL_NAMES", "find_flame_model"]

#: FLAME model files looked for in the FLAME folder, in this order.
MODEL_NAMES = ("generic_model.pkl", "flame2023_Open.pkl", "flame2023.pkl", "FLAME2020/generic_model.pkl")

NUM_LANDMARKS = 68
JOINT_NAMES = ("global", "neck", "jaw", "left_eye", "right_eye")
#: Joint chain from the neck to the root, used to pick the yaw-dependent contour (FLAME convention).
NECK_KIN_CHAIN = (1, 0)



def find_flame_model(path: str | os.PathLike | None = None) -> Path:
    """Resolve the FLAME model file to load.

    Search order: an explicit path; else, in the FLAME folder (:func:`flap.flame.assets.flame_dir`),
    :data:`MODEL_NAMES` (FLAME 2020 ``generic_model.pkl``, ``flame2023_Open.pkl``, ``flame2023.pkl``,
    ``FLAME2020/generic_model.pkl``); else the FLAME-format proxy (:mod:`flap.flame.proxy`), built
    on demand.

    Raises:
        FileNotFoundError: an explicit ``path`` that does not exist.
    """
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(
                f"FLAME model file not found: {path} (expected generic_model.pkl, flame2023*.pkl or a .npz "
                "with the same keys)"
            )
        return path
    base = flame_dir()
    for name in MODEL_NAMES:
        if (base / name).is_file():
            return base / name
    return ensure_proxy_model()


@dataclass
class FlameOutput:
    """Result of :meth:`FlameModel.forward`.

    Attributes:
        vertices: ``(B, 5023, 3)`` posed vertices in metres.
        joints: ``(B, 5, 3)`` posed joints (global, neck, jaw, left eye, right eye), metres.
        landmarks: ``(B, 68, 3)`` iBUG-68 landmarks: 0–16 the yaw-dependent jaw contour, 17–67 the
            51 static points (brows, nose, eyes, mouth), metres.
    """

    vertices: torch.Tensor
    joints: torch.Tensor
    landmarks: torch.Tensor


class FlameBlendMixin:
    """Blend-coefficient packing and landmark-face selection shared by FLAME modules.

    Needs attributes ``n_shape``, ``n_exp``, ``has_eyelids``, ``v_template`` and the landmark buffers
    ``static_lmk_faces/bary``, ``dynamic_lmk_faces/bary``, ``neck_kin_chain``.
    """

    def _blend_coeffs(self, batch: int, shape, expression, eyelids) -> torch.Tensor:
        """``(B, n_blend)`` = [β zero-padded to n_shape, ψ zero-padded to n_exp, eyelids if the model has them]."""
        width_total = self.n_shape + self.n_exp + (2 if self.has_eyelids else 0)
        betas = self.v_template.new_zeros(batch, width_total)
        for name, value, start, width in (
            ("shape", shape, 0, self.n_shape),
            ("expression", expression, self.n_shape, self.n_exp),
        ):
            if value is None:
                continue
            if value.shape[-1] > width:
                raise ValueError(
                    f"{type(self).__name__}: {name} has {value.shape[-1]} coefficients, model uses at most {width}"
                )
            betas[:, start : start + value.shape[-1]] = value
        if eyelids is not None:
            if not self.has_eyelids:
                raise ValueError(f"{type(self).__name__}: eyelids given but the model has no eyelid blendshapes")
            betas[:, -2:] = eyelids
        return betas

    def _landmark_faces(self, vertices: torch.Tensor, full_pose: torch.Tensor):
        """Triangles ``(B, 68)`` and barycentric weights ``(B, 68, 3)`` of the iBUG-68 landmarks.

        The 17 contour points depend on the head's yaw (smplx's ``find_dynamic_lmk_idx_and_bcoords``
        over the neck chain); the 51 others are static.
        """
        batch = full_pose.shape[0]
        lmk_faces, lmk_bary = find_dynamic_lmk_idx_and_bcoords(
            vertices, full_pose, self.dynamic_lmk_faces, self.dynamic_lmk_bary, self.neck_kin_chain
        )
        lmk_faces = torch.cat([lmk_faces, self.static_lmk_faces.expand(batch, -1)], dim=1)
        lmk_bary = torch.cat([lmk_bary, self.static_lmk_bary.expand(batch, -1, -1)], dim=1)
        return lmk_faces, lmk_bary


class FlameModel(FlameBlendMixin, torch.nn.Module):
    """FLAME head model with iBUG-68 landmarks.

    Args:
        model_path: a FLAME ``.pkl`` / ``.npz``; ``None`` uses :func:`find_flame_model`
            (real FLAME in ``flame_assets/`` if present, else the proxy, built on demand).
        static_embedding: 51-point landmark embedding (``.pkl``/``.npy`` with ``lmk_face_idx``,
            ``lmk_b_coords``); default RingNet's, shipped with the package.
        dynamic_embedding: 17-point yaw-dependent contour embedding (79 yaw bins); default RingNet's.
        n_shape: number of identity components β used (≤ 300).
        n_exp: number of expression components ψ used (≤ 100).

    Raises:
        FileNotFoundError, ValueError, flap.flame.safe_pickle.UnsafePickleError: bad model files
            (messages name the file and key).
    """

    def __init__(
        self,
        model_path: str | os.PathLike | None = None,
        static_embedding: str | os.PathLike | None = None,
        dynamic_embedding: str | os.PathLike | None = None,
        n_shape: int = 300,
        n_exp: int = 100,
    ):
        super().__init__()
        path = find_flame_model(model_path)
        arrays = load_flame_arrays(path)
        self.model_path = Path(path)
        total = arrays["shapedirs"].shape[-1]
        max_shape = min(300, total)
        if not 0 <= n_shape <= max_shape:
            raise ValueError(f"{path}: n_shape must be in [0, {max_shape}], got {n_shape}")
        if not 0 <= n_exp <= total - 300:
            raise ValueError(f"{path}: n_exp must be in [0, {total - 300}], got {n_exp}")
        self.n_shape, self.n_exp = n_shape, n_exp
        self.has_eyelids = "l_eyelid" in arrays and "r_eyelid" in arrays

        dirs = [arrays["shapedirs"][..., :n_shape], arrays["shapedirs"][..., 300 : 300 + n_exp]]
        if self.has_eyelids:
            dirs += [arrays["l_eyelid"][..., None], arrays["r_eyelid"][..., None]]
        dtype = torch.float32
        self.register_buffer("v_template", torch.tensor(arrays["v_template"], dtype=dtype))
        self.register_buffer("shapedirs", torch.tensor(np.concatenate(dirs, axis=-1), dtype=dtype))
        num_pose_basis = arrays["posedirs"].shape[-1]
        posedirs = np.reshape(arrays["posedirs"], (-1, num_pose_basis)).T
        self.register_buffer("posedirs", torch.tensor(posedirs, dtype=dtype))
        self.register_buffer("J_regressor", torch.tensor(arrays["J_regressor"], dtype=dtype))
        parents = arrays["kintree_table"][0].astype(np.int64)
        parents[0] = -1
        self.register_buffer("parents", torch.tensor(parents))
        self.register_buffer("lbs_weights", torch.tensor(arrays["weights"], dtype=dtype))
        self.register_buffer("faces", torch.tensor(arrays["f"].astype(np.int64)))

        emb = load_landmark_embeddings(static_embedding, dynamic_embedding)
        self.register_buffer("static_lmk_faces", torch.tensor(emb["static_faces"]))
        self.register_buffer("static_lmk_bary", torch.tensor(emb["static_bary"], dtype=dtype))
        self.register_buffer("dynamic_lmk_faces", torch.tensor(emb["dynamic_faces"]))
        self.register_buffer("dynamic_lmk_bary", torch.tensor(emb["dynamic_bary"], dtype=dtype))
        self.register_buffer("neck_kin_chain", torch.tensor(NECK_KIN_CHAIN))

    @property
    def num_vertices(self) -> int:
        return self.v_template.shape[0]

    def extra_repr(self) -> str:
        return f"model={self.model_path.name}, n_shape={self.n_shape}, n_exp={self.n_exp}, eyelids={self.has_eyelids}"

    def forward(
        self,
        shape: torch.Tensor | None = None,
        expression: torch.Tensor | None = None,
        global_rot: torch.Tensor | None = None,
        neck: torch.Tensor | None = None,
        jaw: torch.Tensor | None = None,
        eyes: torch.Tensor | None = None,
        eyelids: torch.Tensor | None = None,
        transl: torch.Tensor | None = None,
    ) -> FlameOutput:
        """Pose the head.

        Args:
            shape: β ``(B, ≤ n_shape)``; missing components are zero.
            expression: ψ ``(B, ≤ n_exp)``.
            global_rot, neck, jaw: axis-angle in radians, ``(B, 3)`` each.
            eyes: eyeball rotations, axis-angle radians, ``(B, 2, 3)`` or ``(B, 6)`` (left, right).
            eyelids: ``(B, 2)`` eyelid blendshape weights (left, right), 0 open, 1 closed.
            transl: ``(B, 3)`` translation in metres, added last.

        Returns:
            :class:`FlameOutput` (vertices, joints, 68 landmarks), float32 on the model's device.

        Raises:
            ValueError: inconsistent batch sizes, too many coefficients, or eyelids for a model
                without eyelid blendshapes.
        """
        given = [t for t in (shape, expression, global_rot, neck, jaw, eyes, eyelids, transl) if t is not None]
        batch = given[0].shape[0] if given else 1
        if any(t.shape[0] != batch for t in given):
            raise ValueError(f"FlameModel: inconsistent batch sizes {[tuple(t.shape) for t in given]}")
        dtype, device = self.v_template.dtype, self.v_template.device

        def pose_part(value, width):
            if value is None:
                return torch.zeros(batch, width, dtype=dtype, device=device)
            return value.reshape(batch, width).to(dtype)

        full_pose = torch.cat(
            [pose_part(global_rot, 3), pose_part(neck, 3), pose_part(jaw, 3), pose_part(eyes, 6)], dim=1
        )
        betas = self._blend_coeffs(batch, shape, expression, eyelids)
        vertices, joints = lbs(
            betas, full_pose, self.v_template, self.shapedirs, self.posedirs,
            self.J_regressor, self.parents, self.lbs_weights,
        )
        lmk_faces, lmk_bary = self._landmark_faces(vertices, full_pose)
        landmarks = vertices2landmarks(vertices, self.faces, lmk_faces, lmk_bary)
        if transl is not None:
            transl = transl.to(dtype).unsqueeze(1)
            vertices, joints, landmarks = vertices + transl, joints + transl, landmarks + transl
        return FlameOutput(vertices=vertices, joints=joints, landmarks=landmarks)
