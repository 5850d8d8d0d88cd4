"""Paper experiments as data: a grid of run configs x seeds, trained, evaluated and tabulated by one command.

An experiment file (``configs/experiments/*.yaml``) names the run configs (globs
under the repository), the seeds, the evaluation passes and named *profiles*:
overrides of the run configs for a given budget (``paper``: none, the papers'
protocol; ``cpu``: what fits in a CPU session). ``scripts/reproduce.py FILE``
trains every (config, seed) pair into ``OUT/PROFILE/CONFIG/seedS`` through
``pyro-dssm train`` (a finished run is skipped, an interrupted one resumed),
evaluates it through ``pyro-dssm evaluate`` (skipped when its output exists),
then writes ``OUT/PROFILE/results.json`` (every run's numbers, wall times and the
machine) and ``OUT/PROFILE/table.md`` (mean ± std over seeds, beside the papers'
numbers where they exist).

Example file::

    name: music-bach
    kind: music                       # music | speech | generation | oracle
    configs: [configs/music/bach/*.yaml]
    seeds: [0, 1, 2]
    evaluate:                         # each pass: evaluate.py arguments and the file it writes
      - {args: [--iwae, "100"], output: eval_test.json}
    profiles:
      paper: {}
      cpu: {epochs: 20, batch_size: 20, lr: 0.003}   # per_config: {STEM: {...}} for some configs only
    out: runs/experiments/music-bach

``baselines: [independent_keys, gru]`` (music) adds reference rows: 88 independent keys, and a GRU
language model of the run configs' width trained with the profile's recipe to its best validation
NLL (:mod:`pyro_dssm.baselines`), one per seed.

``kind: oracle`` experiments train no run configs: they call
:func:`pyro_dssm.oracle.oracle_experiment` with the file's ``oracle`` settings.
"""

from __future__ import annotations

import glob
import json
import math
import os
import platform
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence, Union

from .metrics.stats import mean_std

__all__ = ["KINDS", "Experiment", "RunPlan", "load_experiment", "plan_runs", "execute", "collect", "aggregate",
           "render_table", "render_times", "machine_info", "mean_std", "REPO_ROOT", "BASELINES", "run_baselines",
           "baseline_settings", "compare", "music_claims", "render_claims", "run_record"]

def _repo_root() -> Path:
    """Where run-config globs and ``out`` folders are resolved: the checkout this package lives in,
    or (an installed package, which ships no ``configs/``) the current directory."""
    here = Path(__file__).resolve().parent.parent
    return here if (here / "configs").is_dir() else Path.cwd()


REPO_ROOT = _repo_root()
KINDS = ("music", "speech", "generation", "oracle")
#: reference rows of the music table (:mod:`pyro_dssm.baselines`)
BASELINES = ("independent_keys", "gru")


@dataclass
class Experiment:
    """One experiment file (see the module docstring)."""

    name: str
    kind: str
    out: str
    configs: List[str] = field(default_factory=list)
    seeds: List[int] = field(default_factory=lambda: [0])
    evaluate: List[Dict[str, Any]] = field(default_factory=list)
    profiles: Dict[str, Dict[str, Any]] = field(default_factory=lambda: {"paper": {}})
    description: str = ""
    oracle: Dict[str, Any] = field(default_factory=dict)
    baselines: List[str] = field(default_factory=list)
    path: Optional[str] = None

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(f"{self.path or self.name}: unknown experiment kind {self.kind!r}; one of {KINDS}")
        if not self.seeds or not all(isinstance(s, int) and s >= 0 for s in self.seeds):
            raise ValueError(f"{self.path or self.name}: seeds must be a non-empty list of integers >= 0, "
                             f"got {self.seeds!r}")
        if self.kind != "oracle" and not self.configs:
            raise ValueError(f"{self.path or self.name}: a {self.kind} experiment needs run configs (configs:)")
        for e in self.evaluate:
            if not isinstance(e, dict) or set(e) - {"args", "output"} or "output" not in e:
                raise ValueError(f"{self.path or self.name}: each evaluate entry is {{args: [...], output: FILE}}, "
                                 f"got {e!r}")
        if not self.profiles:
            raise ValueError(f"{self.path or self.name}: needs at least one profile")
        unknown = sorted(set(self.baselines) - set(BASELINES))
        if unknown:
            raise ValueError(f"{self.path or self.name}: unknown baseline(s) {unknown}; known: {list(BASELINES)}")
        if self.baselines and self.kind != "music":
            raise ValueError(f"{self.path or self.name}: baselines are rows of the music table (kind: music)")

    def profile(self, name: str, config: Optional[str] = None) -> Dict[str, Any]:
        """The overrides of profile ``name``; with ``config`` (a file stem), merged with its ``per_config`` entry.

        A profile may hold ``per_config: {STEM: {...}}`` for overrides that only some run
        configs take (e.g. LS4's model options in an LS4-against-VRNN experiment).
        """
        if name not in self.profiles:
            raise ValueError(f"experiment {self.name!r} has no profile {name!r}; it has {sorted(self.profiles)}")
        common = dict(self.profiles[name] or {})
        per = common.pop("per_config", None) or {}
        if config is None:
            return common
        extra = dict(per.get(config) or {})
        if "model_options" in common and "model_options" in extra:
            extra["model_options"] = {**common["model_options"], **extra["model_options"]}
        return {**common, **extra}

    def out_dir(self, profile: str, root: Union[str, os.PathLike] = REPO_ROOT) -> Path:
        return Path(root) / self.out / profile

    def config_files(self, root: Union[str, os.PathLike] = REPO_ROOT) -> List[Path]:
        files: List[Path] = []
        for pattern in self.configs:
            found = sorted(Path(p) for p in glob.glob(str(Path(root) / pattern)))
            if not found:
                raise FileNotFoundError(f"{self.path or self.name}: no config matches {pattern!r} under {root}")
            files += [f for f in found if f not in files]
        return files


def load_experiment(path: Union[str, os.PathLike]) -> Experiment:
    """Read and check an experiment file."""
    import yaml

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no experiment file {path} (see configs/experiments/)")
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as e:
        raise ValueError(f"{path} is not valid YAML: {e}") from None
    if not isinstance(raw, dict):
        raise ValueError(f"{path} must hold a mapping of experiment fields")
    known = set(Experiment.__dataclass_fields__) - {"path"}
    unknown = set(raw) - known
    if unknown:
        raise ValueError(f"{path}: unknown field(s) {sorted(unknown)}; known: {sorted(known)}")
    missing = {"name", "kind", "out"} - set(raw)
    if missing:
        raise ValueError(f"{path}: missing field(s) {sorted(missing)}")
    return Experiment(**raw, path=str(path))


def _flags(overrides: Dict[str, Any]) -> List[str]:
    """``{"batch_size": 20, "progress": False}`` -> ``["--batch-size", "20", "--no-progress"]``."""
    out: List[str] = []
    for k, v in overrides.items():
        flag = "--" + k.replace("_", "-")
        if isinstance(v, bool):
            out.append(flag if v else "--no-" + k.replace("_", "-"))
        elif k == "model_options":
            out += [a for kk, vv in v.items() for a in ("--model-option", f"{kk}={json.dumps(vv)}")]
        else:
            out += [flag, str(v)]
    return out


@dataclass
class RunPlan:
    """One (config, seed) pair: where it runs and the commands that train and evaluate it."""

    config: Path
    seed: int
    run_dir: Path
    train_args: List[str]
    evaluations: List[Dict[str, Any]]

    @property
    def key(self) -> str:
        return f"{self.config.stem}/seed{self.seed}"

    @property
    def trained(self) -> bool:
        from .training.runs import RunDir

        return RunDir(self.run_dir).finished

    def train_command(self) -> List[str]:
        resume = ["--resume"] if (self.run_dir / "checkpoints" / "last.ckpt").is_file() else []
        return [sys.executable, "-m", "pyro_dssm", "train", *self.train_args, *resume]

    def pending_evaluations(self) -> List[List[str]]:
        return [[sys.executable, "-m", "pyro_dssm", "evaluate", str(self.run_dir),
                 *[str(a) for a in e.get("args", [])]]
                for e in self.evaluations if not (self.run_dir / e["output"]).is_file()]


def plan_runs(exp: Experiment, profile: str, *, seeds: Optional[Sequence[int]] = None,
              only: Optional[Sequence[str]] = None, root: Union[str, os.PathLike] = REPO_ROOT) -> List[RunPlan]:
    """Every (config, seed) run of ``exp`` under ``profile``'s overrides (``only``: config stems to keep)."""
    exp.profile(profile)  # an unknown profile is named before anything else
    out = exp.out_dir(profile, root)
    files = exp.config_files(root)
    per = (exp.profiles[profile] or {}).get("per_config") or {}
    unknown = sorted(set(per) - {f.stem for f in files})
    if unknown:
        raise ValueError(f"{exp.path or exp.name}: profile {profile!r} has per_config entries {unknown} that name no "
                         f"run config; there are {sorted(f.stem for f in files)}")
    if only:
        stems = {f.stem for f in files}
        unknown = sorted(set(only) - stems)
        if unknown:
            raise ValueError(f"--only: no config named {unknown} in {exp.name}; there are {sorted(stems)}")
        files = [f for f in files if f.stem in only]
    plans = []
    for s in seeds if seeds is not None else exp.seeds:  # seed-major: a cut-short run still covers every config
        for f in files:
            run_dir = out / f.stem / f"seed{s}"
            args = ["--config", str(f), *_flags(exp.profile(profile, f.stem)), "--seed", str(s), "--out",
                    str(run_dir), "--no-progress"]
            plans.append(RunPlan(f, s, run_dir, args, list(exp.evaluate)))
    return plans


def _run_logged(cmd: List[str], log_path: Path, env: Dict[str, str]) -> int:
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "a") as f:
        f.write(f"$ {' '.join(cmd)}\n")
        f.flush()
        return subprocess.call(cmd, stdout=f, stderr=subprocess.STDOUT, env=env, cwd=str(REPO_ROOT))


def execute(plans: Sequence[RunPlan], *, jobs: int = 1, log_dir: Union[str, os.PathLike],
            log: Callable[[str], None] = print) -> Dict[str, str]:
    """Train then evaluate every plan, ``jobs`` at a time; returns ``{key: "ok" | error}``.

    Each process gets ``OMP_NUM_THREADS = cores // jobs`` (unless set), so parallel runs
    don't fight over the cores. Output goes to ``log_dir/CONFIG-seedS.log``.
    """
    if jobs < 1:
        raise ValueError(f"jobs must be >= 1, got {jobs}")
    env = dict(os.environ)
    env.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // jobs)))
    log_dir = Path(log_dir)
    status: Dict[str, str] = {}
    lock = threading.Lock()
    say = log

    def log(msg: str) -> None:  # whole lines from parallel runs
        with lock:
            say(msg)

    def one(p: RunPlan) -> None:
        logf = log_dir / f"{p.config.stem}-seed{p.seed}.log"
        t0 = time.time()
        if p.trained and not p.pending_evaluations():
            status[p.key] = "ok"
            log(f"[skip ] {p.key}: finished before")
            return
        if not p.trained:
            log(f"[train] {p.key}")
            if _run_logged(p.train_command(), logf, env) != 0 or not p.trained:
                status[p.key] = f"training failed (see {logf})"
                log(f"[fail ] {p.key}: {status[p.key]}")
                return
        for cmd in p.pending_evaluations():
            log(f"[eval ] {p.key}: {' '.join(cmd[5:]) or 'defaults'}")
            if _run_logged(cmd, logf, env) != 0:
                status[p.key] = f"evaluation failed (see {logf})"
                log(f"[fail ] {p.key}: {status[p.key]}")
                return
        status[p.key] = "ok"
        log(f"[done ] {p.key} ({time.time() - t0:.0f} s)")

    with ThreadPoolExecutor(max_workers=jobs) as pool:
        list(pool.map(one, plans))
    return status


def machine_info() -> Dict[str, Any]:
    """The machine a table was measured on: CPU, cores, memory, GPU, library versions."""
    import torch

    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    info = {"cpu": cpu, "cores": os.cpu_count(), "python": platform.python_version(), "torch": torch.__version__,
            "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None}
    try:
        import pyro

        info["pyro"] = pyro.__version__
    except ImportError:
        pass
    try:
        pages, size = os.sysconf("SC_PHYS_PAGES"), os.sysconf("SC_PAGE_SIZE")
        info["memory_gib"] = round(pages * size / 2 ** 30, 1)
    except (ValueError, OSError, AttributeError):
        pass
    return info


def _read_json(path: Path) -> Optional[Dict[str, Any]]:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def collect(plans: Sequence[RunPlan]) -> List[Dict[str, Any]]:
    """One record per finished run: its config, seed, training metrics and every evaluation file found."""
    records = []
    for p in plans:
        rec = run_record(p.run_dir)
        if rec is not None:
            records.append({"config": p.config.stem, "seed": p.seed, **rec})
    return records


def run_record(run_dir) -> Optional[Dict[str, Any]]:
    """A finished run's numbers (:class:`~pyro_dssm.training.runs.RunDir`'s files), flat for the tables;
    ``None`` for a run that has not finished training."""
    from .training.runs import RunDir

    run = RunDir(run_dir)
    metrics, cfg = run.metrics(), run.config()
    if metrics is None or cfg is None:
        return None
    rec: Dict[str, Any] = {"run_dir": str(run.path), "model": cfg["model"], "guide": cfg["guide"],
                           "iaf": cfg.get("iaf", 0), "data": metrics.get("data", cfg["data"]),
                           "epochs_run": metrics.get("epochs_run"), "train_seconds": metrics.get("train_seconds"),
                           "test_nelbo_per_step": metrics.get("test_nelbo_per_step")}
    for split in ("train", "valid", "test"):
        ev = run.evaluation(split)
        if ev:
            rec[f"eval_{split}"] = {k: ev.get(k) for k in ("nelbo_per_step", "nll_per_step", "seconds",
                                                            "iwae_particles", "elbo_particles")}
        for latents in ("sample", "mean"):
            summ = run.resynthesis(latents, split)
            if summ:
                rec[f"resynthesis_{latents}_{split}"] = {k: v["mean"] for k, v in summ["metrics"].items()}
                rec[f"resynthesis_{latents}_{split}_ci"] = {
                    k: [v["ci_low"], v["ci_high"]] for k, v in summ["metrics"].items()
                    if v.get("ci_low") is not None and v.get("ci_high") is not None}
    samples = run.samples("test")
    if samples:
        rec["samples_test"] = samples["samples"]
        rec["real_test"] = samples["real"]
    best = _best_epoch_kl(run.path)
    if best is not None:
        rec["val_kl_per_step"] = best
    gen = run.generation()
    if gen:
        scores = gen.get("scores", {})
        rec["generation"] = {k: scores[k] for k in ("marginal", "classification", "prediction") if k in scores}
    return rec


def _best_epoch_kl(run_dir: Path) -> Optional[float]:
    """The validation KL per step (nats) at the run's best validation epoch, if it logged one."""
    from .training import training_history

    try:
        h = training_history(run_dir)
    except (FileNotFoundError, ValueError, KeyError):
        return None
    pairs = [(v, k) for v, k in zip(h["val"], h["val_kl"]) if math.isfinite(v) and math.isfinite(k)]
    return min(pairs)[1] if pairs else None


def baseline_settings(exp: Experiment, profile: str, root: Union[str, os.PathLike] = REPO_ROOT) -> Dict[str, Any]:
    """The recipe of the GRU baseline: the first run config's data, width (``h_dim``) and optimiser,
    with the profile's overrides (the latent models' recipe)."""
    from .config import TrainConfig, load_config

    cfg = TrainConfig.from_dict({**load_config(exp.config_files(root)[0]), **exp.profile(profile)})
    return {"data": cfg.data, "width": cfg.h_dim, "lr": cfg.lr, "batch_size": cfg.batch_size,
            "clip_norm": cfg.clip_norm, "epochs": cfg.epochs, "patience": cfg.patience,
            "init_output": cfg.init_output}


def run_baselines(exp: Experiment, profile: str, *, seeds: Optional[Sequence[int]] = None, train: bool = True,
                  root: Union[str, os.PathLike] = REPO_ROOT, log: Callable[[str], None] = print
                  ) -> List[Dict[str, Any]]:
    """The experiment's baseline rows: one record per (baseline, seed), each kept in
    ``OUT/PROFILE/baselines/NAME-seedS.json`` so that it is computed once (``train=False``: only read)."""
    from .baselines import fit_gru_language_model, independent_keys_nll
    from .config import TrainConfig
    from .training.engine import build_corpus
    from .utils import atomic_write_text

    if not exp.baselines:
        return []
    settings = baseline_settings(exp, profile, root)
    out = exp.out_dir(profile, root) / "baselines"
    corpus, records = None, []
    for name in exp.baselines:
        for seed in ([0] if name == "independent_keys" else (seeds if seeds is not None else exp.seeds)):
            path = out / f"{name}-seed{seed}.json"
            rec = _read_json(path)
            if rec is None and train:
                corpus = corpus or build_corpus(TrainConfig(data=settings["data"]))
                log(f"[base ] {name}/seed{seed}")
                if name == "independent_keys":
                    rec = {"test_nll_per_step": independent_keys_nll(corpus.splits["train"], corpus.splits["test"])}
                else:
                    rec = fit_gru_language_model(corpus, seed=seed, **{k: v for k, v in settings.items()
                                                                       if k != "data"})
                rec.update(baseline=name, seed=seed, settings=settings)
                out.mkdir(parents=True, exist_ok=True)
                atomic_write_text(path, json.dumps(rec, indent=2))
            if rec is not None:
                records.append(rec)
    return records


def _get(rec: Dict[str, Any], dotted: str):
    cur: Any = rec
    for part in dotted.split("."):
        if not isinstance(cur, dict) or part not in cur:
            return None
        cur = cur[part]
    return cur


def aggregate(records: Sequence[Dict[str, Any]], fields: Sequence[str]) -> Dict[str, Dict[str, Any]]:
    """Per config: ``{field: mean_std(...)}`` over its seeds, plus model, guide, iaf and total wall time."""
    cells: Dict[str, Dict[str, Any]] = {}
    for rec in records:
        cell = cells.setdefault(rec["config"], {"model": rec["model"], "guide": rec["guide"], "iaf": rec["iaf"],
                                                "seeds": [], "_recs": []})
        cell["seeds"].append(rec["seed"])
        cell["_recs"].append(rec)
    for cell in cells.values():
        recs = cell.pop("_recs")
        if len(recs) == 1:  # one run: keep its per-utterance 95% intervals (speech)
            cell["_ci"] = {f"{split}.{k}": v for split in ("train", "test")
                           for k, v in (recs[0].get(f"resynthesis_sample_{split}_ci") or {}).items()}
        for f in fields:
            cell[f] = mean_std([_get(r, f) for r in recs])
        cell["train_seconds"] = sum(r.get("train_seconds") or 0.0 for r in recs)
        cell["epochs_run"] = mean_std([r.get("epochs_run") for r in recs])
    return cells


# -- tables --------------------------------------------------------------------------------------

#: Table II of the taxonomy paper, JSB column, "NLL (ELBO)": ArSSM reports the ELBO bound only
PAPER_MUSIC_JSB = {("arssm", "partial"): (None, 7.46), ("arssm", "full"): (None, 7.17)}
#: Table I of the taxonomy paper (LibriSpeech, test): (SI-SDR, PESQ, ESTOI) for (model, guide, IAF)
PAPER_SPEECH = {
    ("arssm", "partial", 0): (5.42, 1.69, 0.785), ("arssm", "full", 0): (5.132, 1.675, 0.795),
    ("srnn", "partial", 0): (4.99, 1.60, 0.783), ("srnn", "full", 0): (5.146, 1.667, 0.788),
    ("fssm", "partial", 0): (0.367, 1.17, 0.634), ("fssm", "full", 0): (1.46, 1.23, 0.691),
    ("vrnn", "partial", 0): (3.32, 1.25, 0.687), ("vrnn", "full", 0): (3.23, 1.19, 0.664),
    ("rssm", "partial", 0): (0.633, 1.18, 0.654), ("rssm", "full", 0): (0.787, 1.19, 0.663),
    ("arssm", "partial", 3): (5.24, 1.65, 0.791), ("arssm", "full", 3): (5.56, 1.70, 0.802),
    ("srnn", "partial", 3): (5.73, 1.70, 0.795), ("srnn", "full", 3): (4.31, 1.42, 0.770),
    ("fssm", "partial", 3): (1.44, 1.23, 0.688), ("fssm", "full", 3): (1.55, 1.25, 0.706),
    ("vrnn", "partial", 3): (2.09, 1.13, 0.601), ("vrnn", "full", 3): (2.80, 1.16, 0.623),
    ("rssm", "partial", 3): (1.30, 1.20, 0.665), ("rssm", "full", 3): (1.47, 1.20, 0.670),
}
MODEL_ORDER = ("arssm", "srnn", "vrnn", "fssm", "rssm", "dmm", "ls4")
NAMES = {"arssm": "ArSSM", "srnn": "SRNN", "vrnn": "VRNN", "fssm": "FSSM", "rssm": "RSSM", "dmm": "DMM",
         "ls4": "LS4"}


def _fmt(ms: Optional[Dict[str, float]], digits: int = 2) -> str:
    if not ms or not ms.get("n"):
        return "–"
    if ms["n"] == 1:
        return f"{ms['mean']:.{digits}f}"
    return f"{ms['mean']:.{digits}f} ± {ms['std']:.{digits}f}"


def _epochs(ms: Optional[Dict[str, float]]) -> str:
    return f"{ms['mean']:.0f}" if ms and ms.get("n") else "–"


def _row_keys(cells: Dict[str, Dict[str, Any]]):
    keys = sorted({(c["model"], c["iaf"]) for c in cells.values()},
                  key=lambda k: (k[1], MODEL_ORDER.index(k[0]) if k[0] in MODEL_ORDER else 99, k[0]))
    return keys


def _cell(cells, model, guide, iaf):
    for c in cells.values():
        if (c["model"], c["guide"], c["iaf"]) == (model, guide, iaf):
            return c
    return None


def _music_table(cells, baselines: Sequence[Dict[str, Any]] = ()) -> str:
    lines = ["| model | PA: −ELBO/step | PA: NLL/step (IWAE) | FA: −ELBO/step | FA: NLL/step (IWAE) "
             "| paper JSB (PA / FA, −ELBO) | seeds | epochs |",
             "|---|---|---|---|---|---|---|---|"]
    for model, iaf in _row_keys(cells):
        entries, seeds, epochs = [], set(), []
        for guide in ("partial", "full"):
            c = _cell(cells, model, guide, iaf)
            entries += [_fmt(c and c["eval_test.nelbo_per_step"]), _fmt(c and c["eval_test.nll_per_step"])]
            if c:
                seeds.add(len(c["seeds"]))
                epochs.append(_epochs(c["epochs_run"]))
        paper = [PAPER_MUSIC_JSB.get((model, g)) for g in ("partial", "full")] if not iaf else [None, None]
        ptxt = " / ".join(f"{p[1]:.2f}" if p else "–" for p in paper) if any(paper) else "–"
        name = NAMES.get(model, model) + (f" + {iaf} IAF" if iaf else "")
        lines.append(f"| {name} | " + " | ".join(entries) + f" | {ptxt} | {'/'.join(map(str, sorted(seeds)))} "
                     f"| {' / '.join(epochs)} |")
    for name, label in (("independent_keys", "independent keys (exact NLL)"), ("gru", "GRU language model")):
        recs = [b for b in baselines if b["baseline"] == name]
        if not recs:
            continue
        if name == "gru":
            label += (f", width {recs[0]['width']}" if recs[0].get("width") else "") + " (exact NLL)"
        nll = _fmt(mean_std([b["test_nll_per_step"] for b in recs]))
        epochs = _epochs(mean_std([b.get("epochs_run") for b in recs])) if name == "gru" else "–"
        lines.append(f"| {label} | – | {nll} | – | {nll} | – | {len(recs)} | {epochs} |")
    return "\n".join(lines)


def _sample_table(cells) -> str:
    """Prior samples' polyphony and held notes (against the data), and how much the posterior carries."""
    real = next((c["real_test.held_share"] for c in cells.values() if c["real_test.held_share"]["n"]), None)
    real_npf = next((c["real_test.notes_per_frame"] for c in cells.values()
                     if c["real_test.notes_per_frame"]["n"]), None)
    if real is None:
        return ""
    lines = [f"| model | held-note share PA / FA (data {real['mean']:.3f}) | notes per frame PA / FA "
             f"(data {real_npf['mean']:.2f}) | validation KL per step PA / FA (nats) |", "|---|---|---|---|"]
    for model, iaf in _row_keys(cells):
        cols = []
        for key, d in (("samples_test.held_share", 3), ("samples_test.notes_per_frame", 2), ("val_kl_per_step", 2)):
            pair = [_cell(cells, model, g, iaf) for g in ("partial", "full")]
            cols.append(" / ".join(_fmt(c and c[key], d) for c in pair))
        name = NAMES.get(model, model) + (f" + {iaf} IAF" if iaf else "")
        lines.append(f"| {name} | " + " | ".join(cols) + " |")
    return "\n".join(lines)


def _speech_table(cells) -> str:
    metrics = (("si_sdr", "SI-SDR (dB)", 2), ("pesq_wb", "PESQ-WB", 2), ("estoi", "ESTOI", 3))
    # one seed: mean [95% interval over the utterances]; several: mean ± std over seeds
    lines = ["| model | split | " + " | ".join(f"{h} PA / FA" for _, h, _ in metrics)
             + " | paper test (PA / FA): SI-SDR, PESQ, ESTOI |",
             "|---|---|" + "---|" * len(metrics) + "---|"]
    for model, iaf in _row_keys(cells):
        name = NAMES.get(model, model) + (f" + {iaf} IAF" if iaf else "")
        for split in ("train", "test"):
            entries = []
            for key, _, d in metrics:
                pair = []
                for guide in ("partial", "full"):
                    c = _cell(cells, model, guide, iaf)
                    text = _fmt(c and c.get(f"resynthesis_sample_{split}.{key}"), d)
                    ci = c and c.get("_ci", {}).get(f"{split}.{key}")
                    if ci and c[f"resynthesis_sample_{split}.{key}"]["n"] == 1:  # one run: its interval over utterances
                        text += f" [{ci[0]:.{d}f}, {ci[1]:.{d}f}]"
                    pair.append(text)
                entries.append(" / ".join(pair))
            paper = ""
            if split == "test":
                pp = [PAPER_SPEECH.get((model, g, iaf)) for g in ("partial", "full")]
                if all(pp):
                    paper = ", ".join(f"{a:g} / {b:g}" for a, b in zip(pp[0], pp[1]))
            lines.append(f"| {name} | {split} | " + " | ".join(entries) + f" | {paper or '–'} |")
    return "\n".join(lines)


def _generation_table(cells_by_data: Dict[str, Dict[str, Dict[str, Any]]]) -> str:
    lines = ["| data | model | Marginal ↓ | Class. ↑ | Prediction ↓ | seeds | epochs |",
             "|---|---|---|---|---|---|---|"]
    for data, cells in cells_by_data.items():
        # LS4 first: the model the table is about, then its baselines
        for c in sorted(cells.values(), key=lambda c: (c["model"] != "ls4", MODEL_ORDER.index(c["model"])
                                                        if c["model"] in MODEL_ORDER else 99)):
            lines.append(f"| {data} | {NAMES.get(c['model'], c['model'])} | "
                         f"{_fmt(c['generation.marginal'], 4)} | {_fmt(c['generation.classification'], 4)} | "
                         f"{_fmt(c['generation.prediction'], 4)} | {len(c['seeds'])} | {_epochs(c['epochs_run'])} |")
    return "\n".join(lines)


FIELDS = {
    "music": ("eval_test.nelbo_per_step", "eval_test.nll_per_step", "test_nelbo_per_step", "samples_test.held_share",
              "samples_test.notes_per_frame", "real_test.held_share", "real_test.notes_per_frame", "val_kl_per_step"),
    "speech": tuple(f"resynthesis_sample_{s}.{m}" for s in ("train", "test") for m in ("si_sdr", "pesq_wb", "estoi")),
    "generation": ("generation.marginal", "generation.classification", "generation.prediction"),
}


def render_table(kind: str, records: Sequence[Dict[str, Any]], baselines: Sequence[Dict[str, Any]] = ()) -> str:
    """The markdown table of an experiment's finished runs (mean ± std over seeds); for music with the
    baseline rows of :func:`run_baselines` and, when evaluated, a second table of prior samples."""
    if kind == "generation":
        by_data: Dict[str, List[Dict[str, Any]]] = {}
        for r in records:
            by_data.setdefault(r["data"], []).append(r)
        return _generation_table({d: aggregate(rs, FIELDS[kind]) for d, rs in by_data.items()})
    cells = aggregate(records, FIELDS[kind])
    if kind != "music":
        return _speech_table(cells)
    samples = _sample_table(cells)
    claims = render_claims(music_claims(records, baselines))
    return (_music_table(cells, baselines)
            + (f"\n\nPrior samples (as many as test chorales, of their lengths) and posterior use:\n\n{samples}"
               if samples else "")
            + "\n\nThe papers' claims, judged over seeds (gap: the second's score minus the first's, test −ELBO per "
              "step unless named; confirmed when the gap exceeds twice its standard error):\n\n" + claims)


def compare(better: Sequence[float], worse: Sequence[float], *, margin: float = 2.0) -> Dict[str, Any]:
    """Is ``mean(better) < mean(worse)`` (lower is better), beyond seed noise?

    ``diff = mean(worse) - mean(better)`` and its standard error from the two samples' standard
    deviations (a side with one seed borrows the other side's). The claim is ``confirmed`` when
    ``diff > margin * se``, ``contradicted`` when ``diff < -margin * se``, else ``within noise``;
    with one seed on both sides there is no noise estimate: ``one seed``.
    """
    a = [float(v) for v in better if v is not None and math.isfinite(float(v))]
    b = [float(v) for v in worse if v is not None and math.isfinite(float(v))]
    if not a or not b:
        return {"verdict": "not run", "diff": float("nan"), "se": float("nan"), "n": (len(a), len(b))}
    ma, mb = mean_std(a), mean_std(b)
    diff = mb["mean"] - ma["mean"]
    if len(a) < 2 and len(b) < 2:
        return {"verdict": "one seed", "diff": diff, "se": float("nan"), "n": (1, 1)}
    sa = ma["std"] if len(a) > 1 else mb["std"]
    sb = mb["std"] if len(b) > 1 else ma["std"]
    se = math.sqrt(sa ** 2 / len(a) + sb ** 2 / len(b))
    verdict = ("confirmed" if diff > margin * se else "contradicted" if diff < -margin * se else "within noise")
    return {"verdict": verdict, "diff": diff, "se": se, "n": (len(a), len(b))}


def music_claims(records: Sequence[Dict[str, Any]], baselines: Sequence[Dict[str, Any]] = (),
                 field: str = "eval_test.nelbo_per_step") -> List[Dict[str, Any]]:
    """The papers' music claims, each judged by :func:`compare` over seeds (test ``field``, lower is better):
    full alignment ahead of partial (Sec. II-B), IAFs ahead of none (Sec. II-C), the autoregressive
    models (ArSSM, SRNN, VRNN) ahead of FSSM and RSSM, and every latent model ahead of the GRU baseline
    (its exact NLL against the model's IWAE NLL)."""
    def vals(model, guide, iaf, f=field):
        return [_get(r, f) for r in records if (r["model"], r["guide"], r["iaf"]) == (model, guide, iaf)]

    present = {(r["model"], r["iaf"]) for r in records}
    claims = []
    for model, iaf in sorted(present, key=lambda k: (k[1], MODEL_ORDER.index(k[0]) if k[0] in MODEL_ORDER else 99)):
        name = NAMES.get(model, model) + (f" + {iaf} IAF" if iaf else "")
        claims.append({"claim": f"{name}: full alignment ≤ partial alignment",
                       **compare(vals(model, "full", iaf), vals(model, "partial", iaf))})
    for model, iaf in sorted(present):
        if iaf:
            for guide in ("partial", "full"):
                claims.append({"claim": f"{NAMES.get(model, model)} {guide}: {iaf} IAF ≤ no IAF",
                               **compare(vals(model, guide, iaf), vals(model, guide, 0))})
    for ar in ("arssm", "srnn", "vrnn"):
        for other in ("fssm", "rssm"):
            if (ar, 0) in present and (other, 0) in present:
                claims.append({"claim": f"{NAMES[ar]} ≤ {NAMES[other]} (full alignment)",
                               **compare(vals(ar, "full", 0), vals(other, "full", 0))})
    gru = [b["test_nll_per_step"] for b in baselines if b.get("baseline") == "gru"]
    if gru:
        for model, iaf in sorted(present, key=lambda k: (k[1], MODEL_ORDER.index(k[0]) if k[0] in MODEL_ORDER
                                                         else 99)):
            if not iaf:
                claims.append({"claim": f"{NAMES.get(model, model)} (full, IWAE NLL) ≤ GRU language model (exact NLL)",
                               **compare(vals(model, "full", 0, "eval_test.nll_per_step"), gru)})
    return claims


def render_claims(claims: Sequence[Dict[str, Any]]) -> str:
    """Markdown: each claim, the gap (worse − better, nats per step) ± its standard error, the seeds, the verdict."""
    lines = ["| claim | gap (nats/step) | seeds | verdict |", "|---|---|---|---|"]
    for c in claims:
        gap = "–" if not math.isfinite(c["diff"]) else (f"{c['diff']:+.3f}" + (
            f" ± {c['se']:.3f}" if math.isfinite(c["se"]) else ""))
        lines.append(f"| {c['claim']} | {gap} | {c['n'][0]} vs {c['n'][1]} | {c['verdict']} |")
    return "\n".join(lines)


def render_times(records: Sequence[Dict[str, Any]]) -> str:
    """Markdown: per config, the seeds, epochs run and wall-clock minutes of training and evaluation per run."""
    lines = ["| run config | seeds | epochs run (mean) | training min per run (mean) | evaluation min per run (mean) |",
             "|---|---|---|---|---|"]
    by: Dict[str, List[Dict[str, Any]]] = {}
    for r in records:
        by.setdefault(r["config"], []).append(r)
    for config, rs in by.items():
        train = mean_std([(r.get("train_seconds") or 0.0) / 60 for r in rs])
        evals = mean_std([sum((v.get("seconds") or 0.0) for k, v in r.items() if k.startswith("eval_")
                              and isinstance(v, dict)) / 60 for r in rs])
        lines.append(f"| {config} | {len(rs)} | {_epochs(mean_std([r.get('epochs_run') for r in rs]))} | "
                     f"{train['mean']:.1f} | {evals['mean']:.1f} |")
    return "\n".join(lines)
