"""`FLAPPipeline`: portrait + speech (or a driving video, or coefficients) → talking-head frames.

Inference data flow of docs/DESIGN.md (paper Sec. 4, Fig. 2)::

    portrait → face crop (MediaPipe) → VAE encode → ReferenceNet (once)
    speech → Audio2Flame ─┐
    driving video → tracker ─┼→ HeadCoeffs (T,120) → controls → DenoisingNet over overlapping
    given HeadCoeffs ───────┘                          windows, DDIM + CFG → VAE decode → frames

Long videos: the DenoisingNet runs on windows of ``window`` frames that overlap by ``overlap``
frames; at every DDIM step the ε predictions of all windows are blended with weights that ramp
linearly across each overlap (no seams, every frame sees the same noise trajectory), so network
memory is that of one window whatever the length. Decoding and paste-back are streamed in chunks
(:meth:`FLAPPipeline.iter_frames`), so a video writer can consume frames as they come.

Classifier-free guidance (Sec. 4.3): the unconditional branch replaces both ``c_motion`` and
``c_exp`` by the learned null tokens; ``ε = ε_u + s (ε_c − ε_u)``. With a separate expression scale
``s_e`` the guidance is compositional (as InstructPix2Pix's two-condition CFG, Brooks et al. 2023):
``ε = ε_u + s (ε_m − ε_u) + s_e (ε_c − ε_m)``, where ``ε_m`` sees ``c_motion`` and the null ``c_exp``
(training drops the two conditions independently, so that branch is in distribution); ``s_e = s``
gives the plain formula back.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from diffusers import AutoencoderKL, DDIMScheduler, DiffusionPipeline
from diffusers.utils import BaseOutput

from flap.audio.io import fit_audio, load_audio, num_frames_for
from flap.audio.model import Audio2Flame
from flap.control import ControlConfig, apply_controls, fit_length, load_coeffs
from flap.flame.coeffs import C_EXP_SLICE, C_MOTION_SLICE, DEFAULT_FPS, HeadCoeffs
from flap.io import probe_video, read_audio_track
from flap.io.formats import SAMPLE_RATE
from flap.models.checkpoint_files import check_pipeline_folder
from flap.models.denoising_net import DenoisingNet
from flap.models.reference_net import ReferenceFeatures, ReferenceNet
from flap.portrait import PortraitCrop, crop_portrait, load_portrait, paste_back
from flap.validate import check_float, check_int
from flap.windows import temporal_windows, window_weights

__all__ = ["FLAPPipeline", "FLAPPipelineOutput"]


@dataclass
class FLAPPipelineOutput(BaseOutput):
    """Result of :meth:`FLAPPipeline.__call__`.

    Attributes:
        frames: ``uint8 (T, H, W, 3)`` RGB frames (crop size, or the portrait size with paste-back).
        coeffs: the :class:`HeadCoeffs` ``(T, 120)`` the video was generated from (after controls).
        fps: frames per second.
        audio: ``float32 (N,)`` mono speech at ``sample_rate`` Hz trimmed/padded to ``T / fps``
            seconds, or ``None``.
        sample_rate: audio rate in Hz.
    """

    frames: np.ndarray
    coeffs: HeadCoeffs
    fps: float
    audio: np.ndarray | None
    sample_rate: int = SAMPLE_RATE


# ---------------------------------------------------------------------------------------- pipeline
class FLAPPipeline(DiffusionPipeline):
    """FLAP inference (paper Sec. 4): portrait + FLAME coefficients → talking-head frames.

    Components (``from_pretrained(local_dir)`` loads a folder written by ``save_pretrained``):

    - ``vae``: :class:`diffusers.AutoencoderKL` (latent ``scaling_factor`` in its config);
    - ``reference_net``: :class:`flap.models.ReferenceNet`, run once per video;
    - ``denoising_net``: :class:`flap.models.DenoisingNet`;
    - ``scheduler``: :class:`diffusers.DDIMScheduler` (the training noise schedule);
    - ``audio2flame``: :class:`flap.audio.model.Audio2Flame` or ``None`` (then give ``coeffs``
      or a ``driving_video``).

    Example::

        pipe = FLAPPipeline.from_pretrained("checkpoints/flap_tiny_demo")
        out = pipe("portrait.png", audio="speech.wav", controls={"pose": "nod"}, num_inference_steps=20)
        out.frames  # uint8 (T, 128, 128, 3)
    """

    model_cpu_offload_seq = "reference_net->denoising_net->vae"
    _optional_components = ["audio2flame"]

    def __init__(
        self,
        vae: AutoencoderKL,
        reference_net: ReferenceNet,
        denoising_net: DenoisingNet,
        scheduler: DDIMScheduler,
        audio2flame=None,
    ):
        super().__init__()
        self.register_modules(
            vae=vae, reference_net=reference_net, denoising_net=denoising_net, scheduler=scheduler,
            audio2flame=audio2flame,
        )

    # ------------------------------------------------------------------ loading
    @classmethod
    def from_pretrained(
        cls,
        pretrained_model_name_or_path: str | os.PathLike,
        torch_dtype: torch.dtype | str | None = None,
        device: torch.device | str | None = None,
        **kwargs,
    ) -> FLAPPipeline:
        """Load a pipeline folder written by :meth:`save_pretrained` (local paths only, no download).

        The folder holds ``model_index.json`` and one sub-folder per component (diffusers layout).
        Components given as keyword arguments (e.g. ``audio2flame=...``) replace the stored ones.

        Args:
            pretrained_model_name_or_path: local folder.
            torch_dtype: dtype of the networks (e.g. ``torch.float16``, ``"bfloat16"``); the VAE
                and Audio2Flame stay float32 on CPU for accuracy.
            device: where to put the networks.

        Raises:
            FileNotFoundError: the folder, its ``model_index.json`` or a component sub-folder is missing.
            flap.errors.InputError: a JSON file that is not a JSON object, an empty / truncated weights file
                (:func:`flap.models.checkpoint_files.check_pipeline_folder`; names the file).
        """
        if isinstance(torch_dtype, str):
            torch_dtype = getattr(torch, torch_dtype)
        unets = ("reference_net", "denoising_net")
        classes = {"vae": AutoencoderKL, "reference_net": ReferenceNet, "denoising_net": DenoisingNet,
                   "scheduler": DDIMScheduler, "audio2flame": Audio2Flame}
        root = Path(pretrained_model_name_or_path)
        # files checked (JSON, complete weights) before any loading: one line naming a bad file
        stored = [n for n in classes if n not in kwargs]
        index = check_pipeline_folder(root, required=tuple(n for n in stored if n not in cls._optional_components),
                                      optional=tuple(n for n in stored if n in cls._optional_components))
        components = {}
        for name, cls_obj in classes.items():
            if name in kwargs:
                components[name] = kwargs.pop(name)
                continue
            entry = index.get(name)
            if entry is None or entry[0] is None:
                if name in cls._optional_components:
                    components[name] = None
                    continue
                raise FileNotFoundError(f"FLAP checkpoint {str(root)!r}: model_index.json has no component {name!r}")
            sub = root / name
            if not sub.is_dir():
                raise FileNotFoundError(f"FLAP checkpoint {str(root)!r}: component folder {name}/ is missing")
            if cls_obj is DDIMScheduler:
                components[name] = cls_obj.from_pretrained(sub)
            else:  # low_cpu_mem_usage needs accelerate (not a dependency); the UNets load in torch_dtype
                dtype = {"torch_dtype": torch_dtype} if name in unets and torch_dtype is not None else {}
                components[name] = cls_obj.from_pretrained(sub, low_cpu_mem_usage=False, **dtype)
        if kwargs:
            raise TypeError(f"FLAPPipeline.from_pretrained: unexpected arguments {sorted(kwargs)}")
        pipe = cls(**components)
        for name in unets:
            net = getattr(pipe, name)
            if torch_dtype is not None and net.dtype != torch_dtype:  # a component given as an argument
                net.to(dtype=torch_dtype)
        for name in ("vae", "audio2flame", *unets):
            if getattr(pipe, name) is not None:
                getattr(pipe, name).to(device=device).eval()
        return pipe

    # ------------------------------------------------------------------ properties
    @property
    def image_size(self) -> int:
        """Side in pixels of the face crop the models work at (the VAE's ``sample_size``)."""
        size = self.vae.config.sample_size
        return int(size[0] if isinstance(size, list | tuple) else size)

    # ------------------------------------------------------------------ stages
    @torch.no_grad()
    def encode_latent(self, crop: np.ndarray) -> torch.Tensor:
        """VAE latent ``(1, C, h, w)`` of a ``uint8 (S, S, 3)`` crop (posterior mean × ``scaling_factor``)."""
        x = torch.from_numpy(crop).permute(2, 0, 1)[None].to(self._execution_device, self.vae.dtype) / 127.5 - 1.0
        return self.vae.encode(x).latent_dist.mode() * self.vae.config.scaling_factor

    @torch.no_grad()
    def encode_reference(self, crop: np.ndarray) -> ReferenceFeatures:
        """VAE-encode a ``uint8 (S, S, 3)`` crop and run ReferenceNet once (paper Sec. 4.1)."""
        return self.reference_net(self.encode_latent(crop).to(self.reference_net.dtype))

    def coefficients(
        self,
        audio: np.ndarray | None = None,
        coeffs: HeadCoeffs | None = None,
        driving_video: str | os.PathLike | None = None,
        fps: float = DEFAULT_FPS,
        num_frames: int | None = None,
        seed: int = 0,
    ) -> HeadCoeffs:
        """Coefficients for the video: given ``coeffs`` > tracked ``driving_video`` > Audio2Flame(``audio``).

        The length is ``num_frames`` if given, else that of the audio (:func:`flap.audio.io.num_frames_for`),
        else that of the source. Sources of another length are resampled in time (held at the end).
        ``seed`` seeds Audio2Flame's sampled head motion (:meth:`flap.audio.model.Audio2Flame.predict`).

        Raises:
            ValueError: no source, or audio-driven mode without an ``audio2flame`` component.
        """
        if num_frames is None and audio is not None:
            num_frames = max(1, num_frames_for(len(audio), SAMPLE_RATE, fps))
        if coeffs is not None:
            src = load_coeffs(coeffs, fps)
        elif driving_video is not None:
            src = load_coeffs(driving_video, max_frames=num_frames, name="driving video")
        elif audio is not None:
            if self.audio2flame is None:
                raise ValueError("FLAPPipeline: audio-driven generation needs an audio2flame component "
                                 "(give coeffs= or driving_video= instead)")
            src = self.audio2flame.predict(audio, sr=SAMPLE_RATE, fps=fps, num_frames=num_frames, seed=seed)
        else:
            raise ValueError("FLAPPipeline: give audio, coeffs or driving_video")
        if num_frames is not None and (len(src) != num_frames or src.fps != fps):
            src = fit_length(src, num_frames, fps)
        return src

    @torch.no_grad()
    def denoise(
        self,
        reference: ReferenceFeatures,
        coeffs: HeadCoeffs,
        num_inference_steps: int = 20,
        guidance_scale: float = 2.0,
        window: int = 16,
        overlap: int = 4,
        generator: torch.Generator | None = None,
        progress: bool = True,
        callback: Callable[[int, int], None] | None = None,
        strength: float = 1.0,
        init_latent: torch.Tensor | None = None,
        expression_guidance_scale: float | None = None,
    ) -> torch.Tensor:
        """DDIM sampling of the whole video latent ``(1, C, T, h, w)`` over overlapping windows.

        Args:
            reference: ReferenceNet output (batch 1), reused for every window and step.
            coeffs: ``(T, 120)`` condition.
            num_inference_steps: DDIM steps.
            guidance_scale: classifier-free guidance scale ``s`` (1 = no guidance, one pass per window).
            window, overlap: temporal window length and overlap in frames (see :func:`temporal_windows`).
            generator: random generator of the initial noise (drawn on the CPU: same result on any device).
            progress: show a tqdm bar (windows × steps, with ETA).
            callback: ``callback(step, num_steps)`` after every step.
            strength: in ``(0, 1]``; below 1 sampling starts from ``init_latent`` (the portrait's
                latent, every frame) noised to that fraction of the schedule and runs only the
                last ``round(strength * num_inference_steps)`` steps (SDEdit, Meng et al. 2022).
                1 = pure noise (the paper's setting); under-trained models need less.
            init_latent: ``(1, C, h, w)`` latent for ``strength < 1``.
            expression_guidance_scale: ``s_e``, the guidance of ``c_exp`` on top of ``c_motion``
                (module docstring); ``None`` = ``guidance_scale`` (two branches per step, not three).

        Returns:
            Denoised latents ``(1, C, T, h, w)`` (scaled, as the UNets see them).

        Raises:
            flap.errors.UsageError (a ValueError): ``num_inference_steps < 1`` or a non-finite
                ``guidance_scale`` / ``expression_guidance_scale`` (NaN would give a black face).
        """
        check_int(num_inference_steps, "num_inference_steps", 1)
        check_float(guidance_scale, "guidance_scale")
        check_float(expression_guidance_scale, "expression_guidance_scale", allow_none=True)
        scales = (float(guidance_scale), None if expression_guidance_scale in (None, guidance_scale)
                  else float(expression_guidance_scale))
        net = self.denoising_net
        device = self._execution_device
        t_frames = coeffs.num_frames
        max_len = int(net.config.motion_max_seq_length)
        if window > max_len:
            raise ValueError(f"FLAPPipeline: window={window} exceeds the temporal layers' maximum {max_len} frames")
        h = w = self.image_size // self.vae_scale_factor
        shape = (1, net.config.in_channels, t_frames, h, w)
        if not 0.0 < strength <= 1.0:
            raise ValueError(f"FLAPPipeline: strength must be in (0, 1], got {strength}")
        latents = torch.randn(shape, generator=generator, dtype=torch.float32).to(device)
        self.scheduler.set_timesteps(num_inference_steps, device=device)
        timesteps = self.scheduler.timesteps
        if strength < 1.0:
            if init_latent is None:
                raise ValueError("FLAPPipeline: strength < 1 needs init_latent (the portrait latent)")
            timesteps = timesteps[num_inference_steps - max(1, round(strength * num_inference_steps)):]
            start = init_latent.float().to(device)[:, :, None].expand(shape)
            latents = self.scheduler.add_noise(start, latents, timesteps[:1])
        else:
            latents = latents * self.scheduler.init_noise_sigma
        cond = coeffs.data.to(device=device, dtype=torch.float32)
        windows = temporal_windows(t_frames, window, overlap)
        weights = [window_weights(e - s, overlap, i == 0, i == len(windows) - 1).to(device)
                   for i, (s, e) in enumerate(windows)]
        cfg = guidance_scale != 1.0 or scales[1] is not None
        self.set_progress_bar_config(**{"desc": "FLAP denoising", "unit": "window-step", "dynamic_ncols": True,
                                        **getattr(self, "_progress_bar_config", {}), "disable": not progress})
        bar = self.progress_bar(total=len(windows) * len(timesteps))  # one UNet pass over one window per update
        try:
            for step, t in enumerate(timesteps):
                eps_sum = torch.zeros_like(latents, dtype=torch.float64)
                w_sum = torch.zeros(t_frames, dtype=torch.float64, device=device)
                for (s, e), wgt in zip(windows, weights):
                    eps = self._predict_window(latents[:, :, s:e], t, reference, cond[s:e], scales, cfg)
                    eps_sum[:, :, s:e] += eps.double() * wgt.view(1, 1, -1, 1, 1)
                    w_sum[s:e] += wgt
                    bar.update(1)
                eps = (eps_sum / w_sum.view(1, 1, -1, 1, 1)).to(latents.dtype)
                latents = self.scheduler.step(eps, t, latents).prev_sample
                if callback is not None:
                    callback(step + 1, len(timesteps))
        finally:
            bar.close()
        return latents

    def _predict_window(self, latents, t, reference, cond, scales, cfg) -> torch.Tensor:
        """ε for one window ``(1, C, F, h, w)``; CFG runs its branches as one batch (2, or 3 with ``s_e``).

        ``scales`` is ``(s, s_e)`` with ``s_e = None`` for plain CFG (module docstring).
        """
        net = self.denoising_net
        x = self.scheduler.scale_model_input(latents, t).to(net.dtype)
        c_motion = cond[None, :, C_MOTION_SLICE]
        c_exp = cond[None, :, C_EXP_SLICE]
        if not cfg:
            return net(x, t, reference=reference, c_motion=c_motion, c_exp=c_exp).sample.float()
        s, s_e = scales
        # branches: both conditions, (c_motion only,) neither
        motion_null = [False] + ([False] if s_e is not None else []) + [True]
        exp_null = [False] + ([True] if s_e is not None else []) + [True]
        n = len(motion_null)
        out = net(
            x.expand(n, -1, -1, -1, -1), t, reference=reference,
            c_motion=c_motion.expand(n, -1, -1), c_exp=c_exp.expand(n, -1, -1),
            head_motion_null_mask=torch.tensor(motion_null, device=x.device),
            expression_null_mask=torch.tensor(exp_null, device=x.device),
        ).sample.float()
        eps_c, eps_u = out[:1], out[-1:]
        if s_e is None:
            return eps_u + s * (eps_c - eps_u)
        eps_m = out[1:2]
        return eps_u + s * (eps_m - eps_u) + s_e * (eps_c - eps_m)

    @torch.no_grad()
    def decode(self, latents: torch.Tensor, chunk: int = 16) -> Iterator[np.ndarray]:
        """Decode ``(1, C, T, h, w)`` latents in chunks of ``chunk`` frames; yields ``uint8 (n, S, S, 3)``."""
        t_frames = latents.shape[2]
        for s in range(0, t_frames, chunk):
            z = latents[0, :, s:s + chunk].permute(1, 0, 2, 3) / self.vae.config.scaling_factor
            img = self.vae.decode(z.to(self.vae.dtype)).sample.float().clamp(-1, 1)
            yield ((img + 1) * 127.5).round().to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()

    @property
    def vae_scale_factor(self) -> int:
        """Image px per latent px, ``2 ** (len(block_out_channels) - 1)``."""
        return 2 ** (len(self.vae.config.block_out_channels) - 1)

    # ------------------------------------------------------------------ main entry points
    def prepare(
        self,
        image,
        audio: str | os.PathLike | np.ndarray | None = None,
        coeffs: HeadCoeffs | str | os.PathLike | None = None,
        driving_video: str | os.PathLike | None = None,
        controls: Mapping | Any | None = None,
        fps: float = DEFAULT_FPS,
        num_frames: int | None = None,
        crop_scale: float = 1.8,
    ) -> tuple[PortraitCrop, HeadCoeffs, np.ndarray | None]:
        """Everything before the diffusion: portrait crop, final coefficients, speech samples.

        Cheap inputs are checked first (image, face, pose script) so bad input fails fast.

        Returns:
            ``(portrait crop, coefficients after controls, audio float32 (N,) at 16 kHz or None)``.
            Without ``audio``, a driving video's own audio track is used (if it has one).

        Raises:
            FileNotFoundError, ValueError: unreadable image, no face (:class:`NoFaceError`), bad
                audio, bad pose script or controls (messages name the file / key).
        """
        name = str(image) if isinstance(image, str | os.PathLike) else "portrait"
        config = controls if isinstance(controls, ControlConfig) else ControlConfig.from_mapping(controls)
        config.pose_script()  # a bad pose script fails here, before the heavy work
        portrait = crop_portrait(load_portrait(image), self.image_size, scale=crop_scale, name=name)
        speech = None
        if audio is not None:
            speech = audio if isinstance(audio, np.ndarray) else load_audio(audio)
            speech = np.asarray(speech, dtype=np.float32).reshape(-1)
        elif driving_video is not None:
            if probe_video(driving_video).has_audio:
                speech = read_audio_track(driving_video, sample_rate=SAMPLE_RATE)
        base = self.coefficients(speech, coeffs, driving_video, fps, num_frames, seed=int(config.seed))
        final = apply_controls(base, config)
        if speech is not None:
            speech = fit_audio(speech, final.num_frames / final.fps)
        return portrait, final, speech

    def iter_frames(
        self,
        portrait: PortraitCrop,
        coeffs: HeadCoeffs,
        num_inference_steps: int = 20,
        guidance_scale: float = 2.0,
        window: int = 16,
        overlap: int = 4,
        generator: torch.Generator | None = None,
        paste: bool = False,
        decode_chunk: int = 16,
        progress: bool = True,
        strength: float = 1.0,
        expression_guidance_scale: float | None = None,
    ) -> Iterator[np.ndarray]:
        """Generate and yield frames one by one (``uint8 (H, W, 3)``): diffusion, then streamed decode.

        With ``paste=True`` every frame is pasted into the original portrait (see :func:`paste_back`).
        ``strength`` < 1 starts from the noised portrait latent and ``expression_guidance_scale``
        guides ``c_exp`` separately (see :meth:`denoise`).
        """
        z = self.encode_latent(portrait.crop)
        with torch.no_grad():
            reference = self.reference_net(z.to(self.reference_net.dtype))
        latents = self.denoise(reference, coeffs, num_inference_steps, guidance_scale, window, overlap,
                               generator, progress, strength=strength, init_latent=z,
                               expression_guidance_scale=expression_guidance_scale)
        for chunk in self.decode(latents, decode_chunk):
            if paste:
                chunk = paste_back(chunk, portrait)
            yield from chunk

    def __call__(
        self,
        image,
        audio: str | os.PathLike | np.ndarray | None = None,
        coeffs: HeadCoeffs | str | os.PathLike | None = None,
        driving_video: str | os.PathLike | None = None,
        controls: Mapping | Any | None = None,
        fps: float = DEFAULT_FPS,
        num_frames: int | None = None,
        num_inference_steps: int = 20,
        guidance_scale: float = 2.0,
        window: int = 16,
        overlap: int = 4,
        generator: torch.Generator | None = None,
        paste: bool = False,
        progress: bool = True,
        strength: float = 1.0,
        expression_guidance_scale: float | None = None,
    ) -> FLAPPipelineOutput:
        """Generate a talking-head video.

        Args:
            image: portrait path, ``uint8 (H, W, 3)`` RGB array or PIL image (one visible face).
            audio: speech path or ``float32 (N,)`` 16 kHz mono; drives Audio2Flame unless
                ``coeffs`` / ``driving_video`` is given, and fixes the length ``T = round(s * fps)``.
            coeffs: a :class:`HeadCoeffs` (or ``.npz`` / ``.safetensors`` path) to use directly.
            driving_video: a talking-head video tracked into coefficients (video-driven mode).
            controls: :class:`flap.control.ControlConfig` or a mapping of its keys (``pose``,
                ``expression_from``, ``blinks_per_minute``, ...), applied to the coefficients.
            fps: output frame rate (frames/s).
            num_frames: force the length (default: from the audio, else the source).
            num_inference_steps: DDIM steps.
            guidance_scale: CFG scale (1 = off).
            window, overlap: temporal windows (frames).
            generator: seeds the initial noise.
            paste: paste the generated crop back into the original portrait.
            progress: tqdm progress bar with ETA.
            strength: 1 = start from pure noise; < 1 = from the noised portrait latent (SDEdit).
            expression_guidance_scale: CFG scale of ``c_exp`` alone (``None`` = ``guidance_scale``).

        Returns:
            :class:`FLAPPipelineOutput`.

        Raises:
            FileNotFoundError, ValueError: see :meth:`prepare`.
        """
        portrait, final, speech = self.prepare(image, audio, coeffs, driving_video, controls, fps, num_frames)
        frames = np.stack(list(self.iter_frames(portrait, final, num_inference_steps, guidance_scale, window,
                                                overlap, generator, paste, progress=progress,
                                                strength=strength,
                                                expression_guidance_scale=expression_guidance_scale)))
        return FLAPPipelineOutput(frames=frames, coeffs=final, fps=float(fps), audio=speech)
