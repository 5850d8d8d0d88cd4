"""Registries, configs and bad input: every error names the problem."""

import numpy as np
import pyro
import pytest
import torch

import pyro_dssm as pd

from conftest import TINY, ragged_batch


def test_registry_lists_presets_and_base_models():
    dssms = sorted(["arhmm", "arssm", "dmm", "dmm_aug", "fhmm", "fssm", "hmm", "rssm", "srnn", "vrnn"])
    assert pd.list_models(family="dssm") == dssms
    assert pd.list_models() == sorted(dssms + ["ls4"]) and pd.list_models(family="ls4") == ["ls4"]
    assert pd.list_models("*ssm") == ["arssm", "fssm", "rssm"]
    assert pd.list_guides() == ["partial", "full", "A", "B", "C", "ls4"]
    assert pd.list_guides("ls4") == ["ls4"] and pd.list_guides("arssm") == ["partial", "full", "A", "B", "C"]
    assert pd.preset_info("arssm")["equation"] == "eqs. (1)-(3)"


def test_ls4_is_built_like_every_other_model():
    from pyro_dssm.models import LS4Guide, LS4Model
    from pyro_dssm.models.registry import model_capabilities

    m = pd.create_model("ls4", x_dim=3, z_dim=2, h_dim=4, N=4, depth=1)
    assert isinstance(m, LS4Model) and (m.config.H, m.config.N, m.config.z_dim) == (4, 4, 2)
    assert isinstance(pd.create_guide("ls4", m), LS4Guide) and isinstance(pd.create_guide("full", m), LS4Guide)
    info = pd.preset_info("ls4")
    assert info["family"] == "ls4" and info["emissions"] == ("gaussian",) and info["missing"] and not info["iaf"]
    assert model_capabilities("arhmm+tr")["family"] == "dssm" and model_capabilities("vrnn")["iaf"]
    with pytest.raises(ValueError, match="use --guide ls4, not 'partial'"):
        pd.create_guide("partial", m)
    with pytest.raises(ValueError, match="not available for LS4"):
        pd.create_guide("ls4", m, num_iafs=2)
    with pytest.raises(TypeError, match="unknown LS4 guide option"):
        pd.create_guide("ls4", m, widths=3)
    with pytest.raises(ValueError, match="LS4's inference network"):
        pd.create_guide("ls4", pd.create_model("vrnn", x_dim=3))
    with pytest.raises(ValueError, match="emission 'bernoulli' is not available"):
        pd.create_model("ls4", x_dim=3, emission="bernoulli")
    with pytest.raises(ValueError, match="unknown LS4 option"):
        pd.create_model("ls4", x_dim=3, rnn_dim=4)


@pytest.mark.parametrize("name,known_as", [("arssm", "ArSSM"), ("fssm", "FSSM"), ("vrnn", "VRNN"),
                                           ("srnn", "SRNN"), ("rssm", "RSSM"), ("dmm", None)])
def test_presets_have_their_papers_structure(name, known_as):
    m = pd.create_model(name, x_dim=3)
    assert m.spec.known_as == known_as
    if name == "vrnn":
        assert m.config.recurrence == "joint" and not hasattr(m, "x_rnn")
    if name == "dmm":
        assert m.config.transition_net == "gated" and m.spec.name == "hmm"


def test_models_from_spec_names_and_specs():
    for spec in pd.list_specs():
        assert pd.create_model(spec.name, x_dim=2, **TINY).spec == spec
        assert pd.create_model(spec, x_dim=2, **TINY).spec == spec


def test_full_guide_plans_follow_the_paper():
    plans = {n: pd.guide_plan("full", pd.create_model(n, x_dim=2)).describe() for n in
             ("arssm", "fssm", "srnn", "rssm", "vrnn")}
    assert plans["arssm"] == "q(z_t | h^z_{t-1} (generative), h^x_t (generative), g<-_t)"  # eq. (8)
    assert plans["fssm"] == plans["arssm"]
    assert plans["srnn"] == "q(z_t | z_{t-1}, h^x_t (generative), g<-_t)"  # eq. (18)
    assert plans["rssm"] == "q(z_t | h^z_{t-1} (generative), g<-_t)"  # eq. (20)
    assert plans["vrnn"] == "q(z_t | h^z_{t-1} (generative), g<-_{t-1})"  # eq. (16)
    assert pd.guide_plan("partial", pd.create_model("rssm", x_dim=2)).x_past is None  # eq. (20), backward only
    assert pd.guide_plan("partial", pd.create_model("arssm", x_dim=2)).x_past == "guide_rnn"  # eq. (7)


def test_guides_do_not_copy_the_models_parameters():
    m = pd.create_model("arssm", x_dim=2, **TINY)
    g = pd.create_guide("full", m)
    assert not ({id(p) for p in m.parameters()} & {id(p) for p in g.parameters()})


@pytest.mark.parametrize("call,match", [
    (lambda: pd.create_model("lstm", x_dim=2), "unknown model 'lstm'"),
    (lambda: pd.create_model("arssm"), "needs x_dim"),
    (lambda: pd.create_model("arssm", x_dim=2, zdim=3), r"unknown model option\(s\) \['zdim'\]"),
    (lambda: pd.create_model("arssm", x_dim=0), "x_dim must be a positive integer"),
    (lambda: pd.create_model("arssm", x_dim=2, emission="poisson"), "unknown emission 'poisson'"),
    (lambda: pd.create_model("hmm+ar", x_dim=2), "no first-order 'autoregression'"),
    (lambda: pd.create_model("rssm", x_dim=2, transition_net="gated"), "gated transition needs z_"),
    (lambda: pd.create_model("arssm", x_dim=2, recurrence="joint"), "recurrence='joint'"),
    (lambda: pd.create_guide("left", pd.create_model("arssm", x_dim=2)), "unknown guide 'left'"),
    (lambda: pd.create_guide("full", pd.create_model("arssm", x_dim=2), num_iafs=2, iaf_dim=8),
     "iaf_dim=8 is smaller than z_dim=16"),
    (lambda: pd.create_guide("full", pd.create_model("arssm", x_dim=2), rnn=3), r"unknown guide option\(s\)"),
    (lambda: pd.create_guide("A", pd.create_model("rssm", x_dim=2)), "guide 'A' reuses the generative RNN over x"),
    (lambda: pd.create_guide("C", pd.create_model("srnn", x_dim=2)), "guide 'C' reuses the generative RNN over z"),
    (lambda: pd.create_guide("full", object()), "model must be a pyro_dssm DSSM"),
])
def test_bad_construction_errors(call, match):
    with pytest.raises((ValueError, TypeError), match=match):
        call()


def _pair(emission="gaussian"):
    m = pd.create_model("arssm", x_dim=3, emission=emission, **TINY)
    return m, pd.create_guide("full", m)


BAD_INPUTS = [
    ("wrong ndim", torch.zeros(4, 3), None, "gaussian", r"x must have shape \(B, T, x_dim\)"),
    ("wrong x_dim", torch.zeros(2, 4, 5), None, "gaussian", "x_dim=5 .* expects x_dim=3"),
    ("empty batch", torch.zeros(0, 4, 3), None, "gaussian", "empty batch"),
    ("zero length", torch.zeros(2, 0, 3), None, "gaussian", "zero-length"),
    ("nan", torch.tensor([[[0.0, float("nan"), 0.0]]]), None, "gaussian", "NaN or inf .*batch 0, step 0, dim 1"),
    ("inf", torch.tensor([[[0.0, 0.0, float("inf")]]]), None, "gaussian", "NaN or inf"),
    ("mask dtype", torch.zeros(2, 4, 3), torch.ones(2, 4), "gaussian", "dtype torch.bool"),
    ("mask shape", torch.zeros(2, 4, 3), torch.ones(2, 3, dtype=torch.bool), "gaussian", r"mask must have shape"),
    ("empty row", torch.zeros(2, 4, 3), torch.tensor([[True] * 4, [False] * 4]), "gaussian",
     "sequence 1 of the batch has zero length"),
    ("holes", torch.zeros(1, 4, 3), torch.tensor([[True, False, True, False]]), "gaussian", "not a prefix mask"),
    ("non-binary", torch.full((1, 2, 3), 0.5), None, "bernoulli", r"binary \(0/1\) under a Bernoulli"),
    ("negative power", -torch.ones(1, 2, 3), None, "itakura_saito", "non-negative power spectrogram"),
    ("not a tensor", "abc", None, "gaussian", "x must be a tensor"),
]


@pytest.mark.parametrize("case", BAD_INPUTS, ids=[c[0] for c in BAD_INPUTS])
def test_bad_inputs_name_the_problem(case):
    _, x, mask, emission, match = case
    m, g = _pair(emission)
    for fn in (m, g):
        with pytest.raises((ValueError, TypeError), match=match):
            fn(x, mask)


def test_a_batch_is_checked_once_per_elbo_and_again_after_any_change(monkeypatch):
    from pyro.infer import TraceMeanField_ELBO

    import pyro_dssm.validation as v

    calls = []
    real = v._check_observations
    monkeypatch.setattr(v, "_check_observations", lambda *a: calls.append(1) or real(*a))
    m, g = _pair("bernoulli")
    x, mask = ragged_batch(3, binary=True)
    TraceMeanField_ELBO().differentiable_loss(m, g, x, mask)
    assert len(calls) == 1  # the guide checked it; the model recognised the same tensors
    x[0, 0, 0] = 0.5  # an in-place change: checked again, and refused
    with pytest.raises(ValueError, match="binary"):
        m(x, mask)
    x[0, 0, 0] = 1.0
    m(x, mask)
    m(x, mask.clone())  # another mask object: checked again
    m(x, None)
    with pytest.raises(ValueError, match="non-negative"):
        v.check_observations(x - 2.0, mask, 3, "itakura_saito")
    assert len(calls) == 6
    # padding is not checked against the emission's support
    x[2, -1] = 0.5
    assert not mask[2, -1]
    m(x, mask)


def test_numpy_input_is_accepted_and_equals_tensor_input():
    m, g = _pair()
    x, mask = ragged_batch(3)
    import pyro
    pyro.set_rng_seed(0)
    a = g(x, mask)
    pyro.set_rng_seed(0)
    b = g(x.numpy(), mask)
    assert torch.equal(a, b)


def test_generation_errors():
    m, g = _pair()
    with pytest.raises(ValueError, match="num_steps must be"):
        m(None)
    with pytest.raises(ValueError, match="needs a guide"):
        m.generate(3, prefix=torch.zeros(1, 2, 3))
    x, mask = ragged_batch(3)
    with pytest.raises(ValueError, match="different lengths"):
        m(x, mask, num_steps=10)
    with pytest.raises(ValueError, match="shorter than the observed"):
        m(x, num_steps=2)
    with pytest.raises(ValueError, match="guide needs observations"):
        g(None)


def test_prior_samples_follow_the_transition():
    """Generated z_t of the linear model follow z_t = A z_{t-1} + noise (moment check)."""
    m = pd.create_model("hmm", x_dim=2, z_dim=2, transition_net="linear", emission_net="linear")
    with torch.no_grad():
        m.transition.weight.weight.copy_(torch.tensor([[0.5, 0.2], [-0.1, 0.8]]))
        m.transition.raw_scale.fill_(np.log(np.expm1(0.1)))
    x, z = m.generate(3, batch_size=20000)
    resid = z[:, 1:] - z[:, :-1] @ m.transition.weight.weight.T
    assert resid.mean().abs() < 0.01
    assert torch.allclose(resid.std(dim=(0, 1)), torch.full((2,), 0.1), rtol=0.05)


def test_generated_means_are_the_emission_means_of_the_sampled_path():
    """generate(mean=True) returns E[x_t | z_t] of the same path: for the linear-Gaussian model an exact
    affine function of z_t, where the samples scatter around it by the emission scale."""
    m = pd.create_model("hmm", x_dim=2, z_dim=3, transition_net="linear", emission_net="linear",
                        emission="gaussian")
    pyro.set_rng_seed(3)
    x, z = m.generate(6, batch_size=500)
    pyro.set_rng_seed(3)
    mu, z2 = m.generate(6, batch_size=500, mean=True)
    assert torch.equal(z, z2)
    design = torch.cat([z, torch.ones_like(z[..., :1])], -1).reshape(-1, 4).double()
    for target, exact in ((mu, True), (x, False)):
        y = target.reshape(-1, 2).double()
        resid = y - design @ torch.linalg.lstsq(design, y).solution
        assert (float(resid.abs().max()) < 1e-4) == exact
    # a prefix comes back as given, only the new steps are means
    g = pd.create_guide("full", m)
    prefix = torch.randn(4, 3, 2)
    xc, _ = m.generate(2, prefix=prefix, guide=g, mean=True)
    assert xc.shape == (4, 5, 2) and torch.equal(xc[:, :3], prefix)
