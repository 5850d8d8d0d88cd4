"""The hoisted per-step path (x-only terms before the loop, fused heads) equals the plain per-step path.

``pyro_dssm.nn.hoisted_steps(False)`` runs the time loops as before the change; both
paths must give the same loss and the same gradients under the same seed, for every
preset and guide, with and without flows, and for every emission and network kind.
"""

import pytest
import torch

from pyro_dssm import create_guide, create_model, list_models
from pyro_dssm.infer import LeanTraceMeanField_ELBO
from pyro_dssm.nn import hoisted_steps
from pyro_dssm.nn.layers import steps_hoisted

from conftest import TINY, TINY_GUIDE, ragged_batch, valid_guides


def _loss_and_grads(model, guide, x, mask, hoisted, seed=3):
    params = list(model.parameters()) + list(guide.parameters())
    with hoisted_steps(hoisted):
        torch.manual_seed(seed)
        loss = LeanTraceMeanField_ELBO().differentiable_loss(model, guide, x, mask, annealing_factor=0.4)
        grads = torch.autograd.grad(loss, params, allow_unused=True)
    return loss.detach(), grads


def _assert_same(model, guide, x, mask):
    l1, g1 = _loss_and_grads(model, guide, x, mask, True)
    l0, g0 = _loss_and_grads(model, guide, x, mask, False)
    assert torch.allclose(l1, l0, rtol=1e-5, atol=1e-5), (l1, l0)
    for a, b in zip(g1, g0):
        assert (a is None) == (b is None)
        if a is not None:
            assert torch.allclose(a, b, rtol=1e-4, atol=1e-5)
    # and the comparison can fail: another draw gives another loss
    l2, _ = _loss_and_grads(model, guide, x, mask, True, seed=4)
    assert abs(float(l2 - l1)) > 1e-4


def _cases():
    cases = []
    for name in list_models(family="dssm"):  # per-step heads; LS4 convolves whole sequences
        for g in valid_guides(create_model(name, x_dim=4)):
            cases.append((name, g, 0))
        cases.append((name, "full", 2))  # flows on top
    return cases


@pytest.mark.parametrize("name,guide,iafs", _cases())
def test_hoisted_path_equals_the_plain_path(name, guide, iafs):
    torch.manual_seed(0)
    model = create_model(name, x_dim=4, emission="bernoulli", **TINY)
    g = create_guide(guide, model, num_iafs=iafs, iaf_dim=8, **TINY_GUIDE)
    _assert_same(model, g, *ragged_batch(4, binary=True))


@pytest.mark.parametrize("options", [
    dict(emission="gaussian"), dict(emission="itakura_saito"), dict(emission="gaussian_power", emission_net="deep"),
    dict(emission="gaussian", emission_net="linear", transition_net="linear"),
    dict(emission="bernoulli", emission_net="linear"), dict(emission="gaussian", transition_net="gated"),
])
@pytest.mark.parametrize("name", ["arhmm", "fhmm", "dmm_aug"])
def test_hoisted_path_equals_the_plain_path_for_every_head(name, options):
    if options.get("transition_net") == "gated" and name == "dmm_aug":
        name = "dmm"  # the gated transition needs z_{t-1} (not a relaxed transition)
    torch.manual_seed(0)
    model = create_model(name, x_dim=4, **{**TINY, **options})
    g = create_guide("full", model, **TINY_GUIDE)
    x, mask = ragged_batch(4, binary=options["emission"] == "bernoulli")
    if options["emission"] in ("itakura_saito", "gaussian_power"):
        x = x.abs() + 0.1 * mask.unsqueeze(-1)
    _assert_same(model, g, x, mask)


def test_conditional_flows_take_the_plain_path_and_agree():
    torch.manual_seed(0)
    model = create_model("srnn", x_dim=4, emission="bernoulli", **TINY)
    g = create_guide("full", model, num_iafs=2, iaf_dim=8, iaf_conditional=True, **TINY_GUIDE)
    _assert_same(model, g, *ragged_batch(4, binary=True))


@pytest.mark.parametrize("name", ["arssm", "vrnn", "fssm"])
def test_generation_after_a_prefix_is_the_same_on_both_paths(name):
    torch.manual_seed(0)
    model = create_model(name, x_dim=4, emission="bernoulli", **TINY)
    g = create_guide("full", model, **TINY_GUIDE)
    prefix = (torch.rand(3, 5, 4) < 0.3).float()
    out = []
    for hoisted in (True, False):
        with hoisted_steps(hoisted):
            torch.manual_seed(1)
            out.append(model.generate(4, prefix=prefix, guide=g))
    for a, b in zip(*out):
        assert torch.allclose(a, b, atol=1e-5)
    assert torch.equal(out[0][0][:, :5], prefix)


def test_the_switch_is_scoped():
    assert steps_hoisted()
    with hoisted_steps(False):
        assert not steps_hoisted()
        with hoisted_steps(True):
            assert steps_hoisted()
        assert not steps_hoisted()
    assert steps_hoisted()
    with pytest.raises(RuntimeError):
        with hoisted_steps(False):
            raise RuntimeError("boom")
    assert steps_hoisted()
