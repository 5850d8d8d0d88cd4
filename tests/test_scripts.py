"""Subprocess smoke runs of the scripts, and the generated data they train on."""

import json
import pathlib
import subprocess
import sys

import numpy as np
import torch

import pyro_dssm as pd
from pyro_dssm.data import linear_gaussian_dataset
from pyro_dssm.infer import linear_gaussian_log_likelihood

ROOT = pathlib.Path(__file__).resolve().parents[1]


def run(*args):
    return subprocess.run([sys.executable, str(ROOT / "scripts" / "train.py"), *args],
                          capture_output=True, text=True, timeout=600)


def test_train_script_improves_on_untrained_and_writes_metrics(tmp_path):
    r = run("--model", "srnn", "--guide", "partial", "--epochs", "3", "--iaf", "1", "--z-dim", "2",
            "--h-dim", "8", "--out", str(tmp_path))
    assert r.returncode == 0, r.stderr
    m = json.loads((tmp_path / "metrics.json").read_text())
    assert m["neg_elbo_after"] < m["neg_elbo_before"]
    assert m["exact_nll"] < m["neg_elbo_after"] + 0.05  # the negative ELBO stays above the exact NLL
    assert "train -ELBO/step" in r.stdout


def test_train_script_on_user_array_and_bad_names(tmp_path):
    x = (np.random.default_rng(0).random((20, 6, 5)) < 0.3).astype(np.float32)
    np.save(tmp_path / "rolls.npy", x)
    r = run("--data", str(tmp_path / "rolls.npy"), "--emission", "bernoulli", "--model", "dmm",
            "--epochs", "1", "--h-dim", "8")
    assert r.returncode == 0, r.stderr
    r = run("--model", "nope", "--epochs", "1")
    assert r.returncode != 0 and "unknown model 'nope'" in r.stderr
    r = run("--guide", "sideways", "--epochs", "1")
    assert r.returncode != 0 and "unknown guide 'sideways'" in r.stderr
    r = run("--data", str(tmp_path / "missing.npy"))
    assert r.returncode != 0 and "does not exist" in r.stderr
    np.save(tmp_path / "bad.npy", x * 0.5)
    r = run("--data", str(tmp_path / "bad.npy"), "--emission", "bernoulli", "--epochs", "1")
    assert r.returncode != 0 and "binary" in r.stderr


def test_generated_data_matches_its_exact_likelihood():
    system, x_train, _ = linear_gaussian_dataset(n_train=400, n_test=1, T=5, x_dim=2, z_dim=2)
    x = torch.as_tensor(x_train)
    true = linear_gaussian_log_likelihood(system.A, system.q, system.C, system.r, system.z0, x).mean()
    wrong = linear_gaussian_log_likelihood(system.A, 2 * system.q, system.C, system.r, system.z0, x).mean()
    assert true > wrong
    # the sampler and the model-based Kalman filter agree on the same system
    m = pd.create_model("hmm", x_dim=2, z_dim=2, transition_net="linear", emission_net="linear")
    with torch.no_grad():
        m.transition.weight.weight.copy_(torch.as_tensor(system.A))
        m.transition.raw_scale.copy_(torch.as_tensor(system.q).expm1().log())
        m.emitter.body.weight.weight.copy_(torch.as_tensor(system.C))
        m.emitter.body.raw_scale.copy_(torch.as_tensor(system.r).expm1().log())
    assert torch.allclose(pd.kalman_log_likelihood(m, x).mean(), true, atol=1e-4)
    # the sample mean of x_1 is C A z0 = 0 and its covariance C Q C^T + R
    x1 = x[:, 0].double().numpy()
    cov = system.C @ np.diag(system.q ** 2) @ system.C.T + np.diag(system.r ** 2)
    assert np.allclose(np.cov(x1.T), cov, atol=0.25)
