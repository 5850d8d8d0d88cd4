"""Guides against a known teacher (issue 20, item 3): the guide alone is fitted, the teacher stays frozen,
and the log p(x) estimate is checked against the Kalman filter's exact answer."""

import json

import pyro
import pytest
import torch

from pyro_dssm.data import pad_sequences
from pyro_dssm.guide_study import (fit_guide_to_teacher, guide_study, guide_study_table, importance_log_weights,
                                   teacher_corpus)
from pyro_dssm.guides import create_guide
from pyro_dssm.infer import kalman_log_likelihood
from pyro_dssm.oracle import linear_gaussian_dssm

from conftest import run_script as script


@pytest.fixture(scope="module")
def lgssm_study():
    """A linear-Gaussian teacher, its samples, and a study of two guides (about 30 s)."""
    model = linear_gaussian_dssm(2, 3)
    corpus = teacher_corpus(model, sizes={"train": 64, "valid": 16, "test": 16}, length=12, seed=0)
    before = [p.detach().clone() for p in model.parameters()]
    res = guide_study(model, corpus, guides=("partial", "full"), iafs=(0,), ks=(10, 300), rnn_dim=16, hidden_dim=16,
                      epochs=40, patience=5, lr=1e-2, batch_size=16, logp_ks=(3000,), log=lambda s: None)
    return model, corpus, before, res


@pytest.mark.slow  # about half a minute or more; CI's default run stays under 15 minutes
def test_the_log_likelihood_estimate_matches_the_kalman_filter(lgssm_study):
    model, corpus, _, res = lgssm_study
    x, mask = pad_sequences(corpus.splits["test"])
    exact = float(kalman_log_likelihood(model, x).sum() / mask.sum())
    assert res["steps"] == int(mask.sum()) == 16 * 12
    assert res["log_p_per_step"] == pytest.approx(exact, abs=0.02)
    # the K-sample bounds rise towards it (K = 3000 from the tightest guide alone); every guide's ELBO lies
    # below it, by its own gap
    by_k = res["log_p_by_k"]
    assert res["log_p_k"] == 3000 and res["log_p_per_step"] == pytest.approx(by_k["3000"], abs=1e-12)
    assert by_k["10"] < by_k["300"] + 1e-9 and abs(by_k["3000"] - exact) <= abs(by_k["10"] - exact)
    for row in res["rows"]:
        assert row["gap_per_step"] > 0 and -row["nelbo_per_step"] < exact
        assert row["gap_per_step"] == pytest.approx(res["log_p_per_step"] + row["nelbo_per_step"], abs=1e-9)
        assert row["fit"]["best_epoch"] >= 5  # the guide learnt: later epochs were better than the first


@pytest.mark.slow  # about half a minute or more; CI's default run stays under 15 minutes
def test_the_teacher_stays_frozen_and_the_table_is_sorted_by_gap(lgssm_study):
    model, _, before, res = lgssm_study
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters()))
    table = guide_study_table(res)
    gaps = [float(line.split("|")[4]) for line in table.splitlines() if line.startswith("| partial") or
            line.startswith("| full")]
    assert len(gaps) == 2 and gaps == sorted(gaps)
    assert "−log p(x) per step ≈" in table


def test_fitting_moves_the_guide_only_and_keeps_its_best_epoch():
    model = linear_gaussian_dssm(2, 3)
    corpus = teacher_corpus(model, sizes={"train": 16, "valid": 8, "test": 4}, length=6, seed=1)
    guide = create_guide("full", model, rnn_dim=8, hidden_dim=8)
    x, m = pad_sequences(corpus.splits["train"][:1])
    guide(x, m)
    start = [p.detach().clone() for p in guide.parameters()]
    fit = fit_guide_to_teacher(model, guide, corpus, epochs=4, patience=0, lr=1e-2, batch_size=8)
    assert fit["epochs_run"] == 4 and 1 <= fit["best_epoch"] <= 4
    assert any(not torch.equal(a, b) for a, b in zip(start, guide.parameters()))
    assert not any(p.requires_grad for p in model.parameters())


def test_importance_weights_in_chunks_are_the_same_draws_as_in_one_go():
    model = linear_gaussian_dssm(2, 3)
    corpus = teacher_corpus(model, sizes={"train": 2, "valid": 2, "test": 5}, length=4, seed=2)
    guide = create_guide("partial", model, rnn_dim=8, hidden_dim=8)
    seqs = corpus.splits["test"]
    x, mask = pad_sequences(seqs)
    torch.manual_seed(0)
    lw = importance_log_weights(model, guide, seqs, 30, chunk=7)
    assert lw.shape == (30, 5) and torch.isfinite(lw).all()
    # the spread of log-weights is the guide's, not a bookkeeping error: the same mean as a one-go draw
    torch.manual_seed(1)
    one = importance_log_weights(model, guide, seqs, 3000, chunk=3000)
    torch.manual_seed(2)
    many = importance_log_weights(model, guide, seqs, 3000, chunk=100)
    assert torch.allclose(one.mean(0), many.mean(0), atol=4 * float(one.std(0).max()) / 3000 ** 0.5)


def test_log_p_from_more_draws_of_the_tightest_guide_sets_every_gap():
    """``logp_ks``: ``log p(x)`` is the chosen guide's bound at the largest K, and every gap is measured from it."""
    model = linear_gaussian_dssm(2, 3)
    corpus = teacher_corpus(model, sizes={"train": 8, "valid": 4, "test": 4}, length=5, seed=3)
    kw = dict(guides=("partial", "full"), iafs=(0,), ks=(4, 8), rnn_dim=8, hidden_dim=8, epochs=1, patience=0,
              batch_size=8, log=lambda s: None)
    res = guide_study(model, corpus, logp_ks=(200,), **kw)
    assert res["log_p_k"] == 200 and list(res["log_p_by_k"]) == ["4", "8", "200"]
    assert res["log_p_per_step"] == pytest.approx(res["log_p_by_k"]["200"], abs=1e-12)
    best = next(r for r in res["rows"] if r["guide"] == res["best_guide"])
    # the first 8 draws of the chosen guide are the ones its K = 8 bound was computed from
    assert res["log_p_by_k"]["8"] == pytest.approx(best["iwae_per_step"]["8"], abs=1e-12)
    for row in res["rows"]:
        assert row["gap_per_step"] == pytest.approx(res["log_p_per_step"] + row["nelbo_per_step"], abs=1e-9)
    assert "K=200;" in guide_study_table(res)
    with pytest.raises(ValueError, match="logp_ks must exceed the largest of ks"):
        guide_study(model, corpus, logp_ks=(8,), **kw)


def test_guides_the_teacher_does_not_admit_are_named_before_any_fit():
    from pyro_dssm.guides import inapplicable_guides, list_guides
    from pyro_dssm.models import create_model

    srnn = create_model("srnn", x_dim=3, z_dim=2, h_dim=4, hidden_dim=4)
    vrnn = create_model("vrnn", x_dim=3, z_dim=2, h_dim=4, hidden_dim=4)
    bad = inapplicable_guides(srnn, ["partial", "full", "A", "B", "C"])
    assert list(bad) == ["C"] and "generative RNN over z" in bad["C"]
    assert list(inapplicable_guides(vrnn, ["partial", "full", "A", "B", "C"])) == ["A"]  # no RNN over x
    assert list_guides(srnn) == ["partial", "full", "A", "B"] and list_guides(vrnn) == ["partial", "full", "B", "C"]
    corpus = teacher_corpus(srnn, sizes={"train": 2, "valid": 2, "test": 2}, length=3, seed=0)
    with pytest.raises(ValueError, match="do not apply to this teacher: C"):
        guide_study(srnn, corpus, guides=("partial", "C"), iafs=(0,), ks=(2,), log=lambda s: None)


def test_an_interrupted_study_resumes_from_its_kept_fits(tmp_path, monkeypatch):
    import pyro_dssm.guide_study as gs

    model = linear_gaussian_dssm(2, 3)
    corpus = teacher_corpus(model, sizes={"train": 8, "valid": 4, "test": 4}, length=5, seed=4)
    kw = dict(guides=("partial", "full"), iafs=(0,), ks=(4, 16), rnn_dim=8, hidden_dim=8, epochs=2, patience=0,
              batch_size=8, logp_ks=(40,), log=lambda s: None)
    fresh = guide_study(model, corpus, **kw)
    # the first run is interrupted after its first fit: only that one is kept
    real_fit, calls = gs.fit_guide_to_teacher, []

    def fit_then_stop(*a, **k):
        if calls:
            raise KeyboardInterrupt
        calls.append(1)
        return real_fit(*a, **k)

    monkeypatch.setattr(gs, "fit_guide_to_teacher", fit_then_stop)
    with pytest.raises(KeyboardInterrupt):
        guide_study(model, corpus, cache_dir=tmp_path / "fits", **kw)
    assert sorted(p.name for p in (tmp_path / "fits").iterdir()) == ["key.json", "partial-iaf0.pt"]
    # the rerun fits only the other guide and gives the uninterrupted study's numbers
    fitted = []
    monkeypatch.setattr(gs, "fit_guide_to_teacher", lambda m, g, *a, **k: fitted.append(g) or real_fit(m, g, *a, **k))
    resumed = guide_study(model, corpus, cache_dir=tmp_path / "fits", **kw)
    assert len(fitted) == 1
    for a, b in zip(fresh["rows"], resumed["rows"]):
        assert (a["guide"], a["nelbo_per_step"], a["iwae_per_step"]) == (b["guide"], b["nelbo_per_step"],
                                                                         b["iwae_per_step"])
    assert resumed["log_p_by_k"] == pytest.approx(fresh["log_p_by_k"], abs=1e-12)
    # a kept guide comes back with its fitted weights: its importance weights are drawn again exactly
    cache = gs.FitCache(tmp_path / "fits", json.loads((tmp_path / "fits" / "key.json").read_text()))
    torch.manual_seed(0)
    guide = create_guide("partial", model, rnn_dim=8, hidden_dim=8)
    x0, m0 = pad_sequences(corpus.splits["test"][:1])
    _, kept_lw = cache.load("partial", 0, guide, model, x0, m0)
    pyro.set_rng_seed(1000)  # the study's seed + 1000
    assert torch.equal(importance_log_weights(model, guide, corpus.splits["test"], 16), kept_lw)
    # fits made with other settings are not mixed in
    with pytest.raises(ValueError, match=r"made with other settings \(\['K'\]\)"):
        guide_study(model, corpus, cache_dir=tmp_path / "fits", **{**kw, "ks": (4, 8)})


@pytest.mark.parametrize("sizes, length", [({"train": 1, "valid": 1}, 4), ({"train": 1, "valid": 1, "test": 0}, 4),
                                           ({"train": 1, "valid": 1, "test": 1}, 0)])
def test_teacher_corpus_rejects_bad_sizes(sizes, length):
    with pytest.raises(ValueError, match="teacher_corpus needs"):
        teacher_corpus(linear_gaussian_dssm(2, 3), sizes=sizes, length=length)


@pytest.mark.slow  # about half a minute or more; CI's default run stays under 15 minutes
def test_the_script_runs_on_a_pretrained_teacher_and_names_bad_guides(tmp_path):
    r = script("guide_study.py", "arssm-full-bach", "--guides", "B", "--iafs", "0", "--ks", "5", "--epochs", "1",
               "--train", "6", "--valid", "3", "--test", "3", "--length", "8", "--out", tmp_path)
    assert r.returncode == 0, r.stderr[-2000:]
    res = json.loads((tmp_path / "guide_study.json").read_text())
    assert [row["guide"] for row in res["rows"]] == ["B", "teacher's own"] and res["teacher_kl_per_step"] > 0
    assert res["command"].startswith("python scripts/guide_study.py arssm-full-bach")
    r = script("guide_study.py", "arssm-full-bach", "--guides", "D")
    assert r.returncode == 2 and "unknown guide(s) ['D']" in r.stderr
    r = script("guide_study.py", "srnn-full-bach", "--guides", "C", "--out", tmp_path / "c")
    assert r.returncode == 2 and "guide(s) that do not apply to this teacher: C: guide 'C' reuses" in r.stderr
    r = script("guide_study.py", "arssm-full-bach", "--ks", "10", "100", "--logp-ks", "50")
    assert r.returncode == 2 and "--logp-ks must exceed the largest of --ks (100)" in r.stderr
