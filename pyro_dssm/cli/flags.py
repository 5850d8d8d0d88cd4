"""The run configuration's command-line flags: one per :class:`~pyro_dssm.config.TrainConfig` field
(``z_dim`` -> ``--z-dim``) and one per data option (``seq_len`` -> ``--seq-len``, grouped by
option group in ``--help``), read back as fields; and the reverse, fields as flags
(:func:`config_flags`, for the experiment runner and the model cards' retrain commands).
"""

from __future__ import annotations

import dataclasses
from typing import Any, Dict, List

from ..config import TrainConfig, _nest_data_options, load_config, merge_fields

__all__ = ["add_config_arguments", "given_fields", "resolve_config", "config_flags"]


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
    "max_sequences": "keep only the first N sequences of each split, for quick checks (default: all)",
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
        from ..models import list_models

        text = text.format(models=", ".join(list_models()))
    if "{datasets}" in text:
        from ..data.registry import _FORMATS, list_datasets

        text = text.format(datasets=", ".join(list_datasets()),
                           formats=", ".join(f.description for f in _FORMATS[:-1]) + " or " + _FORMATS[-1].description)
    if "{emissions}" in text:
        from ..nn.emissions import list_emissions

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
        if f.name == "data_options":
            _add_data_option_arguments(parser)
            continue
        flag = "--" + f.name.replace("_", "-")
        default = f.default
        kw: Dict[str, Any] = {"dest": f.name, "default": argparse.SUPPRESS, "help": _help(f.name, default)}
        if isinstance(default, bool):
            kw["action"] = argparse.BooleanOptionalAction
        elif f.name == "devices":
            kw["type"] = str
        elif isinstance(default, int) or f.name == "max_sequences":
            kw["type"] = int
        elif isinstance(default, float):
            kw["type"] = float
        parser.add_argument(flag, **kw)


_DATA_OPTION = "data_option:"  # argparse dest prefix of the data options' flags


def _add_data_option_arguments(parser) -> None:
    """One flag per data option (``seq_len`` -> ``--seq-len``), grouped by option group in ``--help``."""
    import argparse
    import typing

    from ..data.registry import option_groups

    for cls in option_groups():
        title = (cls.__doc__ or cls.__name__).strip().splitlines()[0].rstrip(".")
        group = parser.add_argument_group(f"data options: {title}")
        hints = typing.get_type_hints(cls)
        for f in dataclasses.fields(cls):
            tp = hints.get(f.name)
            args = [a for a in typing.get_args(tp) if a is not type(None)] if typing.get_origin(tp) else [tp]
            kw: Dict[str, Any] = {"dest": _DATA_OPTION + f.name, "default": argparse.SUPPRESS}
            if not (args and args[0] is bool):
                kw["metavar"] = f.name.upper()
            text = f.metadata.get("help", "")
            if args and args[0] is bool:
                kw["action"] = argparse.BooleanOptionalAction
                kw["help"] = f"{text} (default: {'on' if f.default else 'off'})"
            else:
                kw["type"] = args[0] if args and args[0] in (int, float, str) else str
                kw["help"] = text if "default" in text or f.default is None else f"{text} (default: {f.default})"
            group.add_argument("--" + f.name.replace("_", "-"), **kw)


def _parse_value(text: str):
    import yaml

    return yaml.safe_load(text)


def _flag_value(v: Any) -> str:
    """``v`` as flag text that parses back to ``v`` (plain where YAML reads it back, else JSON)."""
    import json

    text = str(v)
    try:
        if _parse_value(text) == v:
            return text
    except Exception:  # noqa: BLE001  (text YAML cannot read: quote it)
        pass
    return json.dumps(v)


def config_flags(values: Dict[str, Any]) -> List[str]:
    """Config fields as ``pyro-dssm train`` flags: ``{"batch_size": 20, "progress": False, "seq_len": 20}``
    -> ``["--batch-size", "20", "--no-progress", "--seq-len", "20"]``; ``model_options`` and
    ``data_options`` become one flag per entry."""
    out: List[str] = []
    for k, v in values.items():
        if k == "model_options":
            out += [a for kk, vv in (v or {}).items() for a in ("--model-option", f"{kk}={_flag_value(vv)}")]
        elif k == "data_options":
            out += config_flags(dict(v or {}))
        elif isinstance(v, bool):
            out.append(("--" if v else "--no-") + k.replace("_", "-"))
        else:
            out += ["--" + k.replace("_", "-"), str(v)]
    return out


def given_fields(args) -> Dict[str, Any]:
    """The fields a command line sets: ``args.config`` (a YAML file) overridden by the flags given explicitly."""
    fields = {f.name for f in dataclasses.fields(TrainConfig)}
    values: Dict[str, Any] = {}
    if getattr(args, "config", None):
        values.update(_nest_data_options(load_config(args.config), args.config, keep_defaults=False))
    given = {k: v for k, v in vars(args).items() if k in fields}
    data_options = {k[len(_DATA_OPTION):]: v for k, v in vars(args).items() if k.startswith(_DATA_OPTION)}
    if data_options:
        values = merge_fields(values, {"data_options": data_options})
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
