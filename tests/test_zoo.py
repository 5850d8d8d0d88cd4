"""Issue 20's tools for a trained zoo: Table II's baseline rows, sample-quality figures, evaluation on other data."""

import json
import math

import numpy as np
import pytest
import torch

from pyro_dssm.baselines import GRULanguageModel, fit_gru_language_model, independent_keys_nll, key_frequencies
from pyro_dssm.data import Corpus, load_bach_chorales
from pyro_dssm.data.music import roll_to_midi
from pyro_dssm.metrics import piano_roll_stats

from conftest import run_script as script


# -- sample-quality figures --------------------------------------------------------------------

def test_piano_roll_stats_on_a_hand_computed_case():
    a = np.array([[1, 0], [1, 1], [0, 1]])  # 4 notes in 3 frames; key 0 held 0->1, key 1 held 1->2
    b = np.array([[0, 1]])  # one frame: counts towards polyphony, has no next frame
    s = piano_roll_stats([a, b])
    assert s["notes_per_frame"] == pytest.approx(5 / 4)
    # notes before a last frame: a[0] (1) + a[1] (2); held into the next frame: 2
    assert s["held_share"] == pytest.approx(2 / 3)
    assert (s["frames"], s["sequences"]) == (4, 2)
    assert math.isnan(piano_roll_stats([np.zeros((3, 2))])["held_share"])


@pytest.mark.parametrize("rolls, match", [([], "no piano rolls"), ([np.zeros((0, 3))], "T >= 1"),
                                          ([np.full((2, 3), 0.5)], "not binary"), ([np.zeros(4)], "shape")])
def test_piano_roll_stats_rejects_bad_input(rolls, match):
    with pytest.raises(ValueError, match=match):
        piano_roll_stats(rolls)


def test_the_shipped_chorales_hold_a_third_of_their_notes():
    # issue 20's reference figure for real chorales: 35% of sounding notes are held into the next frame
    s = piano_roll_stats(load_bach_chorales().splits["test"])
    assert 0.33 < s["held_share"] < 0.37 and 3.5 < s["notes_per_frame"] < 4.0


# -- baselines ---------------------------------------------------------------------------------

def test_independent_keys_nll_on_a_hand_computed_case():
    train = [np.array([[1, 0], [1, 0], [0, 0], [1, 1]])]  # counts (3, 1) of 4: smoothed (3.5/5, 1.5/5)
    np.testing.assert_allclose(key_frequencies(train), [0.7, 0.3])
    test = [np.array([[1, 0]])]
    assert independent_keys_nll(train, test) == pytest.approx(-2 * math.log(0.7))
    with pytest.raises(ValueError, match="binary"):
        independent_keys_nll(train, [np.array([[0.5, 0.0]])])
    with pytest.raises(ValueError, match="3 keys"):
        independent_keys_nll(train, [np.zeros((2, 3))])


def test_the_shipped_chorales_independent_keys_plateau_is_11_15():
    c = load_bach_chorales()
    assert independent_keys_nll(c.splits["train"], c.splits["test"]) == pytest.approx(11.15, abs=0.005)


def test_gru_log_prob_is_the_stepwise_bernoulli_likelihood_over_valid_steps():
    torch.manual_seed(0)
    net = GRULanguageModel(3, 5, output_bias=torch.tensor([-1.0, 0.0, 1.0]))
    np.testing.assert_allclose(net.out.bias.detach().numpy(), [-1, 0, 1])
    x = (torch.rand(2, 4, 3) < 0.5).float()
    mask = torch.tensor([[1, 1, 1, 1], [1, 1, 0, 0]], dtype=torch.float32)
    with torch.no_grad():
        got = net.log_prob(x, mask)
        _stepwise(net, x, got)


def _stepwise(net, x, got):
    for b, T in enumerate((4, 2)):  # step by step: h_t from x_{t-1}, x_0 = 0
        h, total, prev = torch.zeros(1, 1, 5), 0.0, torch.zeros(1, 1, 3)
        for t in range(T):
            out, h = net.rnn(prev, h)
            p = torch.sigmoid(net.out(out[0, 0]))
            total += float(torch.distributions.Bernoulli(probs=p).log_prob(x[b, t]).sum())
            prev = x[b, t].view(1, 1, 3)
        assert float(got[b]) == pytest.approx(total, abs=1e-5)


def _alternating_corpus(n=40, T=12, D=4):
    """Two keys that alternate: exactly predictable from the previous frame, 1 bit per step without it."""
    rng = np.random.default_rng(0)
    seqs = []
    for _ in range(n):
        x = np.zeros((T, D), np.float32)
        start = rng.integers(2)
        x[np.arange(T), (np.arange(T) + start) % 2] = 1
        seqs.append(x)
    return Corpus({"train": seqs[:24], "valid": seqs[24:32], "test": seqs[32:]}, name="alternating")


def test_the_gru_baseline_learns_what_independent_keys_cannot():
    c = _alternating_corpus()
    indep = independent_keys_nll(c.splits["train"], c.splits["test"])  # about 2 log 2 + the silent keys
    res = fit_gru_language_model(c, width=8, lr=0.03, batch_size=8, epochs=40, patience=5, seed=0)
    assert res["test_nll_per_step"] < 0.35 * indep
    assert 1 <= res["best_epoch"] <= res["epochs_run"] <= 40
    assert res["epochs_run"] - res["best_epoch"] <= 5  # stops after `patience` epochs without progress
    seen = []
    fit_gru_language_model(c, width=8, lr=0.03, batch_size=8, epochs=3, patience=0, seed=0,
                           on_epoch=lambda e, net: seen.append(e))
    assert seen == [1, 2, 3]


# -- prior samples and evaluation on other data ------------------------------------------------

def test_a_trained_model_holds_notes_more_than_independent_keys_would():
    from pyro_dssm import load_pretrained
    from pyro_dssm.generation import music_sample_stats

    c = load_bach_chorales()
    model, _ = load_pretrained("arssm-full-bach")
    s = music_sample_stats(model, c, seed=0)
    assert s["samples"]["frames"] == s["real"]["frames"] == sum(len(x) for x in c.splits["test"])
    p = key_frequencies(c.splits["train"])
    independent = float((p ** 2).sum() / p.sum())  # held share of keys drawn afresh every frame
    assert independent < 0.2 and s["samples"]["held_share"] > independent + 0.05
    assert abs(s["samples"]["notes_per_frame"] - s["real"]["notes_per_frame"]) < 1.5


def test_sample_stats_refuse_real_valued_models():
    from pyro_dssm import create_model
    from pyro_dssm.generation import music_sample_stats

    rng = np.random.default_rng(0)
    c = Corpus({s: [rng.normal(size=(5, 2)).astype(np.float32)] for s in ("train", "valid", "test")})
    with pytest.raises(ValueError, match="Bernoulli"):
        music_sample_stats(create_model("vrnn", x_dim=2, emission="gaussian", z_dim=2, h_dim=4, hidden_dim=4), c)


@pytest.mark.slow  # about half a minute or more; CI's default run stays under 15 minutes
def test_evaluate_runs_a_pretrained_model_on_a_midi_folder_with_the_runs_preprocessing(tmp_path):
    test = load_bach_chorales().splits["test"][:4]
    folder = tmp_path / "midi"
    folder.mkdir()
    for i, roll in enumerate(test):
        roll_to_midi(roll, folder / f"piece{i}.mid")
    r = script("evaluate.py", "arssm-full-bach", "--data", folder, "--split", "all", "--iwae", "0",
               "--particles", "2", "--out", tmp_path / "out")
    assert r.returncode == 0, r.stderr[-2000:]
    res = json.loads((tmp_path / "out" / "eval_all.json").read_text())
    rows = (tmp_path / "out" / "eval_all.csv").read_text().splitlines()[1:]
    # every piece, read back at one frame per quarter note: the lengths of the rolls written
    assert sorted(int(r.split(",")[2]) for r in rows) == sorted(len(x) for x in test)
    assert 5.0 < res["nelbo_per_step"] < 11.15  # a trained model on chorales: below the plateau


def test_another_corpus_must_match_the_models_dimension_and_emission(tmp_path):
    from pyro_dssm.pretrained import load_pretrained_run
    from pyro_dssm.training.engine import evaluation_corpus

    cfg, _, model, _ = load_pretrained_run("arssm-full-bach")
    rng = np.random.default_rng(0)
    np.save(tmp_path / "five.npy", (rng.random((10, 6, 5)) < 0.5).astype(np.float32))
    np.save(tmp_path / "real.npy", rng.random((10, 6, 88)).astype(np.float32))
    np.save(tmp_path / "rolls.npy", (rng.random((10, 6, 88)) < 0.1).astype(np.float32))
    with pytest.raises(ValueError, match="5 features per step, but the model was trained on 88"):
        evaluation_corpus(cfg, str(tmp_path / "five.npy"), model)
    with pytest.raises(ValueError, match="needs binary \\(0/1\\) data, but data"):
        evaluation_corpus(cfg, str(tmp_path / "real.npy"), model)
    with pytest.raises(FileNotFoundError, match="neither a known corpus"):
        evaluation_corpus(cfg, "no-such-corpus", model)
    assert evaluation_corpus(cfg, str(tmp_path / "rolls.npy"), model).merged().splits["all"].__len__() == 10


def test_a_transposition_trained_model_scores_another_corpus_as_given(tmp_path):
    """Key transposition augments the training split of the run's own data only: evaluating the model on
    another corpus reads that corpus's sequences once each, untransposed."""
    from types import SimpleNamespace

    from pyro_dssm.config import TrainConfig
    from pyro_dssm.training.engine import build_corpus
    from pyro_dssm.training.runs import evaluation_corpus

    rng = np.random.default_rng(1)
    rolls = np.zeros((12, 6, 88), np.float32)
    rolls[:, :, 40:50] = rng.random((12, 6, 10)) < 0.3
    np.save(tmp_path / "rolls.npy", rolls)
    cfg = TrainConfig(model="arssm", guide="full", data=str(tmp_path / "rolls.npy"), data_options={"transpose": 2})
    trained_on = build_corpus(cfg)
    assert len(trained_on.splits["train"]) > len(build_corpus(cfg, augment=False).splits["train"])  # copies added
    model = SimpleNamespace(config=SimpleNamespace(x_dim=88, emission="bernoulli"))
    other = evaluation_corpus(cfg, str(tmp_path / "rolls.npy"), model)
    assert sum(len(v) for v in other.splits.values()) == 12
