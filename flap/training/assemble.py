"""Assemble a :class:`~flap.pipeline.FLAPPipeline` folder from separately trained components.

The components are a diffusers ``AutoencoderKL`` folder, a training-stage output (``reference_net/``
+ ``denoising_net/``, :func:`flap.training.lit_module.load_stage_output`) and optionally an
Audio2Flame folder. The DDIM scheduler matches the training noise schedule
(:func:`flap.models.scheduling.ddim_scheduler`). Used by ``tools/make_demo_checkpoint.py`` and
``python -m flap.finetune``.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

__all__ = ["assemble_pipeline", "PIPELINE_ENTRIES"]

#: What :func:`assemble_pipeline` writes into ``out`` (``model_index.json`` last).
PIPELINE_ENTRIES = ("vae", "reference_net", "denoising_net", "scheduler", "audio2flame", "sources.json",
                    "model_index.json")


def _folder_mb(path: Path) -> float:
    return round(sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) / 2**20, 2)


def assemble_pipeline(vae: str | os.PathLike, unets: str | os.PathLike, audio2flame: str | os.PathLike | None,
                      out: str | os.PathLike, force: bool = False, keep_other_files: bool = False,
                      sources: dict | None = None) -> dict:
    """Load the components and save them as one pipeline folder at ``out``.

    The pipeline is first saved under a temporary name beside ``out``. Without ``keep_other_files``
    the temporary folder then replaces ``out`` (complete or absent). With ``keep_other_files`` (a
    fine-tuning run keeps its data and training files in ``out``) the pipeline entries are moved into
    ``out`` one by one, ``model_index.json`` last, so ``out`` is loadable only once it is complete.

    Args:
        vae: diffusers ``AutoencoderKL`` folder.
        unets: training-stage output (``reference_net/``, ``denoising_net/``), or a pipeline folder.
        audio2flame: ``Audio2Flame`` folder (``save_pretrained``), or None.
        out: pipeline folder to write.
        force: replace an existing ``out`` (without ``keep_other_files``).
        sources: extra facts recorded in ``out/sources.json`` (next to the component paths).

    Returns:
        ``{component: size in MB, ..., "total": MB}``.

    Raises:
        FileNotFoundError: a component folder is missing (names it).
        FileExistsError: ``out`` exists, neither ``force`` nor ``keep_other_files``.
    """
    from diffusers import AutoencoderKL

    from flap.audio.model import Audio2Flame
    from flap.models.scheduling import ddim_scheduler
    from flap.pipeline import FLAPPipeline
    from flap.training.lit_module import load_stage_output

    vae, unets, out = Path(vae), Path(unets), Path(out)
    audio2flame = None if audio2flame is None else Path(audio2flame)
    if out.exists() and not (force or keep_other_files):
        raise FileExistsError(f"{out} exists (use --force to replace it)")
    for label, path in (("vae", vae), ("unets", unets), ("audio2flame", audio2flame)):
        if path is not None and not path.is_dir():
            raise FileNotFoundError(f"{label}={path}: no such folder")
    nets = load_stage_output(unets)
    pipe = FLAPPipeline(
        vae=AutoencoderKL.from_pretrained(vae, low_cpu_mem_usage=False),
        reference_net=nets.reference_net,
        denoising_net=nets.denoising_net,
        scheduler=ddim_scheduler(),
        audio2flame=Audio2Flame.from_pretrained(audio2flame) if audio2flame is not None else None,
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        pipe.save_pretrained(tmp)
        info = {"vae": str(vae), "unets": str(unets), "audio2flame": str(audio2flame) if audio2flame else None}
        stage = unets / "training_stage.json"
        if stage.is_file():
            info["training_stage"] = json.loads(stage.read_text())
        (tmp / "sources.json").write_text(json.dumps({**info, **(sources or {})}, indent=1))
        if keep_other_files and out.is_dir():
            (out / "model_index.json").unlink(missing_ok=True)  # not loadable while entries change
            for name in PIPELINE_ENTRIES:
                if (tmp / name).exists():
                    target = out / name
                    if target.is_dir():
                        shutil.rmtree(target)
                    os.replace(tmp / name, target)
        else:
            if out.exists():
                shutil.rmtree(out)
            os.replace(tmp, out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    sizes = {name: _folder_mb(out / name) for name in PIPELINE_ENTRIES if (out / name).is_dir()}
    sizes["total"] = round(sum(sizes.values()), 2)
    return sizes
