"""The LS4 model and guide: convolution-mode scores against the recurrence, causality, the eq. (5) objective."""

import pyro
import pyro.distributions as dist
import pytest
import torch
from pyro import poutine
from pyro.infer import TraceMeanField_ELBO

from pyro_dssm.infer import elbo_per_sequence, iwae_per_sequence
from pyro_dssm.nn.ls4 import LS4UNet
from pyro_dssm.models.ls4 import LS4Config, LS4Guide, LS4Likelihood, LS4Model, LS4Prior, PathNormal


def _pair(use_x=True, **kw):
    torch.manual_seed(0)
    cfg = LS4Config(x_dim=3, z_dim=2, H=8, N=8, depth=2, decoder_uses_x=use_x, **kw)
    m = LS4Model(cfg)
    return m, LS4Guide(m)


@pytest.mark.parametrize("use_x,levels", [(True, 1), (False, 1), (True, 0), (True, 2)])
def test_log_probs_in_convolution_mode_equal_the_recurrence(use_x, levels):
    m, _ = _pair(use_x, levels=levels)
    z, x = torch.randn(2, 40, 2), torch.randn(2, 40, 3)
    with torch.no_grad():
        prior = LS4Prior(m, 2, 40)
        lik = LS4Likelihood(m, z)
        # the same factors one step at a time
        ps, ds = m.prior_net.default_state(2), m.decoder.default_state(2)
        u, v = m.z_first.expand(2, -1), m.x_first.expand(2, -1)
        lp_z = lp_x = 0
        for t in range(40):
            out, ps = m.prior_net.step(u, ps)
            loc, raw = out.chunk(2, -1)
            lp_z = lp_z + dist.Normal(loc, torch.nn.functional.softplus(raw) + 1e-4).log_prob(z[:, t]).sum(-1)
            mu, ds = m.decoder.step(v, z[:, t], ds)
            lp_x = lp_x + dist.Normal(mu, 0.1).log_prob(x[:, t]).sum(-1)
            u, v = z[:, t], x[:, t]
        torch.testing.assert_close(prior.log_prob(z), lp_z, rtol=1e-4, atol=1e-3)
        torch.testing.assert_close(lik.log_prob(x), lp_x, rtol=1e-4, atol=1e-2)


@pytest.mark.parametrize("streams,levels", [(1, 0), (1, 2), (2, 1)])
def test_unet_backbone_widths_skips_and_recurrence(streams, levels):
    """App. C's U-Net: widths double per level, and the recurrent step equals convolution mode."""
    torch.manual_seed(1)
    net = LS4UNet(streams, H=4, N=4, depth=2, levels=levels)
    assert [p.block.mix_x.in_features if streams == 2 else p.block.mix.in_features
            for p in net.center] == [4 * 2 ** levels] * 2
    assert [lvl[0].res.down.out_features // streams for lvl in net.up_pairs] == [4 * 2 ** k for k in
                                                                                 reversed(range(levels))]
    hs = [torch.randn(3, 30, 4) for _ in range(streams)]
    with torch.no_grad():
        full = net(hs)
        state, outs = net.default_state(3), []
        for t in range(30):
            out, state = net.step([h[:, t] for h in hs], state)
            outs.append(out)
    for i in range(streams):
        torch.testing.assert_close(torch.stack([o[i] for o in outs], 1), full[i], rtol=1e-4, atol=1e-4)
    with pytest.raises(ValueError, match="levels >= 0"):
        LS4UNet(1, 4, levels=-1)


def test_causality_of_prior_decoder_and_guide():
    m, g = _pair()
    z = torch.randn(1, 12, 2, requires_grad=True)
    x = torch.randn(1, 12, 3, requires_grad=True)
    n = 6
    loc, _ = LS4Prior(m, 1, 12).step_params(z)
    (gz,) = torch.autograd.grad(loc[0, n].sum(), z)
    assert float(gz[0, n:].abs().max()) < 1e-6 * float(gz[0, :n].abs().max())  # p(z_n | z_{<n})
    mu = LS4Likelihood(m, z).locs(x)
    gx, gz = torch.autograd.grad(mu[0, n].sum(), (x, z))
    assert float(gx[0, n:].abs().max()) < 1e-6 * float(gx[0, :n].abs().max())  # x_{<n} only
    assert float(gz[0, n + 1:].abs().max()) < 1e-6 * float(gz[0, :n + 1].abs().max())  # z_{<=n}
    assert float(gz[0, n].abs().sum()) > 0
    qloc, _ = g.posterior(x)
    (gx,) = torch.autograd.grad(qloc[0, n].sum(), x)
    assert float(gx[0, n + 1:].abs().max()) < 1e-6 * float(gx[0, :n + 1].abs().max())  # q(z_n | x_{<=n})
    assert float(gx[0, n].abs().sum()) > 0


@pytest.mark.parametrize("output", ["identity", "sigmoid"])
def test_recurrent_sampling_follows_the_convolution_mode(monkeypatch, output):
    """With the noise switched off, sampling returns z_n = mu_n(z_{<n}) and x_n = mu_n(x_{<n}, z_{<=n})."""
    m, _ = _pair(output=output)
    monkeypatch.setattr(dist.Normal, "sample", lambda self, sample_shape=torch.Size(): self.loc.clone())
    monkeypatch.setattr(torch, "randn_like", lambda t: torch.zeros_like(t))
    x, z = m.generate(25, batch_size=3)
    assert x.shape == (3, 25, 3) and z.shape == (3, 25, 2)
    loc, _ = LS4Prior(m, 3, 25).step_params(z)
    torch.testing.assert_close(loc, z, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(LS4Likelihood(m, z).locs(x), x, rtol=1e-4, atol=1e-5)
    # the Pyro model's own sites sample the same way
    tr = poutine.trace(m).get_trace(None, num_steps=25, batch_size=3)
    torch.testing.assert_close(tr.nodes["z"]["value"], z)
    torch.testing.assert_close(tr.nodes["x"]["value"], x)
    if output == "sigmoid":
        assert float(x.min()) > 0 and float(x.max()) < 1
    # continuing a prefix: the prefix is kept, the continuation follows the convolution mode
    _, g = _pair(output=output)
    prefix = torch.randn(2, 7, 3)
    xc, zc = m.generate(9, prefix=prefix, guide=g)
    assert xc.shape == (2, 16, 3) and torch.equal(xc[:, :7], prefix)
    loc, _ = LS4Prior(m, 2, 16).step_params(zc)
    torch.testing.assert_close(loc[:, 7:], zc[:, 7:], rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(LS4Likelihood(m, zc).locs(xc)[:, 7:], xc[:, 7:], rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("use_x", [True, False])
def test_generated_means_are_the_decoder_means_of_the_noisy_path(use_x):
    """mean=True returns mu_x at each step of the same path: the noisy sample minus it is the sigma_x noise,
    the latents are the same, and with the x-conditioned decoder the noisy values still drive the next step."""
    m, _ = _pair(use_x=use_x, obs_scale=0.3)
    pyro.set_rng_seed(1)
    x, z = m.generate(40, batch_size=50)
    pyro.set_rng_seed(1)
    mu, z2 = m.generate(40, batch_size=50, mean=True)
    assert torch.equal(z, z2)
    noise = (x - mu) / 0.3
    assert abs(float(noise.mean())) < 0.05 and abs(float(noise.std()) - 1) < 0.05
    # mu is the decoder's mean given the path's own (noisy) past: eq. (10) in convolution mode
    torch.testing.assert_close(LS4Likelihood(m, z).locs(x), mu, rtol=1e-4, atol=1e-5)
    if use_x:  # fed back the means instead, the path would differ
        assert not torch.allclose(LS4Likelihood(m, z).locs(mu), mu, atol=1e-3)


def test_the_prior_stack_takes_its_own_sizes():
    small, _ = _pair()
    big, _ = _pair(prior_H=16, prior_N=12, prior_depth=3)
    count = lambda net: sum(p.numel() for p in net.parameters())  # noqa: E731
    assert count(big.prior_net) > count(small.prior_net)
    assert count(big.decoder) == count(small.decoder)  # the other stacks keep H, N, depth
    x, z = big.generate(10, batch_size=2)
    assert z.shape == (2, 10, 2)
    with pytest.raises(ValueError, match="prior_N must be even"):
        LS4Config(x_dim=1, prior_N=5)
    with pytest.raises(ValueError, match="prior_depth must be a positive integer"):
        LS4Config(x_dim=1, prior_depth=0)


def test_elbo_is_eq5_with_the_analytic_per_step_kl():
    m, g = _pair()
    x = torch.randn(3, 15, 3)
    pyro.set_rng_seed(7)
    loss = TraceMeanField_ELBO().differentiable_loss(m, g, x)
    pyro.set_rng_seed(7)
    gtr = poutine.trace(g).get_trace(x)
    z = gtr.nodes["z"]["value"]
    q = gtr.nodes["z"]["fn"]
    assert isinstance(q, PathNormal)
    loc_p, scale_p = LS4Prior(m, 3, 15).step_params(z)
    loc_q, scale_q = g.posterior(x)
    kl = torch.distributions.kl_divergence(dist.Normal(loc_q, scale_q), dist.Normal(loc_p, scale_p)).sum()
    rec = LS4Likelihood(m, z).log_prob(x).sum()
    torch.testing.assert_close(loss, kl - rec, rtol=1e-5, atol=1e-3)
    # ... which differs from the Monte-Carlo KL estimate log q(z) - log p(z) at the same path
    mc = q.log_prob(z).sum() - LS4Prior(m, 3, 15).log_prob(z).sum()
    assert abs(float((mc - kl).detach())) > 1e-3


def test_masked_steps_and_ragged_batches():
    m, g = _pair()
    lengths = [10, 6]
    x = torch.randn(2, 10, 3)
    mask = torch.arange(10) < torch.tensor(lengths)[:, None]
    z = torch.randn(2, 10, 2)
    x2, z2 = x.clone(), z.clone()
    x2[1, 6:], z2[1, 6:] = 1e3, -1e3  # whatever the padding holds
    with torch.no_grad():
        a = LS4Prior(m, 2, 10, mask).log_prob(z) + LS4Likelihood(m, z, mask).log_prob(x)
        b = LS4Prior(m, 2, 10, mask).log_prob(z2) + LS4Likelihood(m, z2, mask).log_prob(x2)
        torch.testing.assert_close(a, b)
        # the short sequence alone
        alone = LS4Prior(m, 1, 6).log_prob(z[1:, :6]) + LS4Likelihood(m, z[1:, :6]).log_prob(x[1:, :6])
        torch.testing.assert_close(a[1:], alone, rtol=1e-5, atol=1e-3)
        q = PathNormal(*g.posterior(torch.where(mask[..., None], x2, 0.0)), mask)
        q_alone = PathNormal(*g.posterior(x[1:, :6]))
        torch.testing.assert_close(q.log_prob(z)[1:], q_alone.log_prob(z[1:, :6]), rtol=1e-5, atol=1e-3)


def test_gradients_particles_and_bad_input():
    m, g = _pair()
    x = torch.randn(2, 8, 3)
    TraceMeanField_ELBO().differentiable_loss(m, g, x).backward()
    for name, p in [*m.named_parameters(), *g.named_parameters()]:
        assert p.grad is not None and bool(p.grad.abs().sum() > 0), name
    with torch.no_grad():
        elbo, _ = elbo_per_sequence(m, g, x, num_particles=4)
        iwae = iwae_per_sequence(m, g, x, num_particles=64)
    assert elbo.shape == iwae.shape == (2,) and bool((iwae >= elbo - 1.0).all())
    with pytest.raises(ValueError, match="x_dim=4"):
        m(torch.randn(2, 8, 4))
    with pytest.raises(ValueError, match="NaN or inf"):
        g(torch.full((2, 8, 3), float("nan")))
    with pytest.raises(ValueError, match="num_steps must be a positive integer"):
        m(None)
    with pytest.raises(ValueError, match="must be even"):
        LS4Config(x_dim=3, N=7)
    with pytest.raises(ValueError, match="z_dim must be a positive integer"):
        LS4Config(x_dim=3, z_dim=0)


def test_ls4_trains_through_the_engine(tmp_path):
    import numpy as np

    from pyro_dssm.config import TrainConfig
    from pyro_dssm.training import train
    from pyro_dssm.training.engine import build_model_and_guide

    rng = np.random.default_rng(0)
    t = np.arange(40)
    x = np.sin(t[None, :, None] * rng.uniform(0.1, 0.3, (30, 1, 1))) + 0.05 * rng.normal(size=(30, 40, 2))
    np.save(tmp_path / "sines.npy", x.astype(np.float32))
    cfg = TrainConfig(model="ls4", guide="ls4", data=str(tmp_path / "sines.npy"), epochs=3, batch_size=8, z_dim=2,
                      h_dim=8, model_options={"N": 8, "depth": 1}, out=str(tmp_path / "run"), progress=False,
                      eval_particles=2)
    metrics = train(cfg, log=lambda *a: None)
    assert metrics["emission"] == "gaussian"
    assert metrics["test_nelbo_per_step"] < metrics["test_nelbo_per_step_untrained"]
    with pytest.raises(ValueError, match="use --guide ls4"):
        build_model_and_guide(cfg.replace(guide="partial"), 2, "gaussian")
    with pytest.raises(ValueError, match="not available for it"):
        build_model_and_guide(cfg, 2, "bernoulli")
    with pytest.raises(ValueError, match="--iaf and --jit"):
        build_model_and_guide(cfg.replace(iaf=1), 2, "gaussian")
    with pytest.raises(ValueError, match="unknown LS4 option"):
        build_model_and_guide(cfg.replace(model_options={"bogus": 1}), 2, "gaussian")
