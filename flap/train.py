"""Generic Hydra training entry point: ``python -m flap.train experiment=<name> [key=value ...]``.

Layout follows lightning-hydra-template. ``flap/conf/train.yaml`` holds the defaults (seed, trainer,
callbacks, logger, output folders) and ``experiment: null``; an experiment file
(``flap/conf/experiment/<name>.yaml``, starting with ``# @package _global_``) fills in the rest.

Contract (what an experiment must / may provide):

- ``data``: ``_target_`` of a ``lightning.LightningDataModule`` (required).
- ``model``: ``_target_`` of a ``lightning.LightningModule`` (required); nested ``_target_`` entries are
  instantiated recursively (e.g. ``model.net``). The module may read anything it needs from
  ``self.trainer.datamodule`` in ``setup("fit")`` (e.g. normalisation statistics).
- ``trainer``: kwargs of ``lightning.Trainer`` (defaults in ``train.yaml``).
- ``callbacks``: a dict of ``_target_`` configs (defaults: ``ModelCheckpoint`` writing
  ``<run dir>/checkpoints`` incl. ``last.ckpt``, ``LearningRateMonitor``); set an entry to ``null`` to drop it.
- ``logger``: a dict of ``_target_`` configs (default CSV logger in the run directory) or ``null``.
- ``seed`` (int or null), ``ckpt_path`` (resume from a Lightning checkpoint, e.g.
  ``<run dir>/checkpoints/last.ckpt``), ``train`` (false = only build everything).
- Export hook: after ``fit``, if the module has ``export_pretrained(out_dir)``, it is called with
  ``export_dir`` (default ``<run dir>/export``); ``export_from: best`` first loads the best checkpoint
  of the ``model_checkpoint`` callback (default ``last``: the final weights).

Returns (from :func:`train`) a dict of the trainer's final ``callback_metrics`` (floats) plus
``run_dir`` and ``export_dir``.
"""

from __future__ import annotations

import logging
from pathlib import Path

import hydra
from omegaconf import DictConfig, OmegaConf

from flap.cli_support import (  # imported before Hydra makes its run folder (see run_command)
    check_overrides,
    run_command,
    single_lightning_log,
)

log = logging.getLogger(__name__)

__all__ = ["train", "main"]


def _instantiate_dict(cfg: DictConfig | None, what: str) -> list:
    """Instantiate every ``_target_`` entry of a dict config (``null`` entries are skipped)."""
    out = []
    for key, node in (cfg or {}).items():
        if node is None:
            continue
        if not (isinstance(node, DictConfig) and "_target_" in node):
            raise ValueError(
                f"flap.train: {what}.{key} must be a config with _target_, got {OmegaConf.to_yaml(node)!r}"
            )
        out.append(hydra.utils.instantiate(node))
    return out


def _check_input_paths(cfg: DictConfig) -> None:
    """Fail in one line naming the key when the data folder (or a local model folder) does not exist.

    Checked before anything is built, so ``FLAP_DATA=<missing>`` names the data folder instead of
    failing later on some other path.
    """
    from flap.errors import InputNotFoundError

    root = cfg.data.get("root")
    if root is not None and not Path(str(root)).is_dir():
        raise InputNotFoundError(
            f"data.root={root}: no such data folder (from FLAP_DATA or the experiment; relative to "
            f"{Path.cwd()}); prepare one with python -m flap.data.prepare <videos> <folder>"
        )
    vae = cfg.model.get("vae")
    if isinstance(vae, str) and not Path(vae).exists():
        raise InputNotFoundError(f"model.vae={vae}: no such folder (relative to {Path.cwd()}; set FLAP_VAE or model.vae)")


def train(cfg: DictConfig) -> dict:
    """Build data, model, callbacks, logger and trainer from ``cfg``, fit, export. See the module docstring.

    Raises:
        ValueError: ``data`` or ``model`` missing (no experiment given), or a callback without ``_target_``.
        flap.errors.InputNotFoundError: ``data.root`` or a local ``model.vae`` folder does not exist.
    """
    import lightning as L

    single_lightning_log()
    for key in ("data", "model"):
        if cfg.get(key) is None:
            from flap.errors import UsageError

            raise UsageError(
                f"flap.train: config has no {key!r}; choose an experiment, e.g. experiment=audio2flame"
            )
    _check_input_paths(cfg)
    if cfg.get("seed") is not None:
        L.seed_everything(int(cfg.seed), workers=True)

    log.info("data: %s, model: %s", cfg.data._target_, cfg.model._target_)
    datamodule = hydra.utils.instantiate(cfg.data)
    model = hydra.utils.instantiate(cfg.model)
    callbacks = _instantiate_dict(cfg.get("callbacks"), "callbacks")
    loggers = _instantiate_dict(cfg.get("logger"), "logger")
    trainer = hydra.utils.instantiate(cfg.trainer, callbacks=callbacks, logger=loggers or False)

    run_dir = Path(cfg.paths.output_dir)
    result = {"run_dir": str(run_dir), "export_dir": None}
    if not cfg.get("train", True):
        return result
    trainer.fit(model=model, datamodule=datamodule, ckpt_path=cfg.get("ckpt_path"))

    if hasattr(model, "export_pretrained"):
        if cfg.get("export_from", "last") == "best":
            best = getattr(trainer.checkpoint_callback, "best_model_path", "")
            if best:
                import torch

                state = torch.load(best, map_location=model.device, weights_only=False)["state_dict"]
                model.load_state_dict(state)
                log.info("exporting the best checkpoint %s", best)
        export_dir = Path(cfg.get("export_dir") or run_dir / "export")
        model.export_pretrained(export_dir)
        result["export_dir"] = str(export_dir)
        log.info("exported to %s", export_dir)
    for key, value in trainer.callback_metrics.items():
        try:
            result[key] = float(value)
        except (TypeError, ValueError):
            pass
    return result


@hydra.main(version_base="1.3", config_path="conf", config_name="train")
def main(cfg: DictConfig) -> None:
    from hydra.core.hydra_config import HydraConfig

    result = run_command("flap.train", train, cfg, hydra_run_dir=HydraConfig.get().runtime.output_dir)
    log.info("result: %s", result)


if __name__ == "__main__":
    check_overrides("flap.train")
    main()
