"""Run configuration: one dataclass, read from YAML, overridden field by field from the command line.

Every field is also a flag of ``pyro-dssm train`` (``z_dim`` is ``--z-dim``; the flags are
:mod:`pyro_dssm.cli.flags`); precedence is defaults < ``--config FILE`` < explicit flags. Two fields are mappings: ``model_options`` (any
other :class:`~pyro_dssm.models.ModelConfig` field, ``--model-option KEY=VALUE``) and
``data_options``, the options of the datasets' own option groups
(:mod:`pyro_dssm.data.registry`: speech analysis, Monash series, MIDI folders, irregular
sampling), each of which is a flag of its own too (``--stft-n-fft 512``). Configs and runs
written before the option groups existed kept those options as top-level fields
(``seq_len: 50``); they are read into ``data_options`` (and ``cfg.seq_len`` still reads one, with a
deprecation warning: ``cfg.option("seq_len")``). The resolved config is written to
``RUN_DIR/config.yaml``, which ``evaluate`` and ``sample`` read back to rebuild the model.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple, Union

from .fields import check_positive_int, coerce_fields

__all__ = ["TrainConfig", "load_config", "save_config", "config_for_resume", "merge_fields", "RESUME_SAFE_FIELDS",
           "data_label", "annealing_schedule"]

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
    max_sequences: Optional[int] = None  # keep only the first N sequences of each split (quick checks)
    # the datasets' option groups (pyro_dssm.data.catalog): speech STFT, Monash series, MIDI folders,
    # irregular sampling; e.g. {stft_n_fft: 1024, seq_len: 50}. Unset options take their group's default.
    data_options: Dict[str, Any] = field(default_factory=dict)
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
                    "val_every", "eval_particles", "num_buckets", "num_nodes"]
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
        v = self.max_sequences
        if v is not None and (not isinstance(v, int) or v < 1):
            raise ValueError(f"max_sequences must be a positive integer or null, got {v!r}")
        from .data.registry import check_data_options

        self.data_options = check_data_options(self.data_options, "config")  # each group checks its own values
        if self.iaf and self.iaf_dim < self.z_dim:
            raise ValueError(f"iaf_dim={self.iaf_dim} < z_dim={self.z_dim}: an IAF's hidden width must be at "
                             "least z_dim (pyro's AutoRegressiveNN); lower z_dim or raise iaf_dim")

    def __getattr__(self, name: str) -> Any:
        """``cfg.seq_len`` and the other data options, as before they moved into ``data_options``
        (deprecated: :meth:`option`)."""
        if not name.startswith("_"):
            from .data.registry import option_fields

            if name in option_fields():
                import warnings

                warnings.warn(f"TrainConfig.{name} is a data option since the option groups: read it with "
                              f"cfg.option({name!r})", DeprecationWarning, stacklevel=2)
                return self.option(name)
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    def option(self, name: str) -> Any:
        """The data option ``name`` (e.g. ``"stft_n_fft"``): ``data_options``' entry, else its group's default."""
        from .data.registry import option_default

        return self.data_options[name] if name in self.data_options else option_default(name)

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
        """A config from a mapping of fields; data options written as top-level fields (configs and runs
        from before the option groups) are read into ``data_options``."""
        d = _nest_data_options(d, where, keep_defaults=False)
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - names)
        if unknown:
            raise ValueError(f"{where}: unknown field(s) {unknown}; known fields: {sorted(names)} and the data "
                             "options of pyro_dssm.data.registry")
        return cls(**d)

    def replace(self, **changes) -> "TrainConfig":
        """A copy with ``changes``: fields, or data options by name (``replace(max_files=None)``)."""
        return self.from_dict(merge_fields(self.to_dict(), changes))


def _nest_data_options(d: Dict[str, Any], where: str, keep_defaults: bool = True) -> Dict[str, Any]:
    """``d`` with its top-level data options (``seq_len: 50``) moved into ``data_options``. A run saved
    before the option groups kept every option, most at their defaults: ``keep_defaults=False`` drops
    those, so that the config names only what was set."""
    from .data.registry import option_default, option_fields

    known = option_fields()
    flat = {k: v for k, v in d.items() if k in known}
    if not flat:
        return d
    out = {k: v for k, v in d.items() if k not in known}
    nested = dict(out.get("data_options") or {})
    for k, v in flat.items():
        if k in nested and nested[k] != v:
            raise ValueError(f"{where}: data option {k!r} is given twice, as {v!r} and in data_options as "
                             f"{nested[k]!r}")
        if keep_defaults or v != option_default(k):
            nested[k] = v
    out["data_options"] = nested
    return out


def merge_fields(base: Dict[str, Any], over: Dict[str, Any], where: str = "config") -> Dict[str, Any]:
    """Fields ``over`` laid over ``base`` (both as :meth:`TrainConfig.from_dict` takes them): the mappings
    ``model_options`` and ``data_options`` merge entry by entry, top-level data options included."""
    base, over = _nest_data_options(dict(base), where), _nest_data_options(dict(over), where)
    out = {**base, **over}
    for key in ("model_options", "data_options"):
        if key in base or key in over:
            out[key] = {**(base.get(key) or {}), **(over.get(key) or {})}
    return out


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


def _flag(name: str) -> str:
    return "--model-option" if name == "model_options" else "--" + name.replace("_", "-")


def _changes(saved: TrainConfig, resumed: TrainConfig) -> List[Tuple[str, Any, Any]]:
    """``(name, saved value, resumed value)`` of each field, or data option, that a resume would change."""
    from .data.registry import option_fields

    out = [(f.name, getattr(saved, f.name), getattr(resumed, f.name)) for f in dataclasses.fields(TrainConfig)
           if f.name not in RESUME_SAFE_FIELDS | {"data_options"} and getattr(resumed, f.name) != getattr(saved, f.name)]
    return out + [(n, saved.option(n), resumed.option(n)) for n in option_fields()
                  if saved.option(n) != resumed.option(n)]


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
        given.pop("emission", None)
    resumed = saved.replace(**given)  # model_options and data_options merge entry by entry
    changed = _changes(saved, resumed)
    if changed:
        lines = [f"  {_flag(n)}: {a!r} in the run, {b!r} now" for n, a, b in changed]
        raise ValueError(f"cannot resume {where} with a different configuration:\n" + "\n".join(lines) + "\n"
                         "A resume continues the run as its config.yaml says; only "
                         + ", ".join(_flag(n) for n in sorted(RESUME_SAFE_FIELDS - {"out"}))
                         + " may change. To train with other settings, start a new run with another --out.")
    return resumed
