"""flap.training: Progressively Focused Training (paper Sec. 4.3) and the demo VAE.

``FLAPLitModule`` (three stages of the dual UNet) is imported lazily so ``flap.training.vae``
stays importable on its own.
"""

__all__ = ["FLAPLitModule", "load_stage_output"]


def __getattr__(name):
    if name in __all__:
        from flap.training import lit_module

        return getattr(lit_module, name)
    raise AttributeError(f"module 'flap.training' has no attribute {name!r}")
