"""Reading runs back: a run directory's config (as it was trained), its model and guide, its outputs."""

from __future__ import annotations

from pathlib import Path

from ..config import TrainConfig, load_config
from ..data.corpus import Corpus


# How runs saved before a field existed were trained: a resume continues them that way.
_BEFORE_FIELD = {"bucket_by_length": False}


def load_run_config(run_dir) -> TrainConfig:
    """The config a run was trained with: ``RUN_DIR/config.yaml``, or the one its last checkpoint keeps.

    A run saved before a default changed gets the setting it was trained with: random
    batches (before length bucketing), and ``z_1`` from the transition (``initial: transition``)
    when its checkpoints have no learned initial distribution.
    """
    from .checkpoints import check_checkpoint

    run_dir = Path(run_dir)
    path = run_dir / "config.yaml"
    last = run_dir / "checkpoints" / "last.ckpt"
    saved = check_checkpoint(last).get("pyro_dssm_config") if not path.is_file() and last.is_file() else None
    if path.is_file():
        cfg = TrainConfig.from_dict({**_BEFORE_FIELD, **load_config(path)}, where=str(path))
    elif isinstance(saved, dict):
        cfg = TrainConfig.from_dict({**_BEFORE_FIELD, **saved}, where=str(last))
    else:
        raise FileNotFoundError(f"{run_dir} is not a run directory: it has no config.yaml")
    return _with_initial_of_checkpoints(cfg, run_dir)


def _with_initial_of_checkpoints(cfg: TrainConfig, run_dir: Path) -> TrainConfig:
    """``initial: transition`` for a DSSM run whose checkpoints predate the learned ``p(z_1)``."""
    from ..models.registry import model_capabilities
    from .checkpoints import check_checkpoint

    if not model_capabilities(cfg.model)["learned_initial"] or "initial" in cfg.model_options:
        return cfg
    for name in ("last.ckpt", "best.ckpt"):
        path = run_dir / "checkpoints" / name
        try:
            keys = check_checkpoint(path)["state_dict"].keys()
        except (FileNotFoundError, ValueError):  # missing or corrupt: the other one, or the caller, decides
            continue
        if not any(k.startswith("model.initial.") for k in keys):
            return cfg.replace(model_options={**cfg.model_options, "initial": "transition"})
        break
    return cfg


def load_run(run_dir, checkpoint: str = "best", jit: bool = False):
    """Rebuild a run's corpus, model and guide from ``RUN_DIR/config.yaml`` and a checkpoint.

    Args:
        run_dir: a directory written by :func:`train`.
        checkpoint: ``best``, ``last`` or a path to a ``.ckpt`` file.

    Returns:
        ``(cfg, corpus, model, guide)`` with the model and guide in eval mode.
    """
    run_dir = Path(run_dir)
    if not (run_dir / "config.yaml").is_file():
        raise FileNotFoundError(f"{run_dir} is not a run directory: it has no config.yaml")
    cfg = load_run_config(run_dir).replace(jit=jit, out=str(run_dir))
    path = Path(checkpoint) if checkpoint not in ("best", "last") else run_dir / "checkpoints" / f"{checkpoint}.ckpt"
    if checkpoint == "best" and not path.is_file():
        path = run_dir / "checkpoints" / "last.ckpt"
    from .checkpoints import load_weights
    from .engine import _prepare

    corpus, _, task, _ = _prepare(cfg)
    load_weights(task, path)
    task.model.eval(), task.guide.eval()
    return cfg, corpus, task.model, task.guide


def open_run(run_dir, checkpoint: str = "best"):
    """:func:`load_run` for command-line scripts: on a bad run directory or checkpoint it prints
    ``error: ...`` to stderr and returns ``None`` (the script then exits with status 2).

    ``run_dir`` may also name a pretrained model (:func:`pyro_dssm.list_pretrained`) when no
    such directory exists; ``checkpoint`` does not apply to it.
    """
    import sys

    from ..pretrained import list_pretrained, load_pretrained_run

    try:
        if not Path(run_dir).exists() and str(run_dir) in list_pretrained():
            return load_pretrained_run(str(run_dir))
        return load_run(run_dir, checkpoint)
    except (ValueError, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        return None


def run_output_dir(run_dir, out=None) -> Path:
    """Where a script writes its outputs: ``out``, else the run directory, else (a pretrained
    model's name) ``runs/pretrained-NAME``."""
    if out is not None:
        return Path(out)
    return Path(run_dir) if Path(run_dir).is_dir() else Path("runs") / f"pretrained-{run_dir}"


def evaluation_corpus(cfg: TrainConfig, data: str, model) -> Corpus:
    """Another corpus for a trained model: ``data`` (any ``--data``: a corpus name, a folder, a file)
    read with the run's own pre-processing (frames per quarter, STFT, normalisation), without the
    run's training-only augmentation (key transposition): each of its sequences is scored once, as given.

    Raises:
        ValueError: its dimension differs from the model's, or it is not binary for a Bernoulli model.
        FileNotFoundError: it names no corpus, file or folder.
    """
    from .engine import build_corpus, check_support

    every_file = cfg.replace(data=str(data), max_sequences=None, max_files=None)
    corpus = build_corpus(every_file, augment=False)
    x_dim = model.config.x_dim
    if corpus.x_dim != x_dim:
        raise ValueError(f"data {str(data)!r} has {corpus.x_dim} features per step, but the model was trained on "
                         f"{x_dim} ({cfg.data}); evaluate it on data of the same dimension (for music: 88 piano keys, "
                         f"for speech: the run's STFT with {cfg.option('stft_n_fft') // 2 + 1} bins)")
    check_support(model.config.emission, corpus, what=f"data {str(data)!r}")
    return corpus


class RunDir:
    """A run directory and every file that training and evaluation write into it, read back.

    Training (:func:`~pyro_dssm.training.train`): ``config.yaml``, ``checkpoints/{last,best}.ckpt``,
    ``logs/metrics.csv``, ``metrics.json``, ``untrained_test.json``. Evaluation
    (``pyro-dssm evaluate``): ``eval_SPLIT.json`` and ``.csv``, ``samples_SPLIT.json``,
    ``resynthesis-LATENTS[-SPLIT]/summary.json``, ``generation/generation.json`` and
    ``forecast_TASK.json``. The readers return ``None`` for a file that is not there (or is
    unreadable, e.g. torn by a kill); the path helpers say where each one goes.

    Args:
        path: the run directory (it need not exist yet).
    """

    CONFIG = "config.yaml"
    METRICS = "metrics.json"
    UNTRAINED = "untrained_test.json"
    CHECKPOINTS = "checkpoints"
    HISTORY = "logs/metrics.csv"
    SUMMARY = "summary.json"  # in each resynthesis-LATENTS[-SPLIT]/ folder
    GENERATION = "generation.json"  # in generation/

    def __init__(self, path):
        self.path = Path(path)

    def __repr__(self) -> str:
        return f"RunDir({str(self.path)!r})"

    # -- where each output goes ---------------------------------------------------------------
    def checkpoint(self, which: str = "best") -> Path:
        return self.path / self.CHECKPOINTS / f"{which}.ckpt"

    def eval_file(self, split: str = "test", suffix: str = "json") -> Path:
        return self.path / f"eval_{split}.{suffix}"

    def samples_file(self, split: str = "test") -> Path:
        return self.path / f"samples_{split}.json"

    def resynthesis_dir(self, latents: str = "sample", split: str = "test") -> Path:
        return self.path / (f"resynthesis-{latents}" + ("" if split == "test" else f"-{split}"))

    def generation_dir(self, mean: bool = False) -> Path:
        """``generation/``: prior samples with observation noise; ``generation-mean/``: decoder means."""
        return self.path / ("generation-mean" if mean else "generation")

    def forecast_file(self, task: str) -> Path:
        return self.path / f"forecast_{task}.json"

    # -- reading them back --------------------------------------------------------------------
    @staticmethod
    def _json(path: Path):
        import json

        try:
            return json.loads(path.read_text())
        except (OSError, ValueError):
            return None

    @property
    def is_run(self) -> bool:
        """It has the ``config.yaml`` that training writes first."""
        return (self.path / self.CONFIG).is_file()

    @property
    def finished(self) -> bool:
        """Training ended (``metrics.json`` is written last)."""
        return (self.path / self.METRICS).is_file()

    def config(self):
        """``config.yaml`` as a dict (``None`` when absent); :func:`load_run_config` for a ``TrainConfig``."""
        import yaml

        try:
            return yaml.safe_load((self.path / self.CONFIG).read_text())
        except (OSError, yaml.YAMLError):
            return None

    def metrics(self):
        return self._json(self.path / self.METRICS)

    def evaluation(self, split: str = "test"):
        return self._json(self.eval_file(split))

    def samples(self, split: str = "test"):
        return self._json(self.samples_file(split))

    def resynthesis(self, latents: str = "sample", split: str = "test"):
        return self._json(self.resynthesis_dir(latents, split) / self.SUMMARY)

    def generation(self, mean: bool = False):
        return self._json(self.generation_dir(mean) / self.GENERATION)

    def forecast(self, task: str):
        return self._json(self.forecast_file(task))

    def history(self):
        """The per-epoch curves (:func:`~pyro_dssm.training.training_history`)."""
        from .logs import training_history

        return training_history(self.path)

    # -- one flat record for the tables (pyro_dssm.tables) ------------------------------------
    FORECAST_TASKS = ("interpolation", "extrapolation")

    def record(self, finished: bool = True):
        """The run's numbers, flat for :func:`pyro_dssm.tables.render_table`: model, guide, IAF, data,
        epochs, wall time, test scores (``eval_SPLIT``), resynthesis scores (mean, median, 95% interval,
        utterances), prior-sample statistics, the best epoch's validation KL, generation and forecast
        scores, each where the run has it.

        Args:
            finished: ``None`` for a run whose training has not finished (no ``metrics.json``);
                ``False``: any run with a ``config.yaml`` (its evaluations may stand alone).
        """
        metrics, cfg = self.metrics(), self.config()
        if cfg is None or (metrics is None and finished):
            return None
        metrics = metrics or {}
        rec = {"run_dir": str(self.path), "model": cfg["model"], "guide": cfg.get("guide"), "iaf": cfg.get("iaf", 0),
               "data": metrics.get("data", cfg.get("data")), "epochs_run": metrics.get("epochs_run"),
               "train_seconds": metrics.get("train_seconds"), "test_nelbo_per_step": metrics.get("test_nelbo_per_step"),
               "best_val_nelbo_per_step": metrics.get("best_val_nelbo_per_step")}
        for split in ("train", "valid", "test"):
            ev = self.evaluation(split)
            if ev:
                rec[f"eval_{split}"] = {k: ev.get(k) for k in ("nelbo_per_step", "nll_per_step", "seconds",
                                                                "iwae_particles", "elbo_particles", "data")}
            for latents in ("sample", "mean"):
                summ = self.resynthesis(latents, split)
                if summ:
                    key = f"resynthesis_{latents}_{split}"
                    rec[key] = {k: v["mean"] for k, v in summ["metrics"].items()}
                    rec[f"{key}_median"] = {k: v["median"] for k, v in summ["metrics"].items() if "median" in v}
                    rec[f"{key}_utterances"] = summ.get("utterances")
                    rec[f"{key}_ci"] = {k: [v["ci_low"], v["ci_high"]] for k, v in summ["metrics"].items()
                                        if v.get("ci_low") is not None and v.get("ci_high") is not None}
        samples = self.samples("test")
        if samples:
            rec["samples_test"] = samples["samples"]
            rec["real_test"] = samples["real"]
        best = self.best_epoch_kl()
        if best is not None:
            rec["val_kl_per_step"] = best
        for key, gen in (("generation", self.generation()), ("generation_mean", self.generation(mean=True))):
            if gen:
                scores = gen.get("scores", {})
                rec[key] = {k: scores[k] for k in ("marginal", "classification", "prediction", "wasserstein")
                            if k in scores}
                if gen.get("crossing"):
                    rec[key]["crossing_p"] = gen["crossing"]["p_value"]
                    rec[key]["crossing_ks"] = gen["crossing"]["ks_statistic"]
                rec["generation_data"] = gen.get("data")
        for task in self.FORECAST_TASKS:
            rep = self.forecast(task)
            if rep:
                rec[f"forecast_{task}"] = {k: rep.get(k) for k in ("mse", "crps", "crps_mixture")}
                rec["forecast_data"] = rep.get("data")
        return rec

    def best_epoch_kl(self):
        """The validation KL per step (nats) at the best validation epoch, if the run logged one."""
        import math

        try:
            h = self.history()
        except (FileNotFoundError, ValueError, KeyError):
            return None
        pairs = [(v, k) for v, k in zip(h["val"], h["val_kl"]) if math.isfinite(v) and math.isfinite(k)]
        return min(pairs)[1] if pairs else None
