"""FLAME head model, the 120-number per-frame condition `HeadCoeffs`, and the proxy model."""

from flap.flame.coeffs import C_EXP_DIM, C_MOTION_DIM, COND_DIM, SLICES, HeadCoeffs

__all__ = ["HeadCoeffs", "SLICES", "COND_DIM", "C_MOTION_DIM", "C_EXP_DIM", "FlameModel"]


def __getattr__(name):
    if name == "FlameModel":
        from flap.flame.model import FlameModel

        return FlameModel
    raise AttributeError(name)
