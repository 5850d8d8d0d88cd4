"""A guide built from a spec pairs with a user's own Pyro model (the "bring your own model" path)."""

import pytest
import torch

import pyro
import pyro.distributions as dist
from pyro.infer import SVI, TraceMeanField_ELBO
from pyro.optim import Adam

import pyro_dssm as pd
from pyro_dssm.infer import linear_gaussian_log_likelihood

Z, X, T, B = 2, 2, 5, 6
A = torch.tensor([[0.9, 0.2], [-0.1, 0.8]])
Q = torch.tensor([0.5, 0.4])
C = torch.tensor([[1.0, 0.3], [0.0, 1.0]])
R = torch.tensor([0.3, 0.4])
Z0 = torch.tensor([0.5, -0.5])


def own_model(x, mask=None, *, annealing_factor=1.0):
    """A linear-Gaussian HMM written in plain Pyro, no pyro_dssm inside: its log p(x) is known exactly."""
    z = Z0
    with pyro.plate("sequences", x.shape[0], dim=-1):
        for t in pyro.markov(range(1, x.shape[1] + 1)):
            with pyro.poutine.scale(scale=annealing_factor):
                z = pyro.sample(pd.site_name("z", t), dist.Normal(z @ A.T, Q).to_event(1))
            pyro.sample(pd.site_name("x", t), dist.Normal(z @ C.T, R).to_event(1), obs=x[:, t - 1])


def _data():
    """Sequences drawn forward from the same linear-Gaussian system."""
    torch.manual_seed(0)
    pyro.set_rng_seed(0)
    z, xs = Z0.expand(B, Z), []
    for _ in range(T):
        z = z @ A.T + Q * torch.randn(B, Z)
        xs.append(z @ C.T + R * torch.randn(B, X))
    return torch.stack(xs, dim=1)


def test_spec_guide_trains_against_the_exact_likelihood_of_a_plain_pyro_model():
    x = _data()
    exact = linear_gaussian_log_likelihood(A, Q, C, R, Z0, x).sum().item()
    guide = pd.create_guide("partial", "hmm", x_dim=X, z_dim=Z, rnn_dim=16, hidden_dim=16)
    assert guide.model is None and guide.plan.z_context == "last" and guide.plan.x_past is None
    elbo = TraceMeanField_ELBO(num_particles=200, vectorize_particles=True, max_plate_nesting=1)
    before = -elbo.loss(own_model, guide, x)
    svi = SVI(own_model, guide, Adam({"lr": 2e-2}), TraceMeanField_ELBO())
    for _ in range(400):
        svi.step(x)
    after = -elbo.loss(own_model, guide, x)
    # the ELBO bounds the exact log-likelihood from below, and training closes most of the gap
    assert before < exact and after < exact + 0.5
    assert exact - after < 0.25 * (exact - before)
    assert exact - after < 0.2 * B * T  # within 0.2 nats per step of the optimum


def test_spec_guide_has_the_same_plan_as_the_model_built_guide():
    for name in ("hmm+em", "arssm", "vrnn", "fhmm+ff"):
        for g in ("partial", "B"):
            spec = pd.create_model(name, x_dim=X).spec
            assert pd.guide_plan(g, spec) == pd.guide_plan(g, spec.name) == pd.guide_plan(
                g, pd.create_model(spec.name, x_dim=X))


def test_spec_guide_refuses_plans_that_reuse_generative_networks():
    with pytest.raises(ValueError, match="reuses the generative model's RNN states"):
        pd.create_guide("full", "fssm", x_dim=X, z_dim=Z)
    with pytest.raises(ValueError, match="reuses the generative"):
        pd.create_guide("C", "rssm", x_dim=X, z_dim=Z)
    # first-order bases: the full plan needs z_{t-1} and x_{t-1} only
    assert pd.create_guide("full", "dmm_aug", x_dim=X, z_dim=Z).plan.x_past == "last"


def test_spec_guide_checks_its_sizes_and_inputs():
    with pytest.raises(ValueError, match="needs z_dim"):
        pd.create_guide("partial", "hmm", x_dim=X)
    with pytest.raises(ValueError, match="unknown model .no-such-model."):
        pd.create_guide("partial", "no-such-model", x_dim=X, z_dim=Z)
    with pytest.raises(TypeError, match="only with a spec"):
        pd.create_guide("partial", pd.create_model("hmm", x_dim=X), x_dim=X)
    guide = pd.create_guide("partial", "hmm", x_dim=X, z_dim=Z, emission="bernoulli")
    with pytest.raises(ValueError, match="x_dim=3"):
        guide(torch.zeros(1, 4, 3))
    with pytest.raises(ValueError, match="binary"):
        guide(torch.full((1, 4, X), 0.5))
