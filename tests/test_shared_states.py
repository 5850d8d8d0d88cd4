"""The model takes the generative states its guide already computed, and only when that is exact."""

import copy
import pickle

import pytest
import torch

import pyro.poutine as poutine
from pyro.infer import TraceMeanField_ELBO

from pyro_dssm import create_guide, create_model

from conftest import TINY, TINY_GUIDE, ragged_batch

X_DIM = 4


def _count(module, calls, key):
    return module.register_forward_hook(lambda *a: calls.__setitem__(key, calls[key] + 1))


@pytest.mark.parametrize("name,guide,z_steps,x_runs", [
    # (preset, guide, GRU-cell steps over z per ELBO, GRU runs over x per ELBO); T = 6
    ("arssm", "full", 6, 1), ("fssm", "C", 6, 1), ("rssm", "full", 6, 0), ("vrnn", "full", 6, 0),
    ("srnn", "A", 0, 1), ("arssm", "partial", 6, 1),  # partial: nothing to share, each runs once already
])
def test_elbo_computes_each_generative_state_once(name, guide, z_steps, x_runs):
    model = create_model(name, x_dim=X_DIM, **TINY)
    g = create_guide(guide, model, **TINY_GUIDE)
    calls = {"z": 0, "x": 0}
    if hasattr(model, "z_cell"):
        _count(model.z_cell, calls, "z")
    if hasattr(model, "x_rnn"):
        _count(model.x_rnn, calls, "x")
    x, mask = ragged_batch(X_DIM)
    TraceMeanField_ELBO().differentiable_loss(model, g, x, mask)
    assert calls == {"z": z_steps, "x": x_runs}
    assert len(model._shared) == 0  # nothing is left behind after the model's call


def _recomputed(model, guide_tr, x, mask):
    """The model replayed on the guide's samples with sharing switched off (the states recomputed)."""
    model._shared.clear()
    return poutine.trace(poutine.replay(model, trace=guide_tr)).get_trace(x, mask)


@pytest.mark.parametrize("name,guide", [("arssm", "full"), ("vrnn", "full"), ("fssm", "A"), ("rssm", "C")])
def test_shared_states_give_the_same_elbo_and_gradients(name, guide, monkeypatch):
    model = create_model(name, x_dim=X_DIM, **TINY)
    g = create_guide(guide, model, **TINY_GUIDE)
    x, mask = ragged_batch(X_DIM)
    params = list(model.parameters()) + list(g.parameters())
    results = []
    for shared in (True, False):
        if not shared:  # every state recomputed by the model
            monkeypatch.setattr(model._shared, "take", lambda *a: None)
        torch.manual_seed(1)
        loss = TraceMeanField_ELBO().differentiable_loss(model, g, x, mask, annealing_factor=0.7)
        results.append((loss.detach(), torch.autograd.grad(loss, params, allow_unused=True)))
    (l1, g1), (l2, g2) = results
    assert torch.allclose(l1, l2, atol=1e-5)
    for a, b in zip(g1, g2):
        assert (a is None) == (b is None)
        if a is not None:
            assert torch.allclose(a, b, atol=1e-5)


def test_a_parameter_update_between_guide_and_model_recomputes():
    model = create_model("arssm", x_dim=X_DIM, **TINY)
    g = create_guide("full", model, **TINY_GUIDE)
    x, mask = ragged_batch(X_DIM)
    guide_tr = poutine.trace(g).get_trace(x, mask)
    with torch.no_grad():
        model.z_cell.weight_hh.add_(0.5)  # an optimiser step between the two runs
        model.x_rnn.weight_ih_l0.mul_(2.0)
    calls = {"z": 0, "x": 0}
    _count(model.z_cell, calls, "z")
    _count(model.x_rnn, calls, "x")
    stale_ok = poutine.trace(poutine.replay(model, trace=guide_tr)).get_trace(x, mask).log_prob_sum()
    assert calls == {"z": 6, "x": 1}  # every state recomputed with the new parameters
    fresh = _recomputed(model, guide_tr, x, mask).log_prob_sum()
    assert torch.allclose(stale_ok, fresh)


def test_other_latents_or_grad_mode_recompute():
    model = create_model("rssm", x_dim=X_DIM, **TINY)
    g = create_guide("full", model, **TINY_GUIDE)
    x, mask = ragged_batch(X_DIM)
    guide_tr = poutine.trace(g).get_trace(x, mask)
    # equal values in other tensors (a user's conditioning): recomputed, not looked up by value
    zs = {n: s["value"].clone() for n, s in guide_tr.nodes.items() if n.startswith("z_")}
    calls = {"z": 0}
    _count(model.z_cell, calls, "z")
    poutine.condition(model, data=zs)(x, mask)
    assert calls["z"] == 6
    # a guide run under no_grad does not hand graph-less states to a model that needs gradients
    with torch.no_grad():
        guide_tr = poutine.trace(g).get_trace(x, mask)
    calls["z"] = 0
    lp = poutine.trace(poutine.replay(model, trace=guide_tr)).get_trace(x, mask).log_prob_sum()
    assert calls["z"] == 6
    lp.backward()
    assert model.z_cell.weight_hh.grad is not None and model.z_cell.weight_hh.grad.abs().sum() > 0


def test_copies_and_pickles_start_without_shared_states():
    model = create_model("arssm", x_dim=X_DIM, **TINY)
    g = create_guide("full", model, **TINY_GUIDE)
    x, mask = ragged_batch(X_DIM)
    g(x, mask)
    g(x, mask)  # a guide run forgets what an earlier one left: nothing accumulates
    assert len(model._shared) == 7  # 6 latent steps and the run over x, until the model's next call
    assert len(copy.deepcopy(model)._shared) == 0
    assert len(pickle.loads(pickle.dumps(model))._shared) == 0
    model(x, mask)
    assert len(model._shared) == 0


def _lean_cases():
    from pyro_dssm import list_models

    return [(n, g, iaf) for n in list_models(family="dssm")  # recurrent states shared with the guide: not LS4's
            for g in ("partial", "full") for iaf in (0, 2)]


@pytest.mark.parametrize("name,guide,iaf", _lean_cases())
def test_lean_elbo_equals_pyros_trace_mean_field_elbo(name, guide, iaf):
    """Same estimator: equal loss and gradients under the same seed, with analytic KL (no IAF) and MC (IAF)."""
    import warnings

    from pyro_dssm.infer import LeanTraceMeanField_ELBO

    model = create_model(name, x_dim=X_DIM, emission="bernoulli", **TINY)
    g = create_guide(guide, model, **TINY_GUIDE, num_iafs=iaf, iaf_dim=6)
    x, mask = ragged_batch(X_DIM, binary=True)
    params = list(model.parameters()) + list(g.parameters())
    out = []
    for elbo in (TraceMeanField_ELBO(), LeanTraceMeanField_ELBO()):
        torch.manual_seed(2)
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # no mean-field order or shape warnings either
            loss = elbo.differentiable_loss(model, g, x, mask, annealing_factor=0.4)
        out.append((loss.detach(), torch.autograd.grad(loss, params, allow_unused=True)))
    (l1, g1), (l2, g2) = out
    assert torch.allclose(l1, l2, rtol=1e-6, atol=1e-5)
    for a, b in zip(g1, g2):
        assert (a is None) == (b is None)
        if a is not None:
            assert torch.allclose(a, b, rtol=1e-5, atol=1e-6)


def test_lean_elbo_vectorised_particles_and_errors():
    import pyro
    import pyro.distributions as dist

    from pyro_dssm.infer import LeanTraceMeanField_ELBO

    model = create_model("arssm", x_dim=X_DIM, **TINY)
    g = create_guide("full", model, **TINY_GUIDE)
    x, mask = ragged_batch(X_DIM)
    kw = dict(num_particles=50, vectorize_particles=True, max_plate_nesting=1)
    pyro.set_rng_seed(3)
    a = TraceMeanField_ELBO(**kw).loss(model, g, x, mask)
    pyro.set_rng_seed(3)
    b = LeanTraceMeanField_ELBO(**kw).loss(model, g, x, mask)
    assert a == pytest.approx(b, rel=1e-6)

    def m(x):
        z = pyro.sample("z", dist.Normal(0.0, 1.0))
        pyro.sample("x", dist.Normal(z, 1.0), obs=x)

    def aux_guide(x, aux=True):
        w = pyro.sample("w", dist.Normal(0.3, 0.5), infer={"is_auxiliary": True} if aux else {})
        pyro.sample("z", dist.Normal(w, 1.0))

    losses = []
    for elbo in (TraceMeanField_ELBO(), LeanTraceMeanField_ELBO()):  # auxiliary sites: the same entropy term
        pyro.set_rng_seed(4)
        losses.append(elbo.loss(m, aux_guide, torch.tensor(0.5)))
    assert losses[0] == pytest.approx(losses[1], rel=1e-6)
    with pytest.raises(ValueError, match="'w' has no model site"), pytest.warns(UserWarning, match="auxiliary"):
        LeanTraceMeanField_ELBO().loss(m, lambda x: aux_guide(x, aux=False), torch.tensor(0.5))
    with pytest.raises(NotImplementedError, match="reparameterised"):
        LeanTraceMeanField_ELBO().differentiable_loss(
            lambda x: (pyro.sample("k", dist.Poisson(3.0)), pyro.sample("x", dist.Normal(0.0, 1.0), obs=x)),
            lambda x: pyro.sample("k", dist.Poisson(2.0)), torch.tensor(0.5))


def test_engine_and_loop_use_the_lean_elbo():
    from pyro_dssm.config import TrainConfig
    from pyro_dssm.infer import LeanTraceMeanField_ELBO
    from pyro_dssm.training.engine import DSSMTask, build_model_and_guide

    cfg = TrainConfig(model="dmm", guide="full", z_dim=3, h_dim=6, hidden_dim=6, guide_rnn_dim=6)
    task = DSSMTask(*build_model_and_guide(cfg, 4, "gaussian"), cfg)
    assert isinstance(task.elbo.elbo, LeanTraceMeanField_ELBO)
