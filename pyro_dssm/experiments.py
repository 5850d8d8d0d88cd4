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

Tables are rendered by :mod:`pyro_dssm.tables` (re-exported here).

``kind: oracle`` experiments train no run configs: they call
:func:`pyro_dssm.oracle.oracle_experiment` with the file's ``oracle`` settings.
"""

from __future__ import annotations

import glob
import json
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

from .cli.flags import config_flags
from .metrics.stats import mean_std
from .tables import aggregate, compare, music_claims, render_claims, render_table, render_times, run_record

__all__ = ["KINDS", "Experiment", "RunPlan", "load_experiment", "plan_runs", "execute", "collect", "aggregate",
           "render_table", "render_times", "machine_info", "mean_std", "REPO_ROOT", "best_of_grid", "BASELINES", "run_baselines",
           "baseline_settings", "experiment_table", "compare", "music_claims", "render_claims", "run_record"]

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
            args = ["--config", str(f), *config_flags(exp.profile(profile, f.stem)), "--seed", str(s), "--out",
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


def experiment_table(kind: str, records: Sequence[Dict[str, Any]], baselines: Sequence[Dict[str, Any]] = ()) -> str:
    """The table ``reproduce`` writes to ``OUT/PROFILE/table.md``: :func:`render_table` and each run
    config's wall time."""
    return render_table(kind, records, baselines) + "\n\nWall time:\n\n" + render_times(records)


def best_of_grid(exp: Experiment, profile: str, *, root: Union[str, os.PathLike] = REPO_ROOT) -> Dict[tuple, str]:
    """A tuning grid's pick: per (data, model), the run config with the lowest mean best validation
    negative ELBO per step over the seeds that *every* config of that (data, model) has finished.

    Comparing on the common seeds keeps the budget equal and the pick stable: the second stage
    (``--seeds 1 2 --best-of-grid``) trains more seeds of the pick only, and those cannot move the
    pick (a mean over the pick's later seeds, against the others' first seed alone, would reward the
    configs that were not rerun: the pick's first seed is the luckiest by construction). Every config
    of the grid must have a finished run, and each (data, model) a seed all its configs finished;
    otherwise the error names what is missing."""
    plans = plan_runs(exp, profile, root=root)
    scores: Dict[str, Dict[int, float]] = {}
    keys: Dict[str, tuple] = {}
    for rec in collect(plans):
        if rec.get("best_val_nelbo_per_step") is not None:
            scores.setdefault(rec["config"], {})[rec["seed"]] = float(rec["best_val_nelbo_per_step"])
            keys[rec["config"]] = (rec["data"], rec["model"])
    missing = sorted({p.config.stem for p in plans} - set(scores))
    if missing:
        raise ValueError(f"the grid is not finished: no finished run of {missing} under {exp.out_dir(profile, root)}; "
                         f"train them first (without --best-of-grid)")
    groups: Dict[tuple, List[str]] = {}
    for config in sorted(scores):  # ties go to the first config by name
        groups.setdefault(keys[config], []).append(config)
    best: Dict[tuple, str] = {}
    for key, configs in groups.items():
        common = sorted(set.intersection(*(set(scores[c]) for c in configs)))
        if not common:
            raise ValueError(f"no seed is finished by every config of {key[0]} {key[1]} "
                             f"({ {c: sorted(scores[c]) for c in configs} }); finish one seed of each")
        means = {c: sum(scores[c][s] for s in common) / len(common) for c in configs}
        best[key] = min(configs, key=lambda c: means[c])
    return best


def baseline_settings(exp: Experiment, profile: str, root: Union[str, os.PathLike] = REPO_ROOT) -> Dict[str, Any]:
    """The recipe of the GRU baseline: the first run config's data, width (``h_dim``) and optimiser,
    with the profile's overrides (the latent models' recipe)."""
    from .config import TrainConfig, load_config, merge_fields

    cfg = TrainConfig.from_dict(merge_fields(load_config(exp.config_files(root)[0]), exp.profile(profile)))
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
