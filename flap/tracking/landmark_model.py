"""FLAME restricted to the vertices its 68 landmarks need: the same result, ~20× cheaper to fit.

The tracker evaluates FLAME hundreds of times per chunk of frames but only reads the 68
landmarks, which touch a few hundred of the 5023 vertices (51 static barycentric points plus the 79
yaw bins of the 17-point contour). :class:`FlameLandmarks` keeps those vertices and runs smplx's own
``lbs`` on them. Joints depend on every vertex (``J = J_regressor @ v_shaped``); since that is
linear in β, the five joints are appended as extra "vertices" with template ``J_regressor @
v_template`` and blend shapes ``J_regressor @ shapedirs``, and the joint regressor becomes a
selection of those rows. :meth:`FlameLandmarks.forward` equals ``FlameModel.forward(...).landmarks``
(tested to 1e-5 m).
"""

from __future__ import annotations

import torch
from smplx.lbs import batch_rodrigues, lbs, vertices2landmarks

from flap.flame.model import FlameBlendMixin

__all__ = ["CONTOURS", "FlameLandmarks"]

#: Contour semantics of :class:`FlameLandmarks`.
CONTOURS = ("dynamic", "static")


class FlameLandmarks(FlameBlendMixin, torch.nn.Module):
    """Landmark-only view of a :class:`flap.flame.model.FlameModel` (shares no state with it).

    Args:
        model: the FLAME model (proxy or real); its buffers are copied (subset) at construction.
        contour: meaning of the 17 contour points (iBUG 0–16), one of :data:`CONTOURS`:

            * ``"dynamic"`` (FLAME's own, RingNet's 79 yaw bins): the contour slides to the
              visible silhouette as the head turns, as 2D detectors (dlib, FAN) mark it;
            * ``"static"``: the frontal bin for every yaw, fixed points on the face surface, as
              MediaPipe FaceMesh reports them (its contour points are mesh vertices, and
              :data:`flap.tracking.landmarks.MP_TO_IBUG68` keeps them). Fitting MediaPipe's points
              with the sliding contour reads a turned mouth as closed (tracked jaw −0.30 to
              −0.40° per degree of |yaw| on real clips; static: −0.06 to −0.17, docs/DESIGN.md).

    Raises:
        ValueError: unknown ``contour``.
    """

    def __init__(self, model, contour: str = "dynamic"):
        super().__init__()
        if contour not in CONTOURS:
            raise ValueError(f"FlameLandmarks: contour must be one of {CONTOURS}, got {contour!r}")
        self.contour = contour
        self.n_shape, self.n_exp, self.has_eyelids = model.n_shape, model.n_exp, model.has_eyelids
        faces = model.faces
        used_faces = torch.cat(
            [model.static_lmk_faces.reshape(-1), model.dynamic_lmk_faces.reshape(-1)]
        ).unique()
        verts = faces[used_faces].reshape(-1).unique()
        num_v, num_j = model.v_template.shape[0], model.J_regressor.shape[0]
        remap = torch.zeros(num_v, dtype=torch.long)
        remap[verts] = torch.arange(len(verts))
        self.register_buffer("faces", remap[faces])  # only rows of used faces are meaningful

        j_template = model.J_regressor @ model.v_template  # (J, 3)
        j_dirs = torch.einsum("jv,vcn->jcn", model.J_regressor, model.shapedirs)  # (J, 3, n)
        self.register_buffer("v_template", torch.cat([model.v_template[verts], j_template]))
        self.register_buffer("shapedirs", torch.cat([model.shapedirs[verts], j_dirs]))
        posedirs = model.posedirs.reshape(model.posedirs.shape[0], num_v, 3)[:, verts]
        posedirs = torch.cat([posedirs, posedirs.new_zeros(posedirs.shape[0], num_j, 3)], dim=1)
        self.register_buffer("posedirs", posedirs.reshape(posedirs.shape[0], -1))
        j_reg = torch.zeros(num_j, len(verts) + num_j, dtype=model.J_regressor.dtype)
        j_reg[:, len(verts) :] = torch.eye(num_j)
        self.register_buffer("J_regressor", j_reg)
        self.register_buffer("lbs_weights", torch.cat([model.lbs_weights[verts], torch.eye(num_j)]))
        self.register_buffer("parents", model.parents.clone())
        for name in (
            "static_lmk_faces",
            "static_lmk_bary",
            "dynamic_lmk_faces",
            "dynamic_lmk_bary",
            "neck_kin_chain",
        ):
            self.register_buffer(name, getattr(model, name).clone())
        if contour == "static":  # bin 0 is yaw 0 in smplx's find_dynamic_lmk_idx_and_bcoords
            self.dynamic_lmk_faces[:] = self.dynamic_lmk_faces[0].clone()
            self.dynamic_lmk_bary[:] = self.dynamic_lmk_bary[0].clone()
        self.num_subset = len(verts)

    def _pose(self, batch, global_rot, jaw, eyes):
        dtype, device = self.v_template.dtype, self.v_template.device
        zero = torch.zeros(batch, 3, dtype=dtype, device=device)
        return torch.cat(
            [
                zero if global_rot is None else global_rot.to(dtype),
                zero,
                zero if jaw is None else jaw.to(dtype),
                torch.zeros(batch, 6, dtype=dtype, device=device)
                if eyes is None
                else eyes.reshape(batch, 6).to(dtype),
            ],
            dim=1,
        )

    @torch.no_grad()
    def blend_jacobian(self, name: str, global_rot: torch.Tensor, jaw=None, eyes=None) -> torch.Tensor:
        """Derivative of the posed landmarks with respect to β or ψ: ``(B, 68, 3, n)`` metres per unit.

        Landmarks are linear in β and ψ for a fixed pose (blend shapes act before skinning, pose
        correctives do not depend on them, and the joints move linearly with them), so this is
        exact. With world rotations ``R_j`` and joint directions ``dJ_j`` (``J_regressor @ dirs``)::

            dJ*_j = dJ*_parent + R_parent (dJ_j - dJ_parent)       posed joints
            dv    = Σ_j w_vj (R_j dV_v + dJ*_j - R_j dJ_j)          skinned vertices

        and the landmarks are the barycentric combinations of ``dv``.

        Args:
            name: ``"shape"`` (β, ``n = n_shape``) or ``"expression"`` (ψ, ``n = n_exp``).
            global_rot, jaw: ``(B, 3)`` axis-angle radians; eyes: ``(B, 2, 3)`` or ``None``.
        """
        if name == "shape":
            cols = slice(0, self.n_shape)
        elif name == "expression":
            cols = slice(self.n_shape, self.n_shape + self.n_exp)
        else:
            raise ValueError(f"blend_jacobian: name must be 'shape' or 'expression', got {name!r}")
        batch = global_rot.shape[0]
        pose = self._pose(batch, global_rot, jaw, eyes)
        num_j = self.J_regressor.shape[0]
        rot = batch_rodrigues(pose.reshape(-1, 3)).reshape(batch, num_j, 3, 3)
        nv = self.num_subset
        dirs = self.shapedirs[..., cols]
        d_rest, d_joint = dirs[:nv], dirs[nv:]  # (V, 3, n), (J, 3, n)
        world, d_posed = [], []
        for j, parent in enumerate(self.parents.tolist()):
            if parent < 0:
                world.append(rot[:, j])
                d_posed.append(d_joint[j].expand(batch, -1, -1))
            else:
                world.append(world[parent] @ rot[:, j])
                d_posed.append(d_posed[parent] + world[parent] @ (d_joint[j] - d_joint[parent]))
        world = torch.stack(world, 1)  # (B, J, 3, 3)
        d_trans = torch.stack(d_posed, 1) - world @ d_joint  # (B, J, 3, n)
        lmk_faces, lmk_bary = self._landmark_faces(pose.new_zeros(batch, 1, 3), pose)
        vert_ids = self.faces[lmk_faces]  # (B, 68, 3) only the vertices the landmarks use
        w = self.lbs_weights[vert_ids] * lmk_bary[..., None]  # (B, 68, 3, J), barycentric weights folded in
        vert_rot = torch.einsum("bkfj,bjpq->bkfpq", w, world)
        d_lmk = torch.einsum("bkfpq,bkfqn->bkpn", vert_rot, d_rest[vert_ids])
        return d_lmk + torch.einsum("bkj,bjpn->bkpn", w.sum(2), d_trans)

    def expression_jacobian(self, global_rot: torch.Tensor, jaw=None, eyes=None) -> torch.Tensor:
        """``blend_jacobian("expression", ...)``: ``(B, 68, 3, n_exp)``."""
        return self.blend_jacobian("expression", global_rot, jaw, eyes)

    def forward(
        self,
        shape: torch.Tensor | None = None,
        expression: torch.Tensor | None = None,
        global_rot: torch.Tensor | None = None,
        jaw: torch.Tensor | None = None,
        eyes: torch.Tensor | None = None,
        eyelids: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Landmarks and joints of the posed head (neck pose fixed at zero, no translation).

        Args: as :meth:`flap.flame.model.FlameModel.forward` (β ``(B, ≤ n_shape)``, ψ ``(B, ≤ n_exp)``,
            axis-angle radians ``(B, 3)``, eyes ``(B, 2, 3)``, eyelids ``(B, 2)``).

        Returns:
            ``(landmarks (B, 68, 3), joints (B, 5, 3))`` in metres.
        """
        given = [t for t in (shape, expression, global_rot, jaw, eyes, eyelids) if t is not None]
        batch = given[0].shape[0] if given else 1
        pose = self._pose(batch, global_rot, jaw, eyes)
        betas = self._blend_coeffs(batch, shape, expression, eyelids)
        verts, joints = lbs(
            betas,
            pose,
            self.v_template,
            self.shapedirs,
            self.posedirs,
            self.J_regressor,
            self.parents,
            self.lbs_weights,
        )
        verts = verts[:, : self.num_subset].contiguous()
        lmk_faces, lmk_bary = self._landmark_faces(verts, pose)
        return vertices2landmarks(verts, self.faces, lmk_faces, lmk_bary), joints
