"""Assemble a FLAPPipeline checkpoint folder from separately trained components (last step of the
demo recipe in the README).

    python tools/make_demo_checkpoint.py \
        --vae outputs/vae_tiny_decoder/export \
        --unets outputs/flap_tiny_train/stage3 \
        --audio2flame checkpoints/audio2flame \
        --out checkpoints/flap_tiny_demo

``--unets`` is a training-stage output (``reference_net/`` + ``denoising_net/``, see
:func:`flap.training.lit_module.load_stage_output`). The folder is written under a temporary name
and renamed, so it is complete or absent; an existing ``--out`` is replaced only with ``--force``.
The DDIM scheduler matches the training noise schedule (:func:`flap.models.scheduling.ddim_scheduler`).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
from pathlib import Path


def assemble(vae: Path, unets: Path, audio2flame: Path | None, out: Path, force: bool = False) -> dict:
    """Load the components, save them as one pipeline folder at ``out``; return a size summary (MB).

    Raises:
        FileNotFoundError: a component folder is missing.
        FileExistsError: ``out`` exists and not ``force``.
    """
    from diffusers import AutoencoderKL

    from flap.audio.model import Audio2Flame
    from flap.models.scheduling import ddim_scheduler
    from flap.pipeline import FLAPPipeline
    from flap.training.lit_module import load_stage_output

    if out.exists() and not force:
        raise FileExistsError(f"{out} exists (use --force to replace it)")
    for label, path in (("vae", vae), ("unets", unets), ("audio2flame", audio2flame)):
        if path is not None and not path.is_dir():
            raise FileNotFoundError(f"--{label} {path}: no such folder")
    nets = load_stage_output(unets)
    pipe = FLAPPipeline(
        vae=AutoencoderKL.from_pretrained(vae),
        reference_net=nets.reference_net,
        denoising_net=nets.denoising_net,
        scheduler=ddim_scheduler(),
        audio2flame=Audio2Flame.from_pretrained(audio2flame) if audio2flame is not None else None,
    )
    tmp = out.with_name(f".{out.name}.tmp{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    pipe.save_pretrained(tmp)
    sources = {"vae": str(vae), "unets": str(unets), "audio2flame": str(audio2flame) if audio2flame else None}
    stage = unets / "training_stage.json"
    if stage.is_file():
        sources["training_stage"] = json.loads(stage.read_text())
    (tmp / "sources.json").write_text(json.dumps(sources, indent=1))
    if out.exists():
        shutil.rmtree(out)
    os.replace(tmp, out)
    sizes = {p.name: round(sum(f.stat().st_size for f in p.rglob("*") if f.is_file()) / 2**20, 2)
             for p in sorted(out.iterdir()) if p.is_dir()}
    sizes["total"] = round(sum(sizes.values()), 2)
    return sizes


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--vae", type=Path, required=True, help="diffusers AutoencoderKL folder")
    parser.add_argument("--unets", type=Path, required=True, help="training-stage output folder")
    parser.add_argument("--audio2flame", type=Path, default=None, help="Audio2Flame folder (save_pretrained)")
    parser.add_argument("--out", type=Path, default=Path("checkpoints/flap_tiny_demo"))
    parser.add_argument("--force", action="store_true", help="replace an existing --out")
    ns = parser.parse_args(argv)
    try:
        sizes = assemble(ns.vae, ns.unets, ns.audio2flame, ns.out, ns.force)
    except (FileNotFoundError, FileExistsError) as exc:
        print(f"make_demo_checkpoint: error: {exc}", file=sys.stderr)
        return 1
    print(f"wrote {ns.out}: {json.dumps(sizes)} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
