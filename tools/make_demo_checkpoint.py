"""Assemble a FLAPPipeline checkpoint folder from separately trained components (last step of the
demo recipe in the README); :func:`flap.training.assemble.assemble_pipeline` does the work.

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
import sys
from pathlib import Path

from flap.training.assemble import assemble_pipeline


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--vae", type=Path, required=True, help="diffusers AutoencoderKL folder")
    parser.add_argument("--unets", type=Path, required=True, help="training-stage output folder")
    parser.add_argument("--audio2flame", type=Path, default=None, help="Audio2Flame folder (save_pretrained)")
    parser.add_argument("--out", type=Path, default=Path("checkpoints/flap_tiny_demo"))
    parser.add_argument("--force", action="store_true", help="replace an existing --out")
    ns = parser.parse_args(argv)
    try:
        sizes = assemble_pipeline(ns.vae, ns.unets, ns.audio2flame, ns.out, ns.force)
    except (FileNotFoundError, FileExistsError) as exc:
        print(f"make_demo_checkpoint: error: {exc}", file=sys.stderr)
        return 1
    print(f"wrote {ns.out}: {json.dumps(sizes)} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
