"""Condition encoders: per-frame FLAME numbers → attention tokens (paper Sec. 4.2).

``c_motion`` (3 numbers, axis-angle head rotation in radians) feeds the head-motion attention and
``c_exp`` (117 numbers: eyes 6D, jaw axis-angle, eyelids, expression) feeds the expression
attention. Each encoder normalises its input with stored statistics (``mean``/``std`` buffers,
saved with the model), maps it with a small MLP to ``num_tokens`` tokens of ``token_dim`` channels,
and replaces the tokens of dropped samples by learned *null tokens* (classifier-free guidance).
"""

from __future__ import annotations

import torch
from torch import nn

from flap.flame.coeffs import C_EXP_DIM, C_MOTION_DIM

__all__ = ["ConditionEncoder", "HeadMotionEncoder", "ExpressionEncoder", "expand_null_mask"]


def expand_null_mask(null_mask: torch.Tensor | None, batch: int, frames: int, device) -> torch.Tensor:
    """Broadcast a classifier-free-guidance mask to ``(batch, frames)`` booleans.

    Args:
        null_mask: ``None`` (nothing dropped), ``(B,)`` per sample, or ``(B, F)`` per frame; ``True``
            selects the null tokens.
        batch, frames: the target ``B`` and ``F``.

    Raises:
        ValueError: the mask shape is neither ``(B,)`` nor ``(B, F)``.
    """
    if null_mask is None:
        return torch.zeros(batch, frames, dtype=torch.bool, device=device)
    null_mask = torch.as_tensor(null_mask, device=device).bool()
    if null_mask.shape == (batch,):
        return null_mask[:, None].expand(batch, frames)
    if null_mask.shape == (batch, frames):
        return null_mask
    raise ValueError(
        f"null_mask: expected shape ({batch},) or ({batch}, {frames}), found {tuple(null_mask.shape)}"
    )


class ConditionEncoder(nn.Module):
    """Per-frame vector condition → ``num_tokens`` attention tokens, with learned null tokens.

    ``tokens = MLP((c - mean) / std)`` reshaped to ``(num_tokens, token_dim)``; where the null mask
    is ``True`` the learned ``null_tokens`` are used instead (classifier-free guidance, paper Sec. 4.3).

    Args:
        in_dim: numbers per frame (3 for ``c_motion``, 117 for ``c_exp``).
        token_dim: channels of each token (the ``cross_attention_dim`` of the attention reading them).
        num_tokens: tokens per frame.
        hidden_dim: MLP width.

    Buffers ``mean`` and ``std`` (``(in_dim,)``, default 0 and 1) hold the normalisation
    statistics; set them with :meth:`set_normalization` from dataset statistics.
    """

    def __init__(self, in_dim: int, token_dim: int, num_tokens: int = 4, hidden_dim: int = 256):
        super().__init__()
        if in_dim <= 0 or token_dim <= 0 or num_tokens <= 0 or hidden_dim <= 0:
            raise ValueError(
                f"ConditionEncoder: sizes must be positive, got in_dim={in_dim}, token_dim={token_dim}, "
                f"num_tokens={num_tokens}, hidden_dim={hidden_dim}"
            )
        self.in_dim = in_dim
        self.token_dim = token_dim
        self.num_tokens = num_tokens
        self.register_buffer("mean", torch.zeros(in_dim))
        self.register_buffer("std", torch.ones(in_dim))
        self.mlp = nn.Sequential(
            nn.Linear(in_dim, hidden_dim),
            nn.SiLU(),
            nn.Linear(hidden_dim, hidden_dim),
            nn.SiLU(),
            nn.Linear(hidden_dim, num_tokens * token_dim),
        )
        self.norm = nn.LayerNorm(token_dim)
        self.null_tokens = nn.Parameter(torch.randn(num_tokens, token_dim) * 0.02)

    @torch.no_grad()
    def set_normalization(self, mean, std, eps: float = 1e-6) -> None:
        """Store normalisation statistics (each ``(in_dim,)``); ``std`` is clamped to ``>= eps``.

        Raises:
            ValueError: wrong sizes or non-finite values.
        """
        mean = torch.as_tensor(mean, dtype=torch.float32).flatten()
        std = torch.as_tensor(std, dtype=torch.float32).flatten()
        if mean.numel() != self.in_dim or std.numel() != self.in_dim:
            raise ValueError(
                f"set_normalization: expected mean and std of {self.in_dim} numbers, "
                f"found {mean.numel()} and {std.numel()}"
            )
        if not (torch.isfinite(mean).all() and torch.isfinite(std).all()):
            raise ValueError("set_normalization: mean/std contain NaN or inf")
        self.mean.copy_(mean)
        self.std.copy_(std.clamp_min(eps))

    @torch.no_grad()
    def renormalize(self, mean, std, eps: float = 1e-6) -> None:
        """Change the normalisation statistics without changing what the encoder computes.

        The first linear layer absorbs the change: with ``r = std_new / std_old`` and
        ``d = (mean_new - mean_old) / std_old``, ``W ← W · diag(r)`` and ``b ← b + W d``, so
        ``MLP((c - mean_new) / std_new)`` equals the old ``MLP((c - mean_old) / std_old)`` for every
        ``c`` (up to float rounding). What changes is training: a smaller ``std`` for an input
        enlarges its normalised spread, so the same optimizer step moves the output more along it
        (used to make a fine-tuned model respond to a condition whose data barely varies, issue 13).

        Args:
            mean, std: new statistics, each ``(in_dim,)``; ``std`` is clamped to ``>= eps``.

        Raises:
            ValueError: wrong sizes or non-finite values (as :meth:`set_normalization`).
        """
        old_mean, old_std = self.mean.clone(), self.std.clone()
        self.set_normalization(mean, std, eps)
        first = self.mlp[0]
        shift = ((self.mean - old_mean) / old_std).to(first.weight.dtype)
        first.bias.add_(first.weight @ shift)
        first.weight.mul_((self.std / old_std).to(first.weight.dtype)[None, :])

    def forward(self, condition: torch.Tensor | None, null_mask: torch.Tensor | None = None,
                batch: int | None = None, frames: int | None = None) -> torch.Tensor:
        """Encode ``condition`` ``(B, F, in_dim)`` into tokens ``(B, F, num_tokens, token_dim)``.

        Args:
            condition: per-frame numbers, or ``None`` for "all null" (then ``batch`` and ``frames``
                are required).
            null_mask: ``None``, ``(B,)`` or ``(B, F)`` booleans; ``True`` → null tokens.

        Raises:
            ValueError: wrong condition shape, or ``condition=None`` without ``batch``/``frames``.
        """
        dtype = self.null_tokens.dtype
        if condition is None:
            if batch is None or frames is None:
                raise ValueError("ConditionEncoder: condition=None needs batch and frames")
            null = self.null_tokens.to(dtype)
            return null[None, None].expand(batch, frames, -1, -1)
        if condition.ndim != 3 or condition.shape[-1] != self.in_dim:
            raise ValueError(
                f"ConditionEncoder: expected condition of shape (B, F, {self.in_dim}), "
                f"found {tuple(condition.shape)}"
            )
        b, f, _ = condition.shape
        x = (condition.to(self.mean.dtype) - self.mean) / self.std
        tokens = self.mlp(x.to(dtype)).view(b, f, self.num_tokens, self.token_dim)
        tokens = self.norm(tokens)
        mask = expand_null_mask(null_mask, b, f, condition.device)
        return torch.where(mask[..., None, None], self.null_tokens.to(tokens.dtype), tokens)


class HeadMotionEncoder(ConditionEncoder):
    """:class:`ConditionEncoder` for ``c_motion`` (3 numbers: global rotation, axis-angle, radians)."""

    def __init__(self, token_dim: int, num_tokens: int = 4, hidden_dim: int = 256):
        super().__init__(C_MOTION_DIM, token_dim, num_tokens, hidden_dim)


class ExpressionEncoder(ConditionEncoder):
    """:class:`ConditionEncoder` for ``c_exp`` (117 numbers: eyes 6D, jaw, eyelids, expression)."""

    def __init__(self, token_dim: int, num_tokens: int = 8, hidden_dim: int = 256):
        super().__init__(C_EXP_DIM, token_dim, num_tokens, hidden_dim)
