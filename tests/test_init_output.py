"""Data-driven output initialisation: the initial predictions sit at the training data's statistics."""

import numpy as np
import pyro.poutine as poutine
import pytest
import torch

import pyro_dssm
from pyro_dssm.nn.layers import EMISSIONS, data_moments, inverse_softplus
from pyro_dssm.resynthesis import _unmask

from conftest import TINY

B, T, D = 6, 12, 5


def family_data(family: str, seed: int = 0):
    """``(x, mask)`` with per-dimension statistics far from PyTorch's default outputs."""
    g = torch.Generator().manual_seed(seed)
    mask = torch.arange(T) < torch.tensor([[12], [9], [12], [4], [7], [12]])
    if family == "bernoulli":
        p = torch.tensor([0.02, 0.05, 0.1, 0.3, 0.6])
        x = (torch.rand(B, T, D, generator=g) < p).float()
    elif family == "gaussian":
        x = 5.0 + torch.tensor([0.1, 0.3, 1.0, 3.0, 10.0]) * torch.randn(B, T, D, generator=g)
    else:  # power spectra over six orders of magnitude
        x = torch.tensor([1e-3, 1e-1, 1.0, 1e2, 1e3]) * torch.distributions.Exponential(1.0).sample((B, T, D))
    return x * mask.unsqueeze(-1), mask


def initial_outputs(model, guide, x, mask):
    """Per step, the emission distribution's statistics that the initialisation targets, ``(B, T, D)`` each."""
    guide_tr = poutine.trace(guide).get_trace(x, mask)
    model_tr = poutine.trace(poutine.replay(model, trace=guide_tr)).get_trace(x, mask)
    fns = [_unmask(model_tr.nodes[f"x_{t}"]["fn"]).base_dist for t in range(1, T + 1)]  # under to_event(1)
    fam = model.config.emission
    if fam == "bernoulli":
        return {"logit": torch.stack([f.logits for f in fns], -2)}
    if fam == "itakura_saito":
        return {"log_power": torch.stack([f.mean.log() for f in fns], -2)}
    return {"loc": torch.stack([f.mean for f in fns], -2), "scale": torch.stack([f.stddev for f in fns], -2)}


def mismatch(model, guide, x, mask) -> float:
    """Largest per-dimension distance between the average initial prediction and the data statistic (in nats
    of log-odds, log power, or data standard deviations)."""
    n, mean, std = (t.float() for t in data_moments(x, mask))
    with torch.no_grad():
        out = initial_outputs(model, guide, x, mask)
    m = mask.unsqueeze(-1).float()
    avg = {k: (v * m).sum((0, 1)) / m.sum((0, 1)) for k, v in out.items()}
    if "logit" in avg:
        p = (mean * n + 0.5) / (n + 1)
        return float((avg["logit"] - (p.log() - (-p).log1p())).abs().max())
    if "log_power" in avg:
        return float((avg["log_power"] - mean.log()).abs().max())
    return float(max(((avg["loc"] - mean) / std).abs().max(), (avg["scale"] / std).log().abs().max()))


@pytest.mark.parametrize("family", EMISSIONS)
@pytest.mark.parametrize("name", pyro_dssm.list_models(family="dssm"))  # LS4: its own test below
def test_initial_predictions_match_the_data_for_every_preset_and_family(name, family):
    x, mask = family_data(family)
    torch.manual_seed(0)
    model = pyro_dssm.create_model(name, x_dim=D, emission=family, **TINY)
    guide = pyro_dssm.create_guide("partial", model, rnn_dim=6, hidden_dim=6)
    before = mismatch(model, guide, x, mask)
    assert model.init_from_data(x, mask) is model
    after = mismatch(model, guide, x, mask)
    # the hidden layers keep their random start, so predictions vary around the statistics, not far
    assert after < 0.9, (name, family, after)
    assert before > 1.5 and before > 2.5 * after, (name, family, before)  # PyTorch's default is far from them


def test_bias_values_are_the_statistics_and_padding_is_ignored():
    x, mask = family_data("bernoulli")
    x_padded = x.clone()
    x_padded[~mask] = 1.0  # padding must not count
    model = pyro_dssm.create_model("arssm", x_dim=D, emission="bernoulli", **TINY)
    model.init_from_data(x_padded, mask)
    k = (x * mask.unsqueeze(-1)).sum((0, 1))
    n = mask.sum()
    p = (k + 0.5) / (n + 1)
    torch.testing.assert_close(model.emitter.heads[0].bias, (p.log() - (-p).log1p()).float())
    g = pyro_dssm.create_model("dmm", x_dim=D, emission="gaussian", **TINY)
    xg, mg = family_data("gaussian")
    g.init_from_data(xg, mg)
    _, mean, std = data_moments(xg, mg)
    torch.testing.assert_close(g.emitter.heads[0].bias, mean.float())
    torch.testing.assert_close(torch.nn.functional.softplus(g.emitter.heads[1].bias) + g.config.min_scale,
                               std.float(), rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(inverse_softplus(torch.nn.functional.softplus(torch.tensor([0.01, 3.0, 40.0]))),
                               torch.tensor([0.01, 3.0, 40.0]))


def test_linear_gaussian_head_gets_the_data_scale():
    x, mask = family_data("gaussian")
    model = pyro_dssm.create_model("hmm", x_dim=D, z_dim=2, transition_net="linear", emission_net="linear")
    model.init_from_data(x, mask)
    _, _, std = data_moments(x, mask)
    torch.testing.assert_close(model.emitter.body.scale_value, std.float(), rtol=1e-5, atol=1e-5)


def test_ls4_decoder_starts_at_the_data_mean_and_skips_unobserved_values():
    from pyro_dssm.models.ls4 import LS4Config, LS4Guide, LS4Model

    x, mask = family_data("gaussian")
    x = x.clone()
    x[0, 0, 0] = float("nan")  # unobserved (irregular sampling)
    _, mean, std = data_moments(x, mask)
    assert torch.isfinite(mean).all()

    def distance(init: bool) -> float:
        torch.manual_seed(0)
        model = LS4Model(LS4Config(x_dim=D, z_dim=2, H=8, N=4, depth=1, missing=True))
        if init:
            model.init_from_data(x, mask)
            torch.testing.assert_close(model.decoder.head.bias, mean.float())
        guide = LS4Guide(model)
        tr = poutine.trace(poutine.replay(model, trace=poutine.trace(guide).get_trace(x, mask))).get_trace(x, mask)
        locs = tr.nodes["x"]["fn"].locs(x)
        m = mask.unsqueeze(-1).float()
        avg = (locs * m).sum((0, 1)) / m.sum((0, 1))
        return float(((avg - mean) / std).abs().max())

    after, before = distance(True), distance(False)
    assert after < 1.2 and before > 10 * after, (after, before)
    sig = LS4Model(LS4Config(x_dim=D, z_dim=2, H=8, N=4, depth=1, output="sigmoid"))
    y = torch.rand(B, T, D) * 0.2
    sig.init_from_data(y)
    torch.testing.assert_close(torch.sigmoid(sig.decoder.head.bias), y.mean((0, 1)), rtol=1e-4, atol=1e-5)


def test_init_from_data_checks_its_input():
    model = pyro_dssm.create_model("dmm", x_dim=D, emission="bernoulli", **TINY)
    with pytest.raises(ValueError, match="binary"):
        model.init_from_data(torch.full((2, 3, D), 0.5))
    with pytest.raises(ValueError, match="x_dim"):
        model.init_from_data(torch.zeros(2, 3, D + 1))


def test_the_engine_initialises_by_default_and_not_when_told(tmp_path, short_rolls):
    from pyro_dssm.config import TrainConfig
    from pyro_dssm.training import train

    common = dict(data=str(short_rolls), model="dmm", guide="partial", epochs=1, max_sequences=6, z_dim=2,
                  h_dim=8, hidden_dim=8, guide_rnn_dim=8, batch_size=3, eval_particles=2, progress=False)
    on = train(TrainConfig(**common, out=str(tmp_path / "on")), log=lambda *a: None)
    off = train(TrainConfig(**common, init_output=False, out=str(tmp_path / "off")), log=lambda *a: None)
    # untrained: the log-odds start scores near the independent-keys NLL, PyTorch's default near 88 log 2
    assert on["test_nelbo_per_step_untrained"] < 30 < off["test_nelbo_per_step_untrained"]
    assert off["test_nelbo_per_step_untrained"] == pytest.approx(88 * np.log(2), rel=0.2)
