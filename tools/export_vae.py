"""Export a VAE from a Lightning checkpoint of ``flap.train experiment=vae_*`` and measure it on held-out frames.

    python tools/export_vae.py --ckpt outputs/vae_faces_128/run1/checkpoints/last.ckpt \
        --data outputs/data/flap_all_128 --holdout 0.2 --out outputs/vae_faces_128/phase1_snap

Writes a diffusers ``AutoencoderKL`` folder (``--out``) whose ``scaling_factor`` is ``1 / std`` of the
held-out latents (as :meth:`flap.training.vae.VAELitModule.export_pretrained`; ``--keep-scaling``
keeps the checkpoint's value, for decoder-only fine-tuning), ``vae_eval.json`` (PSNR in dB over ALL
held-out frames = the last ``--holdout`` of every prepared clip, posterior mode, images in
``[-1, 1]`` so peak-to-peak 2: ``psnr_db`` from the mean MSE, ``mean_frame_psnr_db`` the mean of
per-frame PSNRs) and ``recon_strip.png`` (originals above reconstructions).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import cv2
import numpy as np
import torch


def _recorded_scaling(ckpt: dict, hp: dict) -> float:
    """The latent scaling factor the checkpoint's VAE had: recorded in the checkpoint (``vae_config``),
    else read from its ``init_from`` folder; exits with one line if neither is available."""
    recorded = (ckpt.get("vae_config") or {}).get("scaling_factor")
    if recorded is not None:
        return float(recorded)
    init_from = hp.get("init_from")
    config = Path(init_from) / "config.json" if init_from else None
    if config is not None and config.is_file():
        return float(json.loads(config.read_text())["scaling_factor"])
    raise SystemExit(f"export_vae: --keep-scaling: the checkpoint does not record its scaling factor and its "
                     f"init_from={init_from} has no config.json; export without --keep-scaling or restore that folder")


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--ckpt", required=True, help="Lightning checkpoint of a VAELitModule run")
    p.add_argument("--data", required=True, help="prepared dataset folder (python -m flap.data.prepare)")
    p.add_argument("--holdout", type=float, default=0.2, help="held-out tail fraction of every clip")
    p.add_argument("--out", required=True, help="output diffusers folder (must not exist unless --force)")
    p.add_argument("--keep-scaling", action="store_true", help="keep the checkpoint's scaling_factor")
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--max-frames", type=int, default=None,
                   help="measure on this many held-out frames, evenly spaced (default: all)")
    p.add_argument("--force", action="store_true")
    a = p.parse_args(argv)

    from flap.training.vae import VAELitModule, load_prepared_frames, split_tail, to_model_range, to_uint8

    out = Path(a.out)
    if out.exists() and not a.force:
        raise SystemExit(f"export_vae: {out} exists (use --force to replace it)")
    ckpt = torch.load(a.ckpt, map_location="cpu", weights_only=False)
    hp = dict(ckpt["hyper_parameters"])
    kept_scale = _recorded_scaling(ckpt, hp) if a.keep_scaling else None
    hp["init_from"] = None  # weights come from the checkpoint
    module = VAELitModule(**hp)
    module.load_state_dict(ckpt["state_dict"])
    vae = module.vae.eval()
    _, val = split_tail(load_prepared_frames(a.data), a.holdout)
    heldout_total = len(val)
    if a.max_frames is not None and len(val) > a.max_frames:
        val = val[np.linspace(0, len(val) - 1, a.max_frames).round().astype(int)]
    t0 = time.time()
    se, n, zs, frame_psnr = 0.0, 0, [], []
    with torch.no_grad():
        for i in range(0, len(val), a.batch):
            x = to_model_range(val[i:i + a.batch])
            z = vae.encode(x).latent_dist.mode()
            rec = vae.decode(z).sample.clamp(-1, 1)
            frame_mse = ((rec - x) ** 2).mean(dim=(1, 2, 3))
            se += float(frame_mse.sum())
            frame_psnr += (10 * torch.log10(4.0 / frame_mse.clamp_min(1e-10))).tolist()
            n += len(x)
            zs.append(z.flatten(1))
    mse = se / n
    psnr_of_mean_mse = 10 * np.log10(4.0 / mse)
    std = float(torch.cat(zs).std())
    vae.register_to_config(scaling_factor=kept_scale if a.keep_scaling else 1.0 / max(std, 1e-6))
    if out.exists():
        import shutil

        shutil.rmtree(out)
    vae.save_pretrained(out, safe_serialization=True)
    # evenly spaced strip over all held-out frames (different clips)
    idx = np.linspace(0, len(val) - 1, 10).round().astype(int)
    with torch.no_grad():
        x = to_model_range(val[idx])
        rec = vae.decode(vae.encode(x).latent_dist.mode()).sample
    strip = np.concatenate([np.concatenate(list(to_uint8(x)), 1), np.concatenate(list(to_uint8(rec)), 1)], 0)
    cv2.imwrite(str(out / "recon_strip.png"), strip[:, :, ::-1])
    info = {"ckpt": str(a.ckpt), "global_step": int(ckpt.get("global_step", -1)), "data": str(a.data),
            "holdout_tail": a.holdout, "heldout_frames": int(n), "heldout_total": int(heldout_total), "psnr_db": round(float(psnr_of_mean_mse), 3),
            "mean_frame_psnr_db": round(float(np.mean(frame_psnr)), 3),
            "mse": mse, "latent_std": std, "scaling_factor": float(vae.config.scaling_factor),
            "params": int(sum(p.numel() for p in vae.parameters())), "seconds": round(time.time() - t0, 1)}
    (out / "vae_eval.json").write_text(json.dumps(info, indent=1))
    print(json.dumps(info))
    return info


if __name__ == "__main__":
    main()
