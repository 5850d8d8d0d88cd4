"""Checkpoint files: written atomically, read with ``weights_only=True``, damaged ones named."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any, Dict, Optional

import torch
from lightning.fabric.plugins.io.torch_io import TorchCheckpointIO

from ..utils import atomic_write_bytes
from .task import VAL_METRIC, DSSMTask


class AtomicCheckpointIO(TorchCheckpointIO):
    """Writes each checkpoint to a temporary file and renames it into place.

    A run killed while saving leaves the previous checkpoint intact, never a
    truncated one.

    Every checkpoint is read with ``torch.load(weights_only=True)``: tensors and plain
    Python values only, never arbitrary objects. (Lightning leaves ``weights_only`` to
    torch's default, which is ``False`` before torch 2.6, and the package accepts
    ``torch>=2.1``.)
    """

    def save_checkpoint(self, checkpoint: Dict[str, Any], path, storage_options: Optional[Any] = None) -> None:
        buf = io.BytesIO()
        torch.save(checkpoint, buf)
        atomic_write_bytes(path, buf.getvalue())

    def load_checkpoint(self, path, map_location=None, weights_only: Optional[bool] = None) -> Dict[str, Any]:
        if weights_only is False:
            raise ValueError("pyro-dssm checkpoints are loaded with weights_only=True only")
        return super().load_checkpoint(path, map_location=map_location, weights_only=True)


def _last_for_resume(run_dir) -> Path:
    """``RUN_DIR/checkpoints/last.ckpt``, which a resume starts from; a clear error when there is none."""
    last = Path(run_dir) / "checkpoints" / "last.ckpt"
    if not last.is_file():
        raise FileNotFoundError(f"cannot resume: {last} does not exist (start the run without --resume)")
    return last


def _epochs_done(ckpt: Dict[str, Any]) -> int:
    """Epochs a checkpoint has finished (``last.ckpt`` is written at the end of each epoch)."""
    return int(ckpt["loops"]["fit_loop"]["epoch_progress"]["current"]["processed"])


def _stopped_early(ckpt: Dict[str, Any], patience: int) -> bool:
    """Early stopping had ended the run and ``patience`` does not give it more epochs."""
    if not patience:
        return False
    for key, state in ckpt.get("callbacks", {}).items():
        if key.startswith("EarlyStopping") and isinstance(state, dict):
            return int(state.get("wait_count", 0)) >= patience
    return False


def _best_score(ckpt: Dict[str, Any]):
    """The best validation score that the best-checkpoint callback had recorded in ``ckpt``."""
    for state in ckpt.get("callbacks", {}).values():
        if isinstance(state, dict) and state.get("monitor") == VAL_METRIC:
            return state.get("best_model_score")
    return None


def check_checkpoint(path: Path) -> Dict[str, Any]:
    """Load a checkpoint file, turning a corrupt or foreign file into a clear error."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {str(path)!r} does not exist")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - torch raises many kinds for a damaged file
        raise ValueError(f"checkpoint {path} is corrupt or not a checkpoint ({type(e).__name__}: {e})") from e
    if not isinstance(ckpt, dict) or "state_dict" not in ckpt:
        raise ValueError(f"checkpoint {path} has no state_dict: not a pyro-dssm training checkpoint")
    return ckpt


def load_weights(task: DSSMTask, path: Path) -> None:
    ckpt = check_checkpoint(path)
    try:
        task.load_state_dict(ckpt["state_dict"])
    except RuntimeError as e:
        raise ValueError(f"checkpoint {path} does not fit the run's model ({e})") from e
