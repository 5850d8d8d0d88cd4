"""At T=4 every model shows exactly the dependencies its spec's flags imply."""

import pytest
import torch

import pyro.poutine as poutine
from pyro.infer.inspect import get_model_relations

from pyro_dssm import create_model, list_specs, site_name

from conftest import TINY

T = 4
X_DIM = 2
CASES = [(s.name, s) for s in list_specs()] + [("vrnn", None)]  # the joint-recurrence VRNN preset too


def _spec_parents(spec, node):
    return {site_name(k, t) for (k, t) in spec.parents(node)}


def _model(name):
    torch.manual_seed(0)
    return create_model(name, x_dim=X_DIM, **TINY)


@pytest.mark.parametrize("name,spec", CASES, ids=[c[0] for c in CASES])
def test_latent_dependencies_from_model_relations(name, spec):
    model = _model(name)
    spec = model.spec
    x = torch.randn(1, T, X_DIM)
    rel = get_model_relations(model, model_args=(x,))["sample_sample"]
    for t in range(1, T + 1):
        for kind in ("z", "x"):
            want = {p for p in _spec_parents(spec, (kind, t)) if p.startswith("z")}
            got = {p for p in rel[site_name(kind, t)] if p.startswith("z")}
            assert got == want, f"{name}: latent parents of {kind}_{t}: got {sorted(got)}, want {sorted(want)}"


@pytest.mark.parametrize("name,spec", CASES, ids=[c[0] for c in CASES])
def test_all_dependencies_by_gradients(name, spec):
    """d log p(site_t) / d(value of another site): non-zero exactly for the spec's parents.

    Provenance does not flow through the recurrence computed from the raw data
    tensor, so dependencies on x are read off gradients (and, for uniformity,
    those on z as well).
    """
    model = _model(name)
    spec = model.spec
    x = torch.randn(1, T, X_DIM, requires_grad=True)
    z = torch.randn(1, T, model.z_dim, requires_grad=True)
    data = {site_name("z", t): z[:, t - 1] for t in range(1, T + 1)}
    tr = poutine.trace(poutine.condition(model, data)).get_trace(x)
    for t in range(1, T + 1):
        for kind in ("z", "x"):
            site = tr.nodes[site_name(kind, t)]
            lp = site["fn"].log_prob(site["value"]).sum()
            gx, gz = torch.autograd.grad(lp, (x, z), retain_graph=True, allow_unused=True, materialize_grads=True)
            got = {site_name("x", s) for s in range(1, T + 1) if gx[0, s - 1].abs().sum() > 0}
            got |= {site_name("z", s) for s in range(1, T + 1) if gz[0, s - 1].abs().sum() > 0}
            got.discard(site_name(kind, t))  # a site's density depends on its own value
            want = _spec_parents(spec, (kind, t))
            assert got == want, f"{name}: parents of {kind}_{t}: got {sorted(got)}, want {sorted(want)}"
