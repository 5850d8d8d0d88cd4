"""Pretrained models shipped with the package, each with a model card.

A pretrained model is two files in this folder: ``NAME.pt`` (the run's resolved
config and the model's and guide's weights, read with ``torch.load(weights_only=True)``)
and ``NAME.json``, its card: data and split, config, epochs, wall time, test scores,
and the command that retrains it. ::

    import pyro_dssm
    pyro_dssm.list_pretrained()                       # ['arssm-full-bach', ...]
    model, guide = pyro_dssm.load_pretrained("arssm-full-bach")
    x, z = model.generate(32, batch_size=4)           # or evaluate, or go on with SVI
    pyro_dssm.pretrained_card("arssm-full-bach")["test"]

``scripts/evaluate.py`` and ``scripts/sample.py`` take a pretrained name wherever they
take a run directory. :func:`export_pretrained` turns a finished run into such a pair.

A speech model's card also carries its run's Table I scores (``card["resynthesis"]``) and,
since its corpus is not installed with the package, the scores of the shipped clips that
were in its test split (``card["shipped_clips"]``, :func:`shipped_clip_scores`), which
anyone can recompute offline.
"""

from __future__ import annotations

import dataclasses
import json
import platform
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple, Union

import torch

__all__ = ["PRETRAINED_DIR", "list_pretrained", "pretrained_card", "load_pretrained", "load_pretrained_run",
           "export_pretrained", "retrain_command", "shipped_clip_scores"]

#: Where the shipped weights and cards live.
PRETRAINED_DIR = Path(__file__).resolve().parent


def _root(root: Optional[Union[str, Path]]) -> Path:
    return Path(root) if root is not None else PRETRAINED_DIR


def list_pretrained(root: Optional[Union[str, Path]] = None) -> List[str]:
    """Names of the pretrained models (those with both ``NAME.pt`` and ``NAME.json``), sorted."""
    d = _root(root)
    return sorted(p.stem for p in d.glob("*.pt") if (d / f"{p.stem}.json").is_file())


def _paths(name: str, root) -> Tuple[Path, Path]:
    if not isinstance(name, str) or name not in list_pretrained(root):
        raise ValueError(f"unknown pretrained model {name!r}; available: {list_pretrained(root) or 'none'}")
    d = _root(root)
    return d / f"{name}.pt", d / f"{name}.json"


def pretrained_card(name: str, root: Optional[Union[str, Path]] = None) -> Dict[str, Any]:
    """The model card of ``name`` as a dict (see the module docstring)."""
    return json.loads(_paths(name, root)[1].read_text())


def _load(name: str, root):
    from ..config import TrainConfig
    from ..training.engine import build_model_and_guide

    path, _ = _paths(name, root)
    try:
        blob = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - a damaged file raises many kinds
        raise ValueError(f"pretrained weights {path} are corrupt ({type(e).__name__}: {e})") from e
    cfg = TrainConfig.from_dict(blob["config"])
    model, guide = build_model_and_guide(cfg, int(blob["x_dim"]), blob["emission"])
    model.load_state_dict(blob["model"])
    guide.load_state_dict(blob["guide"])
    model.eval(), guide.eval()
    return cfg, model, guide


def load_pretrained(name: str, root: Optional[Union[str, Path]] = None):
    """``(model, guide)`` of a pretrained model, in eval mode, ready for ``generate``, evaluation or more SVI.

    Both are the package's own ``PyroModule``s with module-local parameters: pass them to
    ``pyro.infer.SVI`` (call ``.train()`` first to train on), or use ``model.generate``.
    """
    _, model, guide = _load(name, root)
    return model, guide


def load_pretrained_run(name: str, root: Optional[Union[str, Path]] = None):
    """``(cfg, corpus, model, guide)`` like :func:`~pyro_dssm.training.load_run`: the card's data rebuilt too."""
    from ..training.engine import build_corpus

    cfg, model, guide = _load(name, root)
    return cfg, build_corpus(cfg), model, guide


def _shipped_test_clips(corpus) -> List[str]:
    """The clips shipped with the package (``pyro_dssm/data/assets/speech``) that lie in ``corpus``'s test split."""
    from ..data.speech import SHIPPED_SPEECH

    return sorted({Path(f).name for f in corpus.files.get("test", []) if (SHIPPED_SPEECH / Path(f).name).is_file()})


def shipped_clip_scores(model, guide, cfg, clips, *, seed: int = 0) -> Dict[str, Any]:
    """A speech model's scores on clips shipped with the package: what its card records and a test redraws.

    A speech corpus (the 551-prompt Asterisk corpus, LibriSpeech) is not installed with the package,
    so a speech model's card also scores the shipped clips that were in its *test* split, which
    anyone can recompute offline. Each clip is read with the run's own pre-processing (its
    ``cfg`` data options: sample rate, STFT, trimming), scored by the negative ELBO per frame
    (``cfg.eval_particles`` particles, seed ``cfg.seed``) and resynthesised in teacher-forcing
    mode with latents sampled from the guide (seed ``seed``; :mod:`pyro_dssm.resynthesis`).

    Args:
        clips: file names in ``pyro_dssm/data/assets/speech`` (e.g. ``"vm-helpexit.flac"``).

    Returns:
        ``{"clips", "frames", "nelbo_per_step", "seed", "per_clip": {name: {si_sdr, pesq_wb, estoi}},
        "mean": {si_sdr, pesq_wb, estoi}}``.
    """
    import numpy as np

    from ..data.catalog import SpeechOptions
    from ..data.registry import dataset_options
    from ..data.speech import SHIPPED_SPEECH, load_utterances
    from ..resynthesis import analysis_resynthesis, score_resynthesis
    from ..training.engine import evaluate_split

    clips = list(clips)
    if not clips:
        raise ValueError("no shipped clips to score")
    opts = dataset_options(SpeechOptions, cfg.data_options)
    stft = opts.stft()
    waves, power = load_utterances([SHIPPED_SPEECH / c for c in clips], stft, opts.trim_db)
    elbo = evaluate_split(model, guide, power, batch_size=len(power), elbo_particles=cfg.eval_particles,
                          iwae_particles=0, seed=cfg.seed)
    items = analysis_resynthesis(model, guide, waves, power, stft, latents="sample", seed=seed)
    per_clip = {c: score_resynthesis(it["wave"], it["estimate"], stft.sample_rate) for c, it in zip(clips, items)}
    mean = {k: float(np.nanmean([v[k] for v in per_clip.values()])) for k in ("si_sdr", "pesq_wb", "estoi")}
    return {"clips": clips, "frames": int(sum(len(p) for p in power)), "nelbo_per_step": elbo["nelbo_per_step"],
            "seed": seed, "per_clip": per_clip, "mean": mean}


_FLAG_SKIP = {"out", "progress", "emission", "accelerator", "devices", "num_nodes", "strategy", "num_workers"}


def retrain_command(cfg) -> str:
    """``python scripts/train.py ...`` with every field (and data option) of ``cfg`` that differs from the
    defaults."""
    import shlex

    from ..cli.flags import config_flags
    from ..config import TrainConfig

    default = TrainConfig()
    changed = {f.name: getattr(cfg, f.name) for f in dataclasses.fields(TrainConfig)
               if f.name not in _FLAG_SKIP and getattr(cfg, f.name) != getattr(default, f.name)}
    if "data_options" in changed:
        changed["data_options"] = {k: v for k, v in cfg.data_options.items() if v != default.option(k)}
    flags = config_flags({"model": cfg.model, "guide": cfg.guide, **changed})
    return " ".join(["python scripts/train.py", *map(shlex.quote, flags)])


def export_pretrained(run_dir: Union[str, Path], name: str, *, dest: Optional[Union[str, Path]] = None,
                      checkpoint: str = "best", notes: str = "", half: bool = False) -> Tuple[Path, Path]:
    """Turn a finished run into ``NAME.pt`` and ``NAME.json`` in ``dest`` (default: the shipped folder).

    The card's test scores are evaluated afresh from the exported weights (test split, the
    run's ``eval_particles`` and seed, IWAE with K = 100 for sequence data), so that
    :func:`load_pretrained` reproduces them exactly. ``half=True`` stores the weights in
    float16 (half the size; they load into the float32 model) and scores those rounded
    weights. Returns the two paths.
    """
    import pyro

    from ..training.engine import evaluate_split, load_run, training_history
    from ..training.runs import RunDir
    from ..utils import atomic_write_bytes, atomic_write_text

    if not name or "/" in name or name.startswith("."):
        raise ValueError(f"a pretrained name is a plain file stem, got {name!r}")
    run_dir = Path(run_dir)
    cfg, corpus, model, guide = load_run(run_dir, checkpoint)
    cfg_dict = {**cfg.to_dict(), "out": None, "progress": False, "jit": False}
    import io

    def stored(module):
        return {k: v.half() if half and v.is_floating_point() else v for k, v in module.state_dict().items()}

    states = {"model": stored(model), "guide": stored(guide)}
    if half:  # the card scores what is shipped: the rounded weights
        model.load_state_dict(states["model"])
        guide.load_state_dict(states["guide"])
    buf = io.BytesIO()
    torch.save({"config": cfg_dict, "x_dim": corpus.x_dim, "emission": cfg.emission, **states}, buf)
    dest = _root(dest)
    dest.mkdir(parents=True, exist_ok=True)
    weights, card_path = dest / f"{name}.pt", dest / f"{name}.json"
    atomic_write_bytes(weights, buf.getvalue())
    iwae = 0 if corpus.kind == "speech" else 100
    test = evaluate_split(model, guide, corpus.splits["test"], batch_size=cfg.batch_size,
                          elbo_particles=cfg.eval_particles, iwae_particles=iwae, seed=cfg.seed)
    test.pop("per_sequence")
    metrics = RunDir(run_dir).metrics() or {}
    history = training_history(run_dir)
    card = {
        "name": name, "model": cfg.model, "guide": cfg.guide, "iaf": cfg.iaf,
        "data": {"name": corpus.name, "kind": corpus.kind, "x_dim": corpus.x_dim, "emission": cfg.emission,
                 "split": {s: len(corpus.splits[s]) for s in corpus.splits}, "steps": {
                     s: int(sum(len(q) for q in corpus.splits[s])) for s in corpus.splits}},
        "config": cfg_dict,
        "parameters": {"model": sum(p.numel() for p in model.parameters()),
                       "guide": sum(p.numel() for p in guide.parameters())},
        "epochs": metrics.get("epochs_run", len(history.get("epoch", []))),
        "checkpoint": checkpoint if (run_dir / "checkpoints" / f"{checkpoint}.ckpt").is_file() else "last",
        "best_val_nelbo_per_step": metrics.get("best_val_nelbo_per_step"),
        "train_seconds": metrics.get("train_seconds"),
        "test": test,
        "command": retrain_command(cfg),
        "evaluated_with": {"torch": torch.__version__, "pyro": pyro.__version__, "python": platform.python_version()},
        "notes": notes,
        "weights_dtype": "float16" if half else "float32",
    }
    s = RunDir(run_dir).samples("test")  # pyro-dssm evaluate --sample-stats: prior samples against the data
    if s:
        card["samples"] = {"prior": s["samples"], "data": s["real"], "split": s.get("split", "test")}
    if corpus.kind == "speech":
        for split in ("test", "train"):  # Table I's scores of the run (evaluate, resynthesis with sampled latents)
            res = RunDir(run_dir).resynthesis("sample", split)
            if res:
                card.setdefault("resynthesis", {})[split] = {k: res.get(k) for k in (
                    "utterances", "latents", "metrics", "not_scored", "pesq_mode", "estoi", "seed")}
        clips = _shipped_test_clips(corpus)
        if clips:  # offline-reproducible scores: the shipped clips of the test split
            card["shipped_clips"] = shipped_clip_scores(model, guide, cfg, clips, seed=cfg.seed)
    for key, mean in (("sample", False), ("mean", True)):  # evaluate --generation [--sample-mean]
        gen = RunDir(run_dir).generation(mean)
        if gen:
            card.setdefault("generation", {})[key] = {k: gen.get(k) for k in (
                "split", "generated", "length", "seed", "probe_epochs", "output", "scores", "crossing")}
    atomic_write_text(card_path, json.dumps(card, indent=2) + "\n")
    return weights, card_path
