"""One-step x0 predictions of a stage export on held-out frames (last 20% of each clip), as a PNG strip.

Rows: held-out target | reference (same clip, training part) | x0 from t=500 | x0 from t=900.
Also prints the eps-MSE at those t with the target pose vs. with the reference frame's pose (does the
head-motion condition matter?) and with another clip's reference frame (does the reference matter?).

Usage: python tools/x0_strip.py STAGE_DIR VAE_DIR PREPARED_DATA OUT.png   (a diagnostic; not a benchmark)
"""
import sys

import cv2
import numpy as np
import torch
from diffusers import AutoencoderKL

from flap.data.datasets import load_prepared_clips, read_frame
from flap.models.scheduling import ddpm_scheduler
from flap.training import load_stage_output
from flap.training.vae import to_uint8

stage_dir, vae_dir, data, out = sys.argv[1:5]
torch.manual_seed(0)
nets = load_stage_output(stage_dir)
vae = AutoencoderKL.from_pretrained(vae_dir).eval()
sched = ddpm_scheduler()  # the training noise schedule
full = load_prepared_clips(data)
train = {c.clip_id: c for c in load_prepared_clips(data, holdout_tail=0.2)}
clips = [full[i] for i in np.linspace(0, len(full) - 1, 6).round().astype(int)]
tgt, ref, cm = [], [], []
for c in clips:
    t_idx = int(c.frames[-1])  # last (held-out) frame
    r_idx = int(train[c.clip_id].frames[0])
    tgt.append(read_frame(c, t_idx))
    ref.append(read_frame(c, r_idx))
    cm.append((c.coeffs[t_idx, :3], c.coeffs[r_idx, :3]))
tgt, ref = torch.stack(tgt), torch.stack(ref)
sf = vae.config.scaling_factor
rows = [tgt, ref]
with torch.no_grad():
    z = vae.encode(tgt).latent_dist.mode() * sf
    zr = vae.encode(ref).latent_dist.mode() * sf
    feats = nets.reference_net(zr)
    feats_other = nets.reference_net(torch.roll(zr, 1, 0))  # each target gets the previous clip's person
    for t in (500, 900):
        noise = torch.randn_like(z)
        tt = torch.full((len(z),), t)
        noisy = sched.add_noise(z, noise, tt)
        res = {}
        for name, k, f in (("target pose", 0, feats), ("reference pose", 1, feats),
                           ("other clip's reference", 0, feats_other)):
            c_motion = torch.tensor(np.stack([m[k] for m in cm]), dtype=torch.float32)[:, None]
            eps = nets.denoising_net(noisy[:, :, None], tt, reference=f, c_motion=c_motion).sample[:, :, 0]
            res[name] = float(((eps - noise) ** 2).mean())
            if name == "target pose":
                a = sched.alphas_cumprod[t]
                x0 = (noisy - (1 - a).sqrt() * eps) / a.sqrt()
                rows.append(vae.decode(x0 / sf).sample)
        print(f"t={t}: eps-MSE {res}")
strip = np.concatenate([np.concatenate(list(to_uint8(r)), 1) for r in rows], 0)
cv2.imwrite(out, strip[:, :, ::-1])
print(out)
