"""Run configuration: one flat dataclass, read from YAML, overridden field by field from the command line.

Every field is also a flag of ``scripts/train.py`` (``z_dim`` is ``--z-dim``);
precedence is defaults < ``--config FILE`` < explicit flags. The resolved config
is written to ``RUN_DIR/config.yaml``, which ``evaluate.py`` and ``sample.py``
read back to rebuild the model.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, Optional, Union

from .fields import check_positive_int, coerce_fields

__all__ = ["TrainConfig", "load_config", "save_config", "add_config_arguments", "resolve_config", "given_fields",
           "config_for_resume", "RESUME_SAFE_FIELDS", "data_label", "annealing_schedule"]

# What a resume may change: how long and where it trains and what it shows, never what it trains on or how.
RESUME_SAFE_FIELDS = frozenset({"epochs", "patience", "accelerator", "devices", "num_nodes", "strategy", "progress",
                                "num_workers", "pyro_validation", "out"})


@dataclass
class TrainConfig:
    """Everything that defines a training run. Defaults are the main job's (about 10 min on 2 CPU cores)."""

    # what to train
    model: str = "arssm"
    guide: str = "full"
    iaf: int = 0
    iaf_dim: int = 20
    z_dim: int = 16
    h_dim: int = 64
    hidden_dim: int = 64
    guide_rnn_dim: int = 64
    emission: Optional[str] = None  # None: bernoulli for binary data, itakura_saito for speech, else gaussian
    init_output: bool = True  # start the emission's output biases at the training data's statistics
    model_options: Dict[str, Any] = field(default_factory=dict)  # any other ModelConfig field
    # data
    data: str = "bach"  # bach, jsb, ..., speech, asterisk, librispeech-SUBSET, flame, macro, a file, a folder
    data_root: Optional[str] = None  # folder of downloaded corpora (default: $PYRO_DSSM_DATA or the user cache)
    frames_per_quarter: int = 1  # MIDI/MusicXML folders only
    max_sequences: Optional[int] = None  # keep only the first N sequences of each split (quick checks)
    # speech (App. C): 16 kHz, 1024-sample sine window, hop 256, 513 bins, 50-frame training sequences
    sample_rate: int = 16000
    stft_n_fft: int = 1024
    stft_hop: int = 256
    seq_len: int = 50
    trim_db: float = 30.0
    speaker_disjoint: bool = False
    max_files: Optional[int] = None  # keep only the first N audio files (sorted by path)
    # Monash .tsf series (LS4 App. D.1)
    series_normalise: str = "zscore"  # zscore | minmax | none, per series
    series_missing: str = "error"  # error | drop | interpolate | keep
    # irregular sampling (LS4 Sec. 5.3): keep each observed entry with this probability, the rest NaN
    observed_fraction: float = 1.0
    # optimisation (paper, Sec. III: Adam, norm clipping 10, batches of 100, annealing over 100 epochs)
    epochs: int = 30
    batch_size: int = 20
    lr: float = 3e-3
    clip_norm: float = 10.0
    anneal_epochs: int = 5
    min_annealing: float = 0.2
    weight_decay: float = 0.0  # decoupled weight decay (AdamW) on every weight; 0: plain Adam
    lr_decay: float = 1.0  # multiply the learning rate by this when validation has not improved for lr_patience
    lr_patience: int = 5  # validation epochs without improvement before the learning rate decays (lr_decay < 1)
    free_bits: float = 0.0  # nats per latent step and sequence below which the KL costs a constant (0: the ELBO)
    patience: int = 0  # early stopping on the validation ELBO; 0 = off
    ema_decay: float = 0.0  # exponential moving average of the weights (LS4 App. D.1: 0.999); 0 = off
    ema_start: int = 0  # optimiser steps before the average starts following the weights
    val_every: int = 1
    eval_particles: int = 10
    seed: int = 0
    bucket_by_length: bool = True  # training batches of similar lengths (off: random batches, as before 2026-12)
    pyro_validation: bool = False  # Pyro's per-site checks in training and validation steps (slower; debugging)
    jit: bool = False
    num_buckets: int = 4
    num_workers: int = 0
    # hardware
    accelerator: str = "cpu"
    devices: Union[int, str] = 1
    num_nodes: int = 1
    strategy: str = "auto"
    # output
    out: Optional[str] = None  # default runs/{model}-{guide}-{data}
    progress: bool = True

    def __post_init__(self):
        coerce_fields(self, "config")  # YAML's 3e-3 is a string; every field takes its declared type
        self.validate()

    def validate(self) -> None:
        positive = ["iaf_dim", "z_dim", "h_dim", "hidden_dim", "guide_rnn_dim", "epochs", "batch_size",
                    "val_every", "eval_particles", "num_buckets", "num_nodes", "frames_per_quarter",
                    "sample_rate", "stft_n_fft", "stft_hop", "seq_len"]
        for name in positive:
            check_positive_int(getattr(self, name), f"config field {name!r}")
        for name in ("iaf", "anneal_epochs", "patience", "num_workers", "ema_start"):
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool) or v < 0:
                raise ValueError(f"config field {name!r} must be a non-negative integer, got {v!r}")
        if not self.lr > 0:
            raise ValueError(f"lr must be > 0, got {self.lr!r}")
        if not self.weight_decay >= 0:
            raise ValueError(f"weight_decay must be >= 0, got {self.weight_decay!r}")
        if not 0 < self.lr_decay <= 1:
            raise ValueError(f"lr_decay must be in (0, 1] (1: no decay), got {self.lr_decay!r}")
        if not isinstance(self.lr_patience, int) or isinstance(self.lr_patience, bool) or self.lr_patience < 0:
            raise ValueError(f"config field 'lr_patience' must be a non-negative integer, got {self.lr_patience!r}")
        if not self.clip_norm > 0:
            raise ValueError(f"clip_norm must be > 0, got {self.clip_norm!r}")
        if not 0 <= self.ema_decay < 1:
            raise ValueError(f"ema_decay must be in [0, 1) (0: no weight averaging), got {self.ema_decay!r}")
        if self.ema_decay and self.jit:
            raise ValueError("ema_decay needs module-local parameters, which --jit does not use")
        if not self.free_bits >= 0:
            raise ValueError(f"free_bits must be >= 0 nats (0: the plain ELBO), got {self.free_bits!r}")
        if self.free_bits and self.jit:
            raise ValueError("free_bits needs the engine's own loss, which --jit replaces")
        if not 0 < self.min_annealing <= 1:
            raise ValueError(f"min_annealing must be in (0, 1], got {self.min_annealing!r}")
        for name in ("max_sequences", "max_files"):
            v = getattr(self, name)
            if v is not None and (not isinstance(v, int) or v < 1):
                raise ValueError(f"{name} must be a positive integer or null, got {v!r}")
        from .data.speech import STFTConfig

        STFTConfig(self.sample_rate, self.stft_n_fft, self.stft_hop)  # raises on a hop longer than the window
        if self.series_normalise not in ("zscore", "minmax", "none"):
            raise ValueError(f"series_normalise must be zscore, minmax or none, got {self.series_normalise!r}")
        if self.series_missing not in ("error", "drop", "interpolate", "keep"):
            raise ValueError(f"series_missing must be error, drop, interpolate or keep, got {self.series_missing!r}")
        if not 0 < self.observed_fraction <= 1:
            raise ValueError(f"observed_fraction must be in (0, 1], got {self.observed_fraction!r}")
        if not self.trim_db > 0:
            raise ValueError(f"trim_db must be > 0, got {self.trim_db!r}")
        if self.iaf and self.iaf_dim < self.z_dim:
            raise ValueError(f"iaf_dim={self.iaf_dim} < z_dim={self.z_dim}: an IAF's hidden width must be at "
                             "least z_dim (pyro's AutoRegressiveNN); lower z_dim or raise iaf_dim")

    @property
    def run_dir(self) -> Path:
        if self.out:
            return Path(self.out)
        return Path("runs") / f"{self.model}-{self.guide}-{data_label(self.data)}"

    def annealing_factor(self, epoch: int) -> float:
        """KL annealing: the scale on the latent sites, rising linearly from ``min_annealing`` to 1."""
        return annealing_schedule(epoch, self.anneal_epochs, self.min_annealing)

    def to_dict(self) -> Dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: Dict[str, Any], where: str = "config") -> "TrainConfig":
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - names)
        if unknown:
            raise ValueError(f"{where}: unknown field(s) {unknown}; known fields: {sorted(names)}")
        return cls(**d)

    def replace(self, **changes) -> "TrainConfig":
        return self.from_dict({**self.to_dict(), **changes})


def annealing_schedule(epoch: int, anneal_epochs: int, min_annealing: float) -> float:
    """KL annealing (taxonomy paper, Sec. III): the scale on the latent sites at ``epoch`` (from 0), rising
    linearly from ``min_annealing`` to 1 over ``anneal_epochs`` epochs (0: always 1)."""
    if anneal_epochs <= 0:
        return 1.0
    return min(1.0, min_annealing + (1.0 - min_annealing) * epoch / anneal_epochs)


def data_label(data: str) -> str:
    """A short name of a ``--data`` value for a folder name: a corpus name, or a file or folder's stem."""
    data = str(data)
    return Path(data).stem if os.sep in data or "." in data else data


def load_config(path: Union[str, os.PathLike]) -> Dict[str, Any]:
    """Read a YAML config into a dict of fields (checked against :class:`TrainConfig`)."""
    import yaml

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"config file {str(path)!r} does not exist")
    try:
        d = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as e:
        raise ValueError(f"{path} is not valid YAML: {e}") from e
    if not isinstance(d, dict):
        raise ValueError(f"{path}: a config is a mapping of fields, got {type(d).__name__}")
    TrainConfig.from_dict(d, where=str(path))  # validate now, with the file's name in errors
    return d


def save_config(cfg: TrainConfig, path: Union[str, os.PathLike]) -> None:
    import yaml

    from .utils import atomic_write_text

    atomic_write_text(Path(path), yaml.safe_dump(cfg.to_dict(), sort_keys=False))


# ----------------------------------------------------------------------------------------------
# Command line: every field is a flag; only flags given explicitly override the config file
# ----------------------------------------------------------------------------------------------

_HELP = {
    "model": "the model: a registered model ({models}: the taxonomy's presets and LS4) or a taxonomy spec name "
             "such as 'arhmm+tr' (pyro_dssm.list_specs())",
    "guide": "the inference network: partial | full (Sec. II-B) | A | B | C (App. D); ls4 for --model ls4",
    "iaf": "number of inverse autoregressive flows on the guide (paper: 3)",
    "iaf_dim": "hidden width of each IAF (paper: 20); must be >= z_dim",
    "z_dim": "latent dimension of z_t",
    "h_dim": "width of the deterministic RNN states h (for ls4: the SSM channels H)",
    "hidden_dim": "hidden width of the transition and emission networks (and of the guide's combiner)",
    "guide_rnn_dim": "width of the guide's RNN over x",
    "emission": "the observation family: {emissions} (default: bernoulli for 0/1 data, itakura_saito for "
                "speech, gaussian otherwise)",
    "init_output": "start the emission's output biases at the training data's statistics (log-odds, mean and "
                   "std, mean power) instead of PyTorch's default",
    "data": "a registered corpus ({datasets}; pyro_dssm.data.registry), or {formats}",
    "data_root": "folder holding downloaded corpora (default: $PYRO_DSSM_DATA or ~/.cache/pyro-dssm)",
    "frames_per_quarter": "MIDI/MusicXML folders: time frames per quarter note",
    "max_sequences": "keep only the first N sequences of each split, for quick checks (default: all)",
    "sample_rate": "speech: sample rate in Hz the audio is resampled to",
    "stft_n_fft": "speech: STFT window length in samples (App. C: 1024)",
    "stft_hop": "speech: STFT hop in samples (App. C: 25%% of the 1024-sample window)",
    "seq_len": "speech: frames per training sequence (App. C: 50)",
    "trim_db": "speech: trim leading/trailing audio quieter than this many dB below the peak",
    "speaker_disjoint": "speech: split by speaker (first folder level) instead of by file",
    "max_files": "speech: keep only the first N audio files (default: all)",
    "series_normalise": ".tsf series: per-series zscore (FRED-MD, NN5, Solar) or minmax (Temperature Rain)",
    "series_missing": ".tsf series with missing values: error, drop, interpolate or keep (NaN; LS4 only)",
    "observed_fraction": "irregular sampling (LS4 Sec. 5.3): keep each observed entry with this probability, "
                         "the others become unobserved (NaN); 1 keeps all",
    "epochs": "training epochs (a resume may raise it)",
    "batch_size": "sequences per training batch",
    "lr": "Adam learning rate",
    "clip_norm": "clip the gradients' total norm to this (paper: 10)",
    "anneal_epochs": "epochs over which the KL factor rises to 1 (paper: 100; 0: no annealing)",
    "min_annealing": "initial KL annealing factor",
    "weight_decay": "decoupled weight decay (AdamW) on every weight (0: plain Adam)",
    "lr_decay": "multiply the learning rate by this after --lr-patience validations without improvement "
                "(ReduceLROnPlateau on the validation ELBO; 1: constant)",
    "lr_patience": "validations without improvement before the learning rate decays (with --lr-decay < 1)",
    "free_bits": "free bits (Kingma et al. 2016): each time step's KL, averaged over the batch, counts at least "
                 "this many nats in the training loss (0: the ELBO)",
    "patience": "early stopping after this many validations without improvement (0: off)",
    "ema_decay": "validate, checkpoint and evaluate an exponential moving average of the weights with this "
                 "decay (LS4 App. D.1: 0.999; 0: off)",
    "ema_start": "optimiser steps before the moving average starts (it holds the initial weights until then)",
    "val_every": "validate every N epochs",
    "eval_particles": "particles for the test negative ELBO before and after training",
    "seed": "random seed of the initialisation, the data order and the splits of unsplit data",
    "bucket_by_length": "draw training batches from length-sorted buckets (less padding: about half the time "
                        "steps on the chorales); off: random batches. Reshuffled every epoch, "
                        "deterministic per seed and epoch",
    "pyro_validation": "let Pyro check every sample site's distribution and value in training and validation "
                       "steps, to find where a diverging run first produces NaN (about a third slower); each batch "
                       "is checked once either way",
    "jit": "compile the ELBO with JitTraceMeanField_ELBO (batches padded to a few length buckets)",
    "num_buckets": "--jit: number of padded lengths (one compiled graph each)",
    "num_workers": "data-loader worker processes (0: load in the main process)",
    "accelerator": "cpu | gpu | auto (Lightning's accelerator)",
    "devices": "number of devices or 'auto'",
    "num_nodes": "number of machines (distributed training)",
    "strategy": "auto | ddp | ddp_spawn | ... (Lightning's strategy)",
    "out": "run directory (default: runs/MODEL-GUIDE-DATA)",
    "progress": "show a progress bar",
}


def _help(name: str, default: Any) -> str:
    """A flag's help: its text plus its default, said once (a text that names its own default keeps it)."""
    text = _HELP[name]
    if "{models}" in text:
        from .models import list_models

        text = text.format(models=", ".join(list_models()))
    if "{datasets}" in text:
        from .data.registry import _FORMATS, list_datasets

        text = text.format(datasets=", ".join(list_datasets()),
                           formats=", ".join(f.description for f in _FORMATS[:-1]) + " or " + _FORMATS[-1].description)
    if "{emissions}" in text:
        from .nn.emissions import list_emissions

        text = text.format(emissions=" | ".join(list_emissions()))
    if isinstance(default, bool):
        return f"{text} (default: {'on' if default else 'off'})"
    if "default" in text or default is None or default is dataclasses.MISSING:
        return text
    return f"{text} (default: {default})"


def add_config_arguments(parser) -> None:
    """Add one flag per :class:`TrainConfig` field (``z_dim`` -> ``--z-dim``), default: not given."""
    import argparse

    for f in dataclasses.fields(TrainConfig):
        if f.name == "model_options":
            parser.add_argument("--model-option", dest="model_options", action="append", metavar="KEY=VALUE",
                                default=argparse.SUPPRESS, help="any other ModelConfig field, e.g. "
                                "transition_net=gated (repeatable)")
            continue
        flag = "--" + f.name.replace("_", "-")
        default = f.default
        kw: Dict[str, Any] = {"dest": f.name, "default": argparse.SUPPRESS, "help": _help(f.name, default)}
        if isinstance(default, bool):
            kw["action"] = argparse.BooleanOptionalAction
        elif f.name == "devices":
            kw["type"] = str
        elif isinstance(default, int) or f.name in ("max_sequences", "max_files"):
            kw["type"] = int
        elif isinstance(default, float):
            kw["type"] = float
        parser.add_argument(flag, **kw)


def _parse_value(text: str):
    import yaml

    return yaml.safe_load(text)


def given_fields(args) -> Dict[str, Any]:
    """The fields a command line sets: ``args.config`` (a YAML file) overridden by the flags given explicitly."""
    fields = {f.name for f in dataclasses.fields(TrainConfig)}
    values: Dict[str, Any] = {}
    if getattr(args, "config", None):
        values.update(load_config(args.config))
    given = {k: v for k, v in vars(args).items() if k in fields}
    if "model_options" in given:
        opts = dict(values.get("model_options") or {})
        for item in given.pop("model_options"):
            if "=" not in item:
                raise ValueError(f"--model-option takes KEY=VALUE, got {item!r}")
            k, v = item.split("=", 1)
            opts[k.strip()] = _parse_value(v)
        values["model_options"] = opts
    values.update(given)
    if isinstance(values.get("devices"), str) and values["devices"].isdigit():
        values["devices"] = int(values["devices"])
    return values


def resolve_config(args) -> TrainConfig:
    """Defaults < ``args.config`` (a YAML file) < flags given on the command line."""
    return TrainConfig.from_dict(given_fields(args))


def _flag(name: str) -> str:
    return "--model-option" if name == "model_options" else "--" + name.replace("_", "-")


def config_for_resume(saved: TrainConfig, given: Dict[str, Any], where: str = "the run") -> TrainConfig:
    """The config of a resumed run: the run's own ``saved`` config, changed only where that is safe.

    Args:
        saved: the run's config (``RUN_DIR/config.yaml``).
        given: the fields a command or a caller sets (``--config FILE`` and flags); ``emission: null``
            (choose by the data) and ``out`` do not count as changes.
        where: the run, for the error message.

    Raises:
        ValueError: ``given`` changes a field outside :data:`RESUME_SAFE_FIELDS`, naming the flag
        and both values.
    """
    given = dict(given)
    if given.get("emission", saved.emission) is None:
        given.pop("emission")
    if "model_options" in given:
        given["model_options"] = {**saved.model_options, **(given["model_options"] or {})}
    resumed = saved.replace(**given)
    changed = [f.name for f in dataclasses.fields(TrainConfig)
               if f.name not in RESUME_SAFE_FIELDS and getattr(resumed, f.name) != getattr(saved, f.name)]
    if changed:
        lines = [f"  {_flag(n)}: {getattr(saved, n)!r} in the run, {getattr(resumed, n)!r} now" for n in changed]
        raise ValueError(f"cannot resume {where} with a different configuration:\n" + "\n".join(lines) + "\n"
                         "A resume continues the run as its config.yaml says; only "
                         + ", ".join(_flag(n) for n in sorted(RESUME_SAFE_FIELDS - {"out"}))
                         + " may change. To train with other settings, start a new run with another --out.")
    return resumed
