"""Contract of every preset and every spec with every guide: the table-driven test."""

import math

import pytest
import torch

import pyro
import pyro.poutine as poutine
from pyro.infer import SVI, TraceMeanField_ELBO
from pyro.optim import Adam

from pyro_dssm import create_guide, create_model, list_models, list_specs, site_name
from pyro_dssm.infer import log_weights

from conftest import TINY, TINY_GUIDE, ragged_batch, valid_guides

X_DIM = 4


PRESET_CASES = []
# the taxonomy's presets: per-step sites z_1..z_T and spec-derived guides. LS4 (one path site "z",
# its own guide, no IAF) has its contract below: the same checks where they apply.
for _name in list_models(family="dssm"):
    _m = create_model(_name, x_dim=X_DIM, **TINY)
    for _g in valid_guides(_m):
        for _iaf in ("none", "iaf", "conditional"):
            PRESET_CASES.append((_name, _g, _iaf))
SPEC_CASES = [(s.name, g) for s in list_specs() for g in ("partial", "full")]
IAF = {"none": {}, "iaf": dict(num_iafs=2, iaf_dim=6), "conditional": dict(num_iafs=1, iaf_dim=6, iaf_conditional=True)}


def build(name, guide, iaf="none", emission="gaussian"):
    model = create_model(name, x_dim=X_DIM, emission=emission, **TINY)
    return model, create_guide(guide, model, **TINY_GUIDE, **IAF[iaf])


def check_gradients_reach_everything(model, guide, x, mask):
    """The ELBO is a finite scalar, and its gradient reaches every parameter of the model and the guide."""
    loss = TraceMeanField_ELBO().differentiable_loss(model, guide, x, mask)
    assert loss.dim() == 0 and torch.isfinite(loss)
    loss.backward()
    for owner in (model, guide):
        for n, p in owner.named_parameters():
            assert p.grad is not None and p.grad.abs().sum() > 0, f"no gradient reaches {type(owner).__name__}.{n}"


def check_padding_is_ignored(model, guide, x, junk, mask, atol):
    """The same draws give the same log-weights whatever the padded steps of ``x`` hold (``junk``)."""
    pyro.set_rng_seed(1)
    lw1 = log_weights(model, guide, x, mask, 2)
    pyro.set_rng_seed(1)
    lw2 = log_weights(model, guide, junk, mask, 2)
    assert torch.allclose(lw1, lw2, atol=atol)


def check_contract(model, guide, binary=False, positive=False):
    x, mask = ragged_batch(X_DIM, binary=binary)
    x = x.abs() if positive else x
    check_gradients_reach_everything(model, guide, x, mask)
    # guide samples: (B, T, z_dim)
    with torch.no_grad():
        z = guide(x, mask)
    assert z.shape == (x.shape[0], x.shape[1], model.z_dim)
    # masked steps contribute exactly zero, whatever the padding holds
    tr = poutine.trace(guide).get_trace(x, mask)
    mtr = poutine.trace(poutine.replay(model, trace=tr)).get_trace(x, mask)
    for t in (tr, mtr):
        t.compute_log_prob()
    for s in range(1, x.shape[1] + 1):
        pad = ~mask[:, s - 1]
        for t, kinds in ((tr, "z"), (mtr, "zx")):
            for k in kinds:
                assert (t.nodes[site_name(k, s)]["log_prob"][pad] == 0).all()
    junk = x + (~mask).unsqueeze(-1) * (torch.rand_like(x) < 0.5).float() * (1.0 if binary else 3.0)
    check_padding_is_ignored(model, guide, x, junk, mask, atol=1e-5)
    # prior samples and continuations have the right shapes
    xs, zs = model.generate(3, batch_size=2)
    assert xs.shape == (2, 3, X_DIM) and zs.shape == (2, 3, model.z_dim)
    xs, zs = model.generate(2, prefix=x[:2, :3], guide=guide)
    assert xs.shape == (2, 5, X_DIM) and torch.equal(xs[:, :3], x[:2, :3])


def check_batch_equals_single(model, guide):
    """log p(x, z) - log q(z | x) of a ragged batch equals that of each sequence alone."""
    x, mask = ragged_batch(X_DIM)
    lengths = mask.sum(-1)
    with torch.no_grad():
        tr = poutine.trace(guide).get_trace(x, mask)
        full = {site_name("z", t): tr.nodes[site_name("z", t)]["value"] for t in range(1, x.shape[1] + 1)}
        lw = log_weights(poutine.condition(model, full), poutine.condition(guide, full), x, mask)[0]
        for i, L in enumerate(lengths.tolist()):
            data = {site_name("z", t): tr.nodes[site_name("z", t)]["value"][i:i + 1] for t in range(1, L + 1)}
            lw_i = log_weights(poutine.condition(model, data), poutine.condition(guide, data), x[i:i + 1, :L])
            assert torch.allclose(lw[i], lw_i[0, 0], rtol=1e-4, atol=1e-3), (i, lw[i], lw_i)


@pytest.mark.parametrize("name,guide,iaf", PRESET_CASES, ids=["-".join(c) for c in PRESET_CASES])
def test_preset_contract(name, guide, iaf):
    check_contract(*build(name, guide, iaf))


@pytest.mark.parametrize("name,guide", SPEC_CASES, ids=["-".join(c) for c in SPEC_CASES])
def test_every_spec_contract(name, guide):
    check_contract(*build(name, guide))


@pytest.mark.parametrize("name,guide", SPEC_CASES, ids=["-".join(c) for c in SPEC_CASES])
def test_every_spec_batch_equals_sequences_one_at_a_time(name, guide):
    check_batch_equals_single(*build(name, guide))


@pytest.mark.parametrize("name,guide,iaf", [c for c in PRESET_CASES if c[2] != "conditional"],
                         ids=["-".join(c) for c in PRESET_CASES if c[2] != "conditional"])
def test_preset_batch_equals_sequences_one_at_a_time(name, guide, iaf):
    check_batch_equals_single(*build(name, guide, iaf))


@pytest.mark.parametrize("emission", ["bernoulli", "itakura_saito", "gaussian_power"])
def test_emission_families(emission):
    model, guide = build("arssm", "full", emission=emission)
    check_contract(model, guide, binary=emission == "bernoulli", positive=emission != "bernoulli")
    x, _ = model.generate(4, batch_size=3)
    if emission == "bernoulli":
        assert set(x.unique().tolist()) <= {0.0, 1.0}
    else:
        assert (x >= 0).all() if emission == "itakura_saito" else torch.isfinite(x).all()


def test_a_new_emission_family_is_one_registered_class(monkeypatch):
    """A Poisson family, registered in the test: the model, the data check, the output initialisation
    and the training engine's defaults all take it from the registry alone."""
    import pyro.distributions as dist

    from pyro_dssm.nn import emissions

    monkeypatch.setattr(emissions, "_EMISSIONS", dict(emissions._EMISSIONS))  # unregistered after the test

    @emissions.register_emission
    class Poisson(emissions.Emission):
        name, num_params, density, support = "poisson", 1, False, "counts (non-negative integers)"

        def distribution(self, out, min_scale):
            return dist.Poisson(out[0].clamp(-20, 20).exp()).to_event(1)

        def bad_values(self, x):
            return (x < 0) | (x != x.round())

        def initial_biases(self, n, mean, std, min_scale):
            return [mean.clamp_min(1e-3).log()]

    assert "poisson" in emissions.list_emissions()
    model, guide = build("srnn", "full", emission="poisson")
    x, mask = ragged_batch(X_DIM)
    counts = (x.abs() * 3).round()
    check_gradients_reach_everything(model, guide, counts, mask)
    model.init_from_data(counts, mask)
    head = model.emitter.heads[0].bias
    torch.testing.assert_close(head.exp(), counts[mask].mean(0).clamp_min(1e-3), rtol=1e-4, atol=1e-6)
    with pytest.raises(ValueError, match="x must be counts"):
        model(counts + 0.5, mask)
    xs, _ = model.generate(3, batch_size=2)
    assert (xs >= 0).all() and torch.equal(xs, xs.round())


def test_itakura_saito_is_the_exponential_power_density():
    model = create_model("hmm", x_dim=2, emission="itakura_saito", **TINY)
    v = torch.tensor([0.5, 2.0])
    d = model.emitter.forward(torch.zeros(1, 3))
    # -log p(x | v) = log v + x / v for the decoder's own v
    x = torch.tensor([[1.0, 3.0]])
    v = 1.0 / d.base_dist.rate
    assert torch.allclose(-d.log_prob(x), (v.log() + x / v).sum(-1))


@pytest.mark.parametrize("missing", [False, True])
def test_ls4_contract_where_it_applies(missing):
    """LS4 from the registry: gradients reach every parameter, the guide's path has shape (B, T, z_dim),
    padded steps count exactly zero whatever they hold, and prior samples and continuations have the
    right shapes. Not applicable: per-step site names (LS4 samples one path site ``z``), IAFs, and the
    spec-derived guides (its guide is eq. 13 of the LS4 paper)."""
    assert list_models(family="ls4") == ["ls4"]
    model = create_model("ls4", x_dim=X_DIM, z_dim=2, h_dim=4, N=4, depth=1, missing=missing)
    guide = create_guide("ls4", model)
    x, mask = ragged_batch(X_DIM)
    if missing:
        x = torch.where(torch.rand_like(x) < 0.3, torch.full_like(x, float("nan")), x)
    check_gradients_reach_everything(model, guide, x, mask)
    with torch.no_grad():
        assert guide(x, mask).shape == (x.shape[0], x.shape[1], model.config.z_dim)
    junk = torch.where(mask.unsqueeze(-1), x, torch.full_like(x, 3.0))
    check_padding_is_ignored(model, guide, x, junk, mask, atol=1e-4)
    xs, zs = model.generate(3, batch_size=2)
    assert xs.shape == (2, 3, X_DIM) and zs.shape == (2, 3, model.config.z_dim)
    if not missing:
        xs, _ = model.generate(2, prefix=x[:2, :3], guide=guide)
        assert xs.shape == (2, 5, X_DIM) and torch.equal(xs[:, :3], x[:2, :3])
    # plain SVI in a user's code trains it
    svi = SVI(model, guide, Adam({"lr": 1e-2}), TraceMeanField_ELBO())
    before = {n: p.detach().clone() for n, p in guide.named_parameters()}
    assert all(math.isfinite(svi.step(x, mask)) for _ in range(2))
    assert any(not torch.equal(before[n], p) for n, p in guide.named_parameters())


def test_plain_svi_in_user_code_trains_every_preset_a_few_steps():
    x, mask = ragged_batch(X_DIM)
    for name in list_models(family="dssm"):  # LS4 in plain SVI: tests/test_ls4_model.py
        pyro.clear_param_store()
        model, guide = build(name, "full", "iaf")
        svi = SVI(model, guide, Adam({"lr": 1e-2}), TraceMeanField_ELBO())
        losses = [svi.step(x, mask) for _ in range(3)]
        assert all(torch.isfinite(torch.tensor(losses)))
        before = {n: p.detach().clone() for n, p in guide.named_parameters()}
        svi.step(x, mask)
        assert any(not torch.equal(before[n], p) for n, p in guide.named_parameters()), name


def test_kl_annealing_scales_the_latent_sites_only():
    model, guide = build("arssm", "full")
    x, mask = ragged_batch(X_DIM)
    losses = {}
    for a in (0.25, 0.5, 1.0):
        pyro.set_rng_seed(3)
        losses[a] = TraceMeanField_ELBO().loss(model, guide, x, mask, annealing_factor=a)
    # loss(a) = reconstruction + a * KL: linear in a for a fixed draw
    kl = (losses[1.0] - losses[0.5]) / 0.5
    assert kl > 0
    assert abs((losses[0.5] - losses[0.25]) / 0.25 - kl) < 1e-3 * abs(kl)
    with pytest.raises(ValueError, match="annealing_factor"):
        model(x, mask, annealing_factor=0.0)


def test_observation_recurrence_runs_once_per_batch():
    model, guide = build("arssm", "full")
    calls = []
    model.x_rnn.register_forward_hook(lambda *a: calls.append(1))
    x, mask = ragged_batch(X_DIM)
    model(x, mask)
    assert len(calls) == 1
    calls.clear()
    guide(x, mask)  # the full guide reuses h^2_t, again in one call
    assert len(calls) == 1


@pytest.mark.parametrize("hoisted", [True, False])
def test_iaf_samples_are_scored_without_inverting_the_flow(hoisted, monkeypatch):
    from pyro_dssm.guides.guide import MaskedARN
    from pyro_dssm.nn import hoisted_steps

    model, guide = build("arssm", "full", "iaf")
    calls = []
    for f in guide.iafs:  # the plain path calls the networks themselves ...
        f.arn.register_forward_hook(lambda *a: calls.append(1))
    masked_call = MaskedARN.__call__  # ... the hoisted one their masked weights, formed once per call

    def counted(self, z):
        calls.append(1)
        return masked_call(self, z)

    monkeypatch.setattr(MaskedARN, "__call__", counted)
    x, mask = ragged_batch(X_DIM)
    with hoisted_steps(hoisted):
        TraceMeanField_ELBO().loss(model, guide, x, mask)
    T, L = x.shape[1], len(guide.iafs)
    # one network pass per flow and step when sampling; inverting would cost z_dim passes each
    assert len(calls) == T * L


@pytest.mark.parametrize("conditional", [False, True])
def test_flow_density_scored_at_sampling_equals_the_inverted_flow(conditional):
    """The cached score of an IAF sample equals log q computed afresh by inverting the flow (eq. 12)."""
    model, guide = build("arssm", "full", "conditional" if conditional else "iaf")
    x, mask = ragged_batch(X_DIM)
    tr = poutine.trace(guide).get_trace(x, mask)
    for t in (1, 3):
        site = tr.nodes[site_name("z", t)]
        fn = site["fn"]
        while not hasattr(fn, "transforms"):  # unwrap masking
            fn = fn.base_dist
        cached = fn.log_prob(site["value"])
        fresh = [type(f)(f.arn) for f in fn.transforms]  # the same networks, empty caches
        inverted = pyro.distributions.TransformedDistribution(fn.base_dist, fresh).log_prob(site["value"].clone())
        assert torch.allclose(cached, inverted, atol=1e-4)
