"""The benchmarks still run (tiny sizes): each prints its side-by-side ratios."""

import importlib.util
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _load(name):
    spec = importlib.util.spec_from_file_location(name, ROOT / "benchmarks" / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_ls4_runtime_benchmark(capsys):
    _load("ls4_runtime").main(["--lengths", "16", "24", "--width", "8", "--state", "8", "--depth", "1",
                               "--repeats", "1", "--batch-size", "2", "--step-length", "5"])
    out = capsys.readouterr().out
    rows = re.findall(r"^\| (\d+) \| ([\d.]+) \| ([\d.]+) \| ([\d.]+)x \| ([\d.]+) \| ([\d.]+) \| ([\d.]+)x \|$", out,
                      re.M)
    assert [r[0] for r in rows] == ["16", "24"]
    for r in rows:
        ls4, vrnn, ratio = float(r[1]), float(r[2]), float(r[3])
        assert ls4 > 0 and vrnn > 0 and ratio == pytest.approx(vrnn / ls4, rel=0.1, abs=0.06)
    steps = re.findall(r"^\| (\d+) \| ([\d.]+) \| ([\d.]+) \| ([\d.]+) \| ([\d.]+)x \| ([\d.]+)x \|$", out, re.M)
    assert [r[0] for r in steps] == ["8", "256"]
    for r in steps:
        c64, c128, vrnn, ratio, double = map(float, r[1:])
        assert ratio == pytest.approx(c64 / vrnn, rel=0.1, abs=0.06)
        assert double == pytest.approx(c128 / c64, rel=0.1, abs=0.06)


def test_speech_features_benchmark(capsys, monkeypatch, tmp_path):
    import os

    pytest.importorskip("librosa")
    monkeypatch.setenv("PYRO_DSSM_DATA", str(tmp_path))
    _load("speech_features").main(["--tile", "1", "--repeats", "1"])
    assert os.environ["PYRO_DSSM_DATA"] == str(tmp_path)  # the benchmark's own cache folder is gone again
    out = capsys.readouterr().out
    m = re.search(r"max relative difference ([\d.e+-]+)", out)
    assert m and float(m.group(1)) < 1e-5  # the torch and librosa spectrograms agree
    assert re.search(r"from cache [\d.]+ s, ratio [\d.]+x", out)


def _preset_guide_cases():
    from pyro_dssm import create_model, list_models

    from conftest import valid_guides

    return [(n, g) for n in list_models(family="dssm")  # the taxonomy's per-step guides; LS4 has its own benchmark
            for g in valid_guides(create_model(n, x_dim=4))]


@pytest.mark.parametrize("name,guide", _preset_guide_cases())
def test_plain_reference_is_the_same_elbo_with_the_same_gradients(name, guide):
    """The benchmark's limit computes exactly our loss: same value and gradients under the same seed."""
    import torch
    from pyro.infer import TraceMeanField_ELBO

    from pyro_dssm import create_guide, create_model

    from conftest import TINY, TINY_GUIDE, ragged_batch

    plain = _load("plain_elbo").plain_negative_elbo
    model = create_model(name, x_dim=4, emission="bernoulli", **TINY)
    g = create_guide(guide, model, **TINY_GUIDE)
    x, mask = ragged_batch(4, binary=True)
    params = [p for p in list(model.parameters()) + list(g.parameters())]
    out = []
    for fn in (lambda: TraceMeanField_ELBO().differentiable_loss(model, g, x, mask, annealing_factor=0.3),
               lambda: plain(model, g, x, mask, 0.3)):
        torch.manual_seed(3)
        loss = fn()
        out.append((loss.detach(), torch.autograd.grad(loss, params, allow_unused=True)))
    (l1, g1), (l2, g2) = out
    assert abs(l1 - l2) < 2e-5
    torch.manual_seed(4)
    assert abs(l1 - plain(model, g, x, mask, 0.3).detach()) > 1e-4  # a new draw differs
    for a, b in zip(g1, g2):
        assert (a is None) == (b is None)
        if a is not None:
            assert torch.allclose(a, b, rtol=1e-4, atol=1e-5)


def test_plain_reference_refuses_flows():
    from pyro_dssm import create_guide, create_model

    from conftest import ragged_batch

    model = create_model("dmm", x_dim=4, z_dim=3)
    g = create_guide("full", model, num_iafs=1, iaf_dim=8)
    with pytest.raises(ValueError, match="no flows"):
        _load("plain_elbo").plain_negative_elbo(model, g, *ragged_batch(4))


def test_svi_step_benchmark(capsys, tmp_path):
    import json

    out_json = tmp_path / "rows.json"
    _load("svi_step").main(["--sizes", "tiny", "--models", "arssm", "vrnn", "--steps", "2", "--iafs", "2",
                            "--json", str(out_json)])
    out = capsys.readouterr().out
    rows = re.findall(r"^tiny +(\w+) +(\w+) +([\d.]+) +([\d.]+) +([\d.]+) +([\d.]+) +([\d.]+) +([\d.]+) +([\d.]+)"
                      r" +([\d.]+) +([\d.]+)  ", out, re.M)
    assert [(r[0], r[1]) for r in rows] == [("arssm", "partial"), ("arssm", "full"), ("vrnn", "partial"),
                                          ("vrnn", "full")]
    saved = json.loads(out_json.read_text())
    for r, j in zip(rows, saved):
        ours, pyro_ms, plain, ours_ratio, pyro_ratio, iaf, iaf_ratio = map(float, r[2:9])
        assert ours_ratio == pytest.approx(ours / plain, rel=0.02, abs=0.01)
        assert pyro_ratio == pytest.approx(pyro_ms / plain, rel=0.02, abs=0.01)
        assert iaf_ratio == pytest.approx(iaf / ours, rel=0.02, abs=0.01)
        assert j["ours_over_plain"] == pytest.approx(j["ms"]["ours"] / j["ms"]["plain"])
        # the old per-step path, side by side: the printed speed-ups are its times over the new ones
        assert float(r[9]) == pytest.approx(j["ms"]["old"] / j["ms"]["ours"], rel=0.02, abs=0.01)
        assert float(r[10]) == pytest.approx(j["ms"]["iaf_old"] / j["ms"]["iaf"], rel=0.02, abs=0.01)
        # memory kept for backward: positive, and the flows keep more than the plain guide
        mb = j["mem_mb"]
        assert 0 < mb["plain"] and 0 < mb["ours"] < mb["iaf"]
        assert mb["ours"] <= mb["pyro"]  # the lean ELBO keeps no unused log-densities
    assert re.search(r"# tiny: ours/plain median [\d.]+, max [\d.]+; pyro/plain median [\d.]+; iaf/ours median "
                     r"[\d.]+, max [\d.]+, \d+ of 4 rows above 1.5; old/ours median [\d.]+", out)


def test_jit_benchmark_rows(capsys):
    _load("jit_elbo").main(["--model", "dmm", "--steps", "2", "--crop", "4", "--batch-size", "3", "--threads", "1"])
    out = capsys.readouterr().out
    rows = re.findall(r"^\| (\w+) \| (\d+) \| (\d+) \| ([\d.]+) \| ([\d.]+) \|$", out, re.M)
    assert [r[0] for r in rows] == ["dmm"]
    e, j, ratio = float(rows[0][1]), float(rows[0][2]), float(rows[0][3])
    assert ratio == pytest.approx(e / j, rel=0.3, abs=0.1)  # the printed milliseconds are rounded


def test_epoch_eval_benchmark(capsys):
    _load("epoch_eval").main(["--max-sequences", "6", "--batch-size", "3", "--epochs", "1", "--iwae", "4",
                              "--seq-subset", "2", "--threads", "1", "--ablation"])
    out = capsys.readouterr().out
    m = re.search(r"epoch s: engine ([\d.]+), engine_old ([\d.]+), ours ([\d.]+), plain ([\d.]+)", out)
    assert m
    engine, engine_old, ours, plain = map(float, m.groups())

    def consistent(ratio, num, den, half=0.0005):
        """The printed ratio (2 decimals) lies in the range the printed times (3 decimals) allow."""
        return (num - half) / (den + half) - 0.005 <= ratio <= (num + half) / max(den - half, 1e-9) + 0.005

    r = re.search(r"ratio ours/plain: ([\d.]+)", out)
    assert consistent(float(r.group(1)), ours, plain), (r.group(1), ours, plain)
    r = re.search(r"speed-up engine_old/engine: ([\d.]+)", out)
    assert consistent(float(r.group(1)), engine_old, engine), (r.group(1), engine_old, engine)
    assert re.search(r"each change undone alone, epoch / engine's: random_batches [\d.]+, not_hoisted [\d.]+, "
                     r"pyro_validation [\d.]+$", out, re.M)
    eff = dict(re.findall(r"^(random|bucketed) batches: (\d+)% of the time steps run are real$", out, re.M))
    assert set(eff) == {"random", "bucketed"} and int(eff["bucketed"]) >= int(eff["random"])
    assert re.search(r"negative ELBO \(10 particles\) [\d.]+ s \(-?[\d.]+/step\); IWAE K=4", out)
    r = re.search(r"vectorised ([\d.]+) s, one particle at a time ([\d.]+) s; ratio sequential/vectorised: "
                  r"([\d.]+) \(bounds differ by ([\d.]+) nats/step\)", out)
    assert r and float(r.group(3)) > 0


def _compiled_step_ratios(out):
    us = dict((k, float(v)) for k, v in re.findall(r"^(eager|script|compile): ([\d.]+) us per step", out, re.M))
    ratios = dict((k, float(v)) for k, v in re.findall(r"^ratio (\w+)/eager: ([\d.]+)$", out, re.M))
    return us, ratios


def test_compiled_step_benchmark_without_compiler(capsys):
    _load("compiled_step").main(["--steps", "3", "--rounds", "1", "--no-compile", "--batch", "3", "--width", "8",
                                 "--z-dim", "2", "--x-dim", "5"])
    us, ratios = _compiled_step_ratios(capsys.readouterr().out)
    assert set(us) == {"eager", "script"} and set(ratios) == {"script"}
    assert ratios["script"] == pytest.approx(us["script"] / us["eager"], rel=0.05, abs=0.02)


def test_compiled_step_function_is_the_eager_one():
    import torch

    step, inputs = _load("compiled_step").make_step(4, 3, 8, 5)
    traced = torch.jit.trace(step, inputs, check_trace=False)
    assert torch.allclose(step(*inputs), traced(*inputs), rtol=1e-5)
    grads = [torch.autograd.grad(f(*inputs), inputs[0])[0] for f in (step, traced)]
    assert torch.allclose(*grads, rtol=1e-5, atol=1e-6)


@pytest.mark.slow
def test_compiled_step_benchmark_with_torch_compile(capsys):
    _load("compiled_step").main(["--steps", "3", "--rounds", "1", "--batch", "3", "--width", "8", "--z-dim", "2",
                                 "--x-dim", "5"])
    out = capsys.readouterr().out
    us, ratios = _compiled_step_ratios(out)
    if "compile" not in us:  # no compiler on this machine: the benchmark says so
        assert "torch.compile unavailable here" in out
        return
    assert ratios["compile"] == pytest.approx(us["compile"] / us["eager"], rel=0.05, abs=0.02)
    m = re.search(r"eager ([\d.]+) ms, compile ([\d.]+) ms; loop compile/eager: ([\d.]+)", out)
    assert m and float(m.group(3)) == pytest.approx(float(m.group(2)) / float(m.group(1)), rel=0.05, abs=0.02)


def test_ls4_step_benchmark(capsys):
    _load("ls4_step").main(["--batches", "2", "--length", "3", "--repeats", "1"])
    m = re.search(r"batch 2: LS4 ([\d.]+) ms/step, VRNN ([\d.]+) ms/step, LS4/VRNN ([\d.]+)", capsys.readouterr().out)
    assert m and float(m.group(3)) == pytest.approx(float(m.group(1)) / float(m.group(2)), rel=0.05, abs=0.02)
