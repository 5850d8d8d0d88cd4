"""A run's logs: ``RUN_DIR/logs/metrics.csv`` over every resumed session, and Lightning kept quiet."""

from __future__ import annotations

import contextlib
import csv
import io
import logging
import os
import warnings
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

import torch
from lightning.pytorch.loggers import Logger
from lightning.pytorch.utilities import rank_zero_only

from ..utils import atomic_write_text
from .task import VAL_KL, VAL_METRIC, VAL_RECON


class RunCSVLogger(Logger):
    """``RUN_DIR/logs/metrics.csv``: one row per logging call, kept over every session of a run.

    Lightning's ``CSVLogger`` deletes an existing ``metrics.csv`` when a fit starts in
    its folder, so each resume would lose the rows before it. This logger appends, and
    rewrites the file (atomically) only when a new column appears. Epochs that a resume
    repeats (killed between logging and checkpointing) appear twice;
    :func:`training_history` keeps the later row.
    """

    FILENAME = "metrics.csv"

    def __init__(self, run_dir):
        super().__init__()
        self._root = Path(run_dir)

    @property
    def name(self) -> str:
        return "logs"

    @property
    def version(self) -> str:
        return ""

    @property
    def root_dir(self) -> str:
        return str(self._root)

    @property
    def log_dir(self) -> str:
        return str(self._root / "logs")

    @property
    def path(self) -> Path:
        return self._root / "logs" / self.FILENAME

    @rank_zero_only
    def log_hyperparams(self, params, *args, **kwargs) -> None:
        pass  # the run's config.yaml holds them

    @rank_zero_only
    def log_metrics(self, metrics: Dict[str, Any], step: Optional[int] = None) -> None:
        row = {k: (v.item() if isinstance(v, torch.Tensor) else v) for k, v in metrics.items()}
        row["step"] = step
        append_csv_row(self.path, row)


def _read_csv(path: Path) -> Tuple[List[str], List[Dict[str, str]]]:
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        # a row torn by a kill has too few fields (None values) or too many (a None key)
        rows = [r for r in reader if None not in r and None not in r.values()]
        return list(reader.fieldnames or []), rows


def append_csv_row(path: Path, row: Dict[str, Any]) -> None:
    """Append ``row`` to the CSV file ``path``; a new column rewrites the file atomically with the wider header."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, newline="") if path.is_file() else contextlib.nullcontext(io.StringIO()) as f:
        header = next(csv.reader(f), [])
    if not header or set(row) - set(header):
        header, rows = _read_csv(path) if header else ([], [])
        fields = sorted(set(header) | set(row))
        buf = io.StringIO()
        w = csv.DictWriter(buf, fieldnames=fields)
        w.writeheader()
        w.writerows(rows + [row])
        atomic_write_text(path, buf.getvalue())
        return
    buf = io.StringIO()
    csv.DictWriter(buf, fieldnames=header).writerow(row)
    with open(path, "rb+") as f:
        f.seek(0, os.SEEK_END)
        if f.tell() and (f.seek(-1, os.SEEK_END), f.read(1))[1] != b"\n":
            f.write(b"\n")  # end a row that a kill tore, so that the new row starts on its own line
        f.write(buf.getvalue().encode("utf-8"))


def _loggers(run_dir: Path):
    loggers: List[Logger] = [RunCSVLogger(run_dir)]
    try:
        import tensorboard  # noqa: F401
        from lightning.pytorch.loggers import TensorBoardLogger

        loggers.append(TensorBoardLogger(str(run_dir), name="logs", version="tensorboard"))
    except ImportError:
        pass
    return loggers


class _DropLightningTips(logging.Filter):
    """Drops Lightning's "💡 Tip: ... litlogger / litmodels" advertisements, which have no switch."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("💡 Tip")


@contextlib.contextmanager
def quiet_lightning(resume: bool = False):
    """Within the block, Lightning prints no advertisements and no ``LeafSpec`` deprecation warning.

    Only those: Lightning's other messages and every other warning still show. The
    ``FutureWarning`` comes from Lightning's own use of ``torch.utils._pytree.LeafSpec``
    (torch >= 2.9), not from this package, and a user can do nothing about it. With
    ``resume``, also the warning that the checkpoint folder is not empty: a resumed run's is.
    """
    from lightning_utilities.core import rank_zero

    tip_filter = _DropLightningTips()
    # rank_zero_info logs through the logger that lightning last installed in lightning_utilities
    loggers = {rank_zero.log, *(logging.getLogger(n) for n in ("lightning.pytorch.utilities.rank_zero",
                                                               "lightning.fabric.utilities.rank_zero"))}
    for lg in loggers:
        lg.addFilter(tip_filter)
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=r"`isinstance\(treespec, LeafSpec\)` is deprecated",
                                    category=FutureWarning)
            if resume:
                warnings.filterwarnings("ignore", message=r"Checkpoint directory .* exists and is not empty")
            yield
    finally:
        for lg in loggers:
            lg.removeFilter(tip_filter)


def training_history(run_dir) -> Dict[str, List[float]]:
    """Per-epoch curves of a run, read from ``RUN_DIR/logs/metrics.csv``.

    Returns:
        ``{"epoch": [...], "train": [...], "val": [...], "val_recon": [...], "val_kl": [...]}``:
        the training loss (negative ELBO per step, KL-annealed), the validation negative
        ELBO per step of each epoch and its reconstruction and KL terms, ``nan`` where an epoch has none (``--val-every``),
        over every session of a resumed run. Epochs that a resume repeated keep their
        last value.
    """
    import csv

    path = Path(run_dir) / "logs" / "metrics.csv"
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist: {run_dir} is not a run directory or has not trained yet")
    rows: Dict[int, Dict[str, float]] = {}
    for row in _read_csv(path)[1]:  # every session's rows; a row torn by a kill is skipped
        if not row.get("epoch"):
            continue
        epoch = rows.setdefault(int(row["epoch"]), {})
        for key, col in _HISTORY_COLUMNS.items():
            if row.get(col):
                epoch[key] = float(row[col])
    epochs = sorted(rows)
    return {"epoch": epochs, **{k: [rows[e].get(k, float("nan")) for e in epochs] for k in _HISTORY_COLUMNS}}


_HISTORY_COLUMNS = {"train": "train/loss", "val": VAL_METRIC, "val_recon": VAL_RECON, "val_kl": VAL_KL}
