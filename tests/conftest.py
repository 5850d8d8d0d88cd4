import os
import subprocess
import sys
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np
import pyro
import pytest
import torch

torch.set_num_threads(1)

TINY = dict(z_dim=3, h_dim=6, hidden_dim=6)
TINY_GUIDE = dict(rnn_dim=6, hidden_dim=6)

ROOT = Path(__file__).resolve().parents[1]
# train.py flags of a run that takes seconds
TINY_RUN = ["--max-sequences", "6", "--z-dim", "2", "--h-dim", "8", "--hidden-dim", "8", "--guide-rnn-dim", "8",
            "--batch-size", "3", "--eval-particles", "2", "--no-progress"]


@pytest.fixture(scope="module")
def short_rolls(tmp_path_factory):
    """12 short binary sequences (T <= 10) in an .npz: a user's own data, for quick runs of train.py."""
    rng = np.random.default_rng(0)
    path = tmp_path_factory.mktemp("data") / "short.npz"
    np.savez(path, x=(rng.random((12, 10, 88)) < 0.05).astype(np.float32), lengths=rng.integers(4, 11, size=12))
    return path


def run_script(name, *args, timeout=600, env=None):
    """Run ``scripts/NAME`` with ``args`` in a subprocess from the repository root; returns the CompletedProcess."""
    return subprocess.run([sys.executable, str(ROOT / "scripts" / name), *map(str, args)], capture_output=True,
                          text=True, timeout=timeout, env=env, cwd=ROOT)


@pytest.fixture(autouse=True)
def clean_pyro():
    """Every test starts from a cleared param store, with validation on and a fixed seed."""
    pyro.settings.set(module_local_params=False)  # the training engine switches it on
    pyro.clear_param_store()
    pyro.enable_validation(True)
    pyro.set_rng_seed(0)
    yield
    pyro.settings.set(module_local_params=False)
    pyro.clear_param_store()


def ragged_batch(x_dim=4, lengths=(6, 4, 1, 6), binary=False, seed=0):
    """A right-padded batch ``(B, T, x_dim)`` with zero padding and its prefix mask."""
    g = torch.Generator().manual_seed(seed)
    B, T = len(lengths), max(lengths)
    x = (torch.rand(B, T, x_dim, generator=g) < 0.3).float() if binary else torch.randn(B, T, x_dim, generator=g)
    mask = torch.arange(T) < torch.tensor(lengths).unsqueeze(-1)
    return x * mask.unsqueeze(-1), mask


def valid_guides(model):
    """The guide names that exist for ``model`` (a model, spec or model name)."""
    import pyro_dssm

    return pyro_dssm.list_guides(model)
