"""The training engine in-process: config precedence, annealing, atomic checkpoints, sharding, JIT, configs."""

import argparse
import importlib.util
import os
import re
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch

import pyro
from pyro.infer import TraceMeanField_ELBO

from pyro_dssm.cli.flags import add_config_arguments, resolve_config
from pyro_dssm.config import TrainConfig, load_config
from pyro_dssm.data import Corpus, PadCollate, pad_sequences
from pyro_dssm.training.engine import (AtomicCheckpointIO, DSSMTask, SequenceDataModule, build_model_and_guide,
                                       check_checkpoint)

ROOT = Path(__file__).resolve().parents[1]


def _parse(argv):
    p = argparse.ArgumentParser()
    p.add_argument("--config")
    add_config_arguments(p)
    return p.parse_args(argv)


def test_config_precedence(tmp_path):
    f = tmp_path / "c.yaml"
    f.write_text("model: vrnn\nz_dim: 7\nlr: 0.01\nmodel_options: {transition_net: gated}\n")
    cfg = resolve_config(_parse(["--config", str(f), "--z-dim", "5", "--model-option", "emission_net=deep",
                                 "--no-progress", "--devices", "2"]))
    assert cfg.model == "vrnn" and cfg.lr == 0.01  # from the file
    assert cfg.z_dim == 5 and cfg.progress is False and cfg.devices == 2  # flags win
    assert cfg.model_options == {"transition_net": "gated", "emission_net": "deep"}
    assert cfg.guide == TrainConfig().guide  # defaults fill the rest
    assert resolve_config(_parse([])) == TrainConfig()


def test_config_errors(tmp_path):
    with pytest.raises(ValueError, match="unknown field"):
        TrainConfig.from_dict({"zdim": 3})
    with pytest.raises(ValueError, match="'batch_size' must be a positive integer"):
        TrainConfig(batch_size=0)
    with pytest.raises(ValueError, match="iaf_dim=8 < z_dim=16"):
        TrainConfig(iaf=1, iaf_dim=8, z_dim=16)
    with pytest.raises(ValueError, match="min_annealing"):
        TrainConfig(min_annealing=0)
    with pytest.raises(ValueError, match=r"hop \(2048\) must not exceed the window length n_fft \(1024\)"):
        TrainConfig(data_options={"stft_hop": 2048})
    with pytest.raises(ValueError, match="'seq_len' must be a positive integer"):
        TrainConfig(data_options={"seq_len": 0})
    with pytest.raises(ValueError, match="max_files must be a positive integer"):
        TrainConfig(data_options={"max_files": 0})
    with pytest.raises(ValueError, match="trim_db"):
        TrainConfig(data_options={"trim_db": -3})
    bad = tmp_path / "bad.yaml"
    bad.write_text("model: [unclosed\n")
    with pytest.raises(ValueError, match="not valid YAML"):
        load_config(bad)
    bad.write_text("- a\n- b\n")
    with pytest.raises(ValueError, match="mapping"):
        load_config(bad)
    bad.write_text("epochs: 3\nbogus: 1\n")
    with pytest.raises(ValueError, match=r"bad.yaml: unknown field\(s\) \['bogus'\]"):
        load_config(bad)


def test_annealing_schedule():
    cfg = TrainConfig(anneal_epochs=4, min_annealing=0.2)
    assert [round(cfg.annealing_factor(e), 6) for e in range(6)] == [0.2, 0.4, 0.6, 0.8, 1.0, 1.0]
    assert TrainConfig(anneal_epochs=0).annealing_factor(0) == 1.0


def test_atomic_checkpoint_survives_a_crash_while_saving(tmp_path, monkeypatch):
    io = AtomicCheckpointIO()
    path = tmp_path / "last.ckpt"
    io.save_checkpoint({"state_dict": {"w": torch.ones(3)}, "epoch": 1}, path)
    for victim in ("fsync", "replace"):
        def crash(*a, **k):
            raise KeyboardInterrupt("killed while saving")

        with monkeypatch.context() as m:
            m.setattr(os, victim, crash)
            with pytest.raises(KeyboardInterrupt):
                io.save_checkpoint({"state_dict": {"w": torch.zeros(3)}, "epoch": 2}, path)
        ckpt = check_checkpoint(path)
        assert ckpt["epoch"] == 1 and torch.equal(ckpt["state_dict"]["w"], torch.ones(3))
        assert sorted(p.name for p in tmp_path.iterdir()) == ["last.ckpt"]  # no temporary left over
    io.save_checkpoint({"state_dict": {"w": torch.zeros(3)}, "epoch": 2}, path)
    assert check_checkpoint(path)["epoch"] == 2


def test_check_checkpoint_errors(tmp_path):
    with pytest.raises(FileNotFoundError):
        check_checkpoint(tmp_path / "none.ckpt")
    (tmp_path / "junk.ckpt").write_bytes(b"junk")
    with pytest.raises(ValueError, match="corrupt"):
        check_checkpoint(tmp_path / "junk.ckpt")
    torch.save({"weights": 1}, tmp_path / "other.ckpt")
    with pytest.raises(ValueError, match="no state_dict"):
        check_checkpoint(tmp_path / "other.ckpt")


def _corpus(n=10, seed=0):
    rng = np.random.default_rng(seed)
    seqs = [(rng.random((int(rng.integers(2, 9)), 5)) < 0.3).astype(np.float32) for _ in range(n)]
    return Corpus({"train": seqs, "valid": seqs[:3], "test": seqs[:3]}, name="toy")


def test_training_batches_are_sharded_over_processes():
    # random batches (--no-bucket-by-length); the bucketed default is tested in test_batching.py
    corpus = _corpus(11)
    seen = []
    for rank in (0, 1):
        dm = SequenceDataModule(corpus, batch_size=2, seed=3, bucket_by_length=False)
        dm.trainer = SimpleNamespace(global_rank=rank, world_size=2)
        loader = dm.train_dataloader()
        loader.sampler.set_epoch(0)
        seen.append(list(loader.sampler))
        ev = list(dm.val_dataloader().sampler)
        # evaluation: each sequence exactly once over the processes; equal numbers of items (weight-0 fillers)
        assert [i for i, w in ev if w == 1.0] == list(range(rank, 3, 2)) and len(ev) == 2
    assert len(seen[0]) == len(seen[1]) == 6  # equal shares (DDP needs the same number of steps)
    assert set(seen[0]) | set(seen[1]) == set(range(11))
    # the order is a function of seed and epoch only, and changes with the epoch
    dm = SequenceDataModule(corpus, batch_size=2, seed=3, bucket_by_length=False)
    s = dm.train_dataloader().sampler
    s.set_epoch(0)
    a = list(s)
    s.set_epoch(1)
    assert list(s) != a
    s.set_epoch(0)
    assert list(s) == a


def test_every_process_gets_an_evaluation_batch_even_with_one_sequence():
    corpus = Corpus({"train": _corpus(4).splits["train"], "valid": _corpus(1).splits["train"],
                     "test": _corpus(1).splits["train"]})
    batches = []
    for rank in range(3):
        dm = SequenceDataModule(corpus, batch_size=2, seed=0)
        dm.trainer = SimpleNamespace(global_rank=rank, world_size=3)
        batches.append(list(dm.val_dataloader()))
    assert [len(b) for b in batches] == [1, 1, 1]
    assert [b[0][2].tolist() for b in batches] == [[1.0], [0.0], [0.0]]


def test_batches_keep_the_sampler_order():
    corpus = _corpus(6)
    dm = SequenceDataModule(corpus, batch_size=6, seed=0, bucket_by_length=False)
    loader = dm.train_dataloader()
    loader.sampler.set_epoch(0)
    order = list(loader.sampler)
    x, mask = next(iter(loader))
    lengths = [len(corpus.splits["train"][i]) for i in order]
    assert mask.sum(1).tolist() == lengths
    for b, i in enumerate(order):
        assert torch.equal(x[b, : lengths[b]], torch.as_tensor(corpus.splits["train"][i]))


def _jit_cases():
    from pyro_dssm import create_model, list_models

    from conftest import valid_guides

    cases = []
    for name in list_models(family="dssm"):  # LS4 is not compiled (preset_info("ls4")["jit"] is False)
        for g in valid_guides(create_model(name, x_dim=4)):
            for iaf in (0, 2):
                # the default run: every preset with both alignment styles, flows for two of them
                quick = g in ("partial", "full") and (iaf == 0 or (g == "full" and name in ("arssm", "vrnn")))
                cases.append(pytest.param(name, g, iaf, marks=() if quick else pytest.mark.slow))
    return cases


@pytest.mark.parametrize("name,guide,iaf", _jit_cases())
def test_jit_works_for_every_preset_and_guide(name, guide, iaf):
    """``--jit`` compiles every preset with every guide (and IAF): same loss and gradients as eager.

    On the same batch the compiled graph draws the same noise as the eager ELBO under
    the same seed, so the two agree to rounding.
    """
    cfg = TrainConfig(model=name, guide=guide, z_dim=3, h_dim=6, hidden_dim=6, guide_rnn_dim=6, iaf=iaf,
                      iaf_dim=6, jit=True)
    model, g = build_model_and_guide(cfg, 4, "bernoulli")
    task = DSSMTask(model, g, cfg)
    x = (torch.rand(3, 6, 4) < 0.4).float()
    mask = torch.arange(6) < torch.tensor([6, 4, 2]).unsqueeze(-1)
    TraceMeanField_ELBO().differentiable_loss(model, g, x, mask)  # parameters exist before compiling
    task.negative_elbo(x, mask, 0.5)  # compiles
    params = list(model.parameters()) + list(g.parameters())
    out = []
    for fn in (lambda: task.negative_elbo(x, mask, 0.5),
               lambda: TraceMeanField_ELBO().differentiable_loss(model, g, x, mask, annealing_factor=0.5)):
        pyro.set_rng_seed(1)
        loss = fn()
        out.append((loss.detach(), torch.autograd.grad(loss, params, allow_unused=True)))
    (lj, gj), (le, ge) = out
    assert torch.allclose(lj, le, atol=1e-4), (lj, le)
    for a, b in zip(gj, ge):
        assert (a is None) == (b is None)
        if a is not None:
            assert torch.allclose(a, b, atol=1e-4)
    assert len(task.elbo.elbo._differentiable_loss.compiled) == 1  # the second call reused the graph


def test_jit_loss_equals_the_default_loss():
    """Same parameters, same batch: the compiled ELBO and the eager one agree in distribution.

    The compiled graph draws its noise with ``torch.normal`` (traced) where the eager
    path uses ``normal_``, so single draws differ; their means over many seeds must
    agree. The compiled loss also sees the batch padded to a bucket, so this checks
    that padding past a sequence's end contributes nothing under the JIT.
    """
    cfg = TrainConfig(model="arssm", guide="partial", z_dim=2, h_dim=6, hidden_dim=6, guide_rnn_dim=6, jit=True)
    model, guide = build_model_and_guide(cfg, 5, "bernoulli")
    task = DSSMTask(model, guide, cfg)
    seqs = _corpus(4).splits["train"]
    x, mask = pad_sequences(seqs)
    xb, mb = PadCollate([x.shape[1] + 3])(list(map(torch.as_tensor, seqs)))
    assert xb.shape[1] == x.shape[1] + 3
    TraceMeanField_ELBO().differentiable_loss(model, guide, x, mask)  # parameters exist before compiling
    eager, jit = [], []
    with torch.no_grad():
        for seed in range(150):
            pyro.set_rng_seed(seed)
            eager.append(TraceMeanField_ELBO().differentiable_loss(model, guide, x, mask, annealing_factor=0.5).item())
            pyro.set_rng_seed(seed)
            jit.append(task.negative_elbo(xb, mb, 0.5).item())
    eager, jit = np.array(eager), np.array(jit)
    se = np.sqrt(eager.var() / len(eager) + jit.var() / len(jit))
    assert abs(eager.mean() - jit.mean()) < 4 * se + 1e-3, (eager.mean(), jit.mean(), se)
    # a wrong annealing factor is detected by the same comparison
    with torch.no_grad():
        other = np.array([task.negative_elbo(xb, mb, 1.0).item() for _ in range(150)])
    assert abs(other.mean() - jit.mean()) > 4 * se
    # one compiled graph per (padded length, batch size), reused by later calls
    compiled = task.elbo.elbo._differentiable_loss
    assert len(compiled.compiled) == 1
    xc, mc = PadCollate([x.shape[1] + 5])(list(map(torch.as_tensor, seqs)))
    task.negative_elbo(xc, mc, 0.5)
    task.negative_elbo(xb, mb, 0.5)
    assert task.elbo.elbo._differentiable_loss is compiled and len(compiled.compiled) == 2
    loss = task.negative_elbo(xb, mb, 0.5)
    loss.backward()
    assert all(p.grad is not None for p in task.parameters())


def _load_script(name):
    spec = importlib.util.spec_from_file_location(f"_s_{name}", ROOT / "scripts" / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_every_script_is_exercised_by_a_test():
    tests = "\n".join(p.read_text() for p in (ROOT / "tests").glob("test_*.py"))
    for script in sorted((ROOT / "scripts").glob("*.py")):
        assert re.search(rf"[\"']{script.stem}(\.py)?[\"']", tests), f"no test runs scripts/{script.name}"


def test_configs_are_current():
    assert _load_script("make_configs").main(["--check"]) == 0


CONFIGS = sorted(p for p in (ROOT / "configs").rglob("*.yaml") if "experiments" not in p.parts)  # run configs


def test_the_music_grid_is_complete():
    names = {p.relative_to(ROOT / "configs").as_posix() for p in CONFIGS}
    for data in ("jsb", "nottingham", "musedata", "piano"):
        for model in ("arssm", "fssm", "vrnn", "srnn", "rssm"):
            for guide in ("partial", "full"):
                for suffix in ("", "-iaf3"):
                    assert f"music/{data}/{model}-{guide}{suffix}.yaml" in names


def test_the_speech_grid_is_complete():  # Table I: 5 models x 2 alignments x {no IAF, 3 IAFs}
    names = {p.relative_to(ROOT / "configs").as_posix() for p in CONFIGS}
    grid = {f"speech/{m}-{g}{s}.yaml" for m in ("arssm", "srnn", "fssm", "vrnn", "rssm")
            for g in ("partial", "full") for s in ("", "-iaf3")}
    assert grid <= names and len(grid) == 20


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.relative_to(ROOT / "configs").as_posix())
def test_every_config_parses_and_builds_its_model(path):
    cfg = TrainConfig.from_dict(load_config(path))
    if "music" in path.parts or ("speech" in path.parts and "demo" not in path.name):
        assert (cfg.lr, cfg.batch_size, cfg.clip_norm, cfg.anneal_epochs) == (1e-3, 100, 10.0, 100)
        assert cfg.iaf in (0, 3) and (cfg.iaf == 0 or cfg.iaf_dim == 20)
    if "speech" in path.parts:  # App. C: 16 kHz, 1024-sample window, hop 256 (513 bins), 50 frames
        assert [cfg.option(k) for k in ("sample_rate", "stft_n_fft", "stft_hop", "seq_len")] == [16000, 1024, 256, 50]
        assert cfg.emission == "itakura_saito"
        x_dim, x = 513, torch.rand(2, 3, 513) * 10
        if "demo" not in path.name:
            assert cfg.epochs == 1000 and cfg.patience == 0
    elif "flame-study" in path.parts:  # issue 22's CPU-sized FLAME study: 201 steps of 5, H = N = 16, 1 block
        assert (cfg.model, cfg.batch_size, cfg.h_dim, cfg.option("flame_steps"), cfg.option("flame_stride")) == \
            ("ls4", 32, 16, 201, 5.0)
        assert (cfg.model_options["N"], cfg.model_options["depth"]) == (16, 1)
        x_dim, x = 1, torch.rand(2, 3, 1)
    elif "table1" in path.parts:  # issue 22's grid: matched parameter counts (model + guide) within 5%
        data = path.stem.split("-")[0]
        x_dim = {"flame": 1, "macro": 12}[data]
        x = torch.rand(2, 3, x_dim)
        twin = path.with_name(path.name.replace("-vrnn-", "-ls4-") if cfg.model == "vrnn"
                              else path.name.replace("-ls4-", "-vrnn-"))
        m2, g2 = build_model_and_guide(TrainConfig.from_dict(load_config(twin)), x_dim, "gaussian")
        m1, g1 = build_model_and_guide(cfg, x_dim, "gaussian")
        n1, n2 = (sum(p.numel() for p in [*m.parameters(), *g.parameters()]) for m, g in ((m1, g1), (m2, g2)))
        assert abs(n1 - n2) <= 0.05 * max(n1, n2), (path.name, n1, twin.name, n2)
        assert cfg.lr in (1e-3, 3e-3) and (cfg.ema_decay > 0) == (data == "flame")
    elif "ls4" in path.parts and cfg.model == "vrnn":  # the generation baseline beside LS4 (issue 8)
        assert (cfg.guide, cfg.lr, cfg.batch_size, cfg.z_dim, cfg.emission) == ("full", 1e-3, 64, 5, "gaussian")
        x = torch.rand(2, 3, 12 if cfg.data == "macro" else 1)
    elif "ls4" in path.parts:  # App. D.1: lr 1e-3, batches of 64, z_dim 5, H = N = 64, 4 blocks, sigma_x 0.1
        # App. D.2: USHCN 10 latent dims, sigma_x 0.01, sigmoid output; Physionet 20, 0.05, identity
        z_dim, obs_scale, x_dim = {"ushcn": (10, 0.01, 5), "physionet": (20, 0.05, 41),
                                   "macro": (5, 0.1, 12)}.get(path.stem, (5, 0.1, 1))
        assert (cfg.model, cfg.guide, cfg.lr, cfg.batch_size, cfg.z_dim, cfg.h_dim) == \
            ("ls4", "ls4", 1e-3, 64, z_dim, 64)
        assert {k: cfg.model_options[k] for k in ("N", "depth", "levels", "obs_scale")} == \
            {"N": 64, "depth": 4, "levels": 1, "obs_scale": obs_scale}
        assert (cfg.ema_decay, cfg.ema_start) == (0.999, 200)
        x = torch.rand(2, 3, x_dim)
        if cfg.model_options.get("missing"):
            x[0, 1, 0] = float("nan")
    else:
        x_dim, x = 88, (torch.rand(2, 3, 88) < 0.1).float()
    model, guide = build_model_and_guide(cfg, x.shape[-1], cfg.emission or "bernoulli")
    loss = TraceMeanField_ELBO().differentiable_loss(model, guide, x)
    assert torch.isfinite(loss)
    assert model.config.z_dim == cfg.z_dim
    if cfg.model != "ls4":
        assert guide.config.num_iafs == cfg.iaf


def _ema_run(tmp_path, epochs, resume=False, out="ema", ema=0.5, ema_start=1):
    """A tiny VRNN run with weight EMA (decay 0.5 so that it differs visibly from the raw weights)."""
    import lightning as L

    from pyro_dssm.training.engine import _initialise, _prepare, make_trainer

    class Record(L.Callback):  # the raw weights after every optimiser step
        def __init__(self):
            self.steps = []

        def on_train_batch_end(self, trainer, pl_module, *args):
            self.steps.append({k: v.detach().clone() for k, v in pl_module.state_dict().items()})

    path = tmp_path / "toy.npz"
    if not path.is_file():
        c = _corpus(8)
        np.savez(path, *c.splits["train"])
    cfg = TrainConfig(model="vrnn", guide="partial", data=str(path), z_dim=2, h_dim=4, hidden_dim=4,
                      guide_rnn_dim=4, batch_size=3, epochs=epochs, ema_decay=ema, ema_start=ema_start,
                      progress=False, out=str(tmp_path / out))
    L.seed_everything(0, verbose=False)
    _, _, task, data = _prepare(cfg)
    _initialise(task, data)
    rec = Record()
    last = tmp_path / out / "checkpoints" / "last.ckpt"
    make_trainer(cfg, tmp_path / out, [rec]).fit(task, datamodule=data, ckpt_path=str(last) if resume else None)
    return torch.load(last, weights_only=True), rec.steps, task


def test_weight_ema_follows_its_formula_and_resumes_exactly(tmp_path):
    """App. D.1's weight EMA: the checkpoint holds avg_k = d avg_{k-1} + (1 - d) w_k from step ema_start on."""
    ckpt, steps, task = _ema_run(tmp_path, epochs=2)
    assert ckpt["epoch"] == 1 and ckpt["global_step"] == 4
    assert len(steps) == 4  # 2 epochs of 2 batches (the training split of the 8 sequences, batches of 3)
    d, keys = 0.5, [k for k in steps[0] if steps[0][k].is_floating_point()]
    # before ema_start (step index 0) the average keeps the initial weights; step 1 copies, then the EMA runs
    avg = dict(steps[1])
    for w in steps[2:]:
        avg = {k: d * avg[k] + (1 - d) * w[k] for k in keys}
    for k in keys:
        torch.testing.assert_close(ckpt["state_dict"][k], avg[k], rtol=1e-5, atol=1e-6)
        assert torch.equal(ckpt["current_model_state"][k], steps[-1][k])
    assert any(not torch.allclose(avg[k], steps[-1][k]) for k in keys)
    # after training the module holds the average (what evaluation and sampling use)
    for k in keys:
        torch.testing.assert_close(task.state_dict()[k], avg[k], rtol=1e-5, atol=1e-6)
    # resume: 1 epoch, then 1 more, equals 2 straight (raw weights and the average)
    _ema_run(tmp_path, epochs=1, out="r")
    b, _, _ = _ema_run(tmp_path, epochs=2, resume=True, out="r")
    for part in ("state_dict", "current_model_state"):
        for k in keys:
            assert torch.equal(ckpt[part][k], b[part][k]), (part, k)


def test_before_the_ema_begins_the_run_is_its_current_weights_not_the_initial_ones(tmp_path):
    """Lightning's EMA callback validates and checkpoints its averaged copy from step 0, which holds the
    initial weights until ema_start: a run shorter than ema_start would select and ship the untrained model."""
    ckpt, steps, task = _ema_run(tmp_path, epochs=2, ema_start=100)  # 4 steps, the average never begins
    keys = [k for k in steps[0] if steps[0][k].is_floating_point()]
    for k in keys:
        assert torch.equal(ckpt["state_dict"][k], steps[-1][k]), k
        assert torch.equal(task.state_dict()[k], steps[-1][k]), k  # after training: the trained weights
    best = torch.load(tmp_path / "ema" / "checkpoints" / "best.ckpt", weights_only=True)
    assert any(not torch.equal(best["state_dict"][k], steps[0][k]) for k in keys)  # not the initial weights
    # a resume across the start of the average equals the straight run (steps 5 and 6 average)
    straight, _, _ = _ema_run(tmp_path, epochs=3, ema_start=4, out="s")
    _ema_run(tmp_path, epochs=2, ema_start=4, out="r")  # 4 steps: not yet begun when it stops
    resumed, _, _ = _ema_run(tmp_path, epochs=3, ema_start=4, out="r", resume=True)
    for part in ("state_dict", "current_model_state"):
        for k in keys:
            assert torch.equal(straight[part][k], resumed[part][k]), (part, k)
    assert any(not torch.equal(straight["state_dict"][k], straight["current_model_state"][k]) for k in keys)


def test_last_checkpoint_is_written_every_epoch_even_without_improvement(tmp_path):
    """Resume must start where training stopped, not at the last improvement of the validation ELBO."""
    ckpt, steps, _ = _ema_run(tmp_path, epochs=2, ema=0.0)
    metrics = (tmp_path / "ema" / "logs" / "metrics.csv").read_text()
    vals = [float(r.split(",")[3]) for r in metrics.splitlines()[1:] if r.split(",")[3]]
    assert len(vals) == 2 and vals[1] > vals[0]  # the precondition: this toy run's second epoch is worse
    best = torch.load(tmp_path / "ema" / "checkpoints" / "best.ckpt", weights_only=True)
    assert best["epoch"] == 0 and ckpt["epoch"] == 1
    for k, v in steps[-1].items():
        assert torch.equal(ckpt["state_dict"][k], v), k


def test_ema_config_errors():
    with pytest.raises(ValueError, match="ema_decay must be in"):
        TrainConfig(ema_decay=1.0)
    with pytest.raises(ValueError, match="--jit"):
        TrainConfig(ema_decay=0.9, jit=True)


def _decay_run(tmp_path, rolls, out, epochs, resume=False, **extra):
    from pyro_dssm.training import train

    cfg = TrainConfig(model="srnn", guide="full", data=str(rolls), max_sequences=6, z_dim=2, h_dim=8, hidden_dim=8,
                      guide_rnn_dim=8, batch_size=3, eval_particles=1, lr=0.05, lr_decay=0.5, lr_patience=0,
                      epochs=epochs, progress=False, out=str(tmp_path / out), **extra)
    train(cfg, log=lambda *a: None, resume=resume)
    return torch.load(tmp_path / out / "checkpoints" / "last.ckpt", weights_only=True)


@pytest.mark.slow  # about half a minute or more; CI's default run stays under 15 minutes
def test_the_learning_rate_halves_after_each_validation_without_improvement_and_resumes(tmp_path, short_rolls):
    from pyro_dssm.training import training_history

    ckpt = _decay_run(tmp_path, short_rolls, "a", epochs=6, weight_decay=0.01)
    group = ckpt["optimizer_states"][0]["param_groups"][0]
    assert group["weight_decay"] == 0.01
    val = training_history(tmp_path / "a")["val"]
    best, expected = float("inf"), 0.05
    for v in val:  # ReduceLROnPlateau, patience 0: a relative improvement of 1e-4 or more resets it
        if v < best * (1 - 1e-4):
            best = v
        else:
            expected *= 0.5
    assert expected < 0.05, f"the precondition: some epoch of this toy run did not improve ({val})"
    assert group["lr"] == pytest.approx(expected)
    # 3 epochs, then 3 more on resume: the same schedule as 6 straight
    _decay_run(tmp_path, short_rolls, "b", epochs=3, weight_decay=0.01)
    again = _decay_run(tmp_path, short_rolls, "b", epochs=6, resume=True, weight_decay=0.01)
    assert again["optimizer_states"][0]["param_groups"][0]["lr"] == pytest.approx(expected)
    assert again["lr_plateau"]["best"] == pytest.approx(ckpt["lr_plateau"]["best"]) and \
        again["lr_plateau"]["num_bad_epochs"] == ckpt["lr_plateau"]["num_bad_epochs"]
    for k, v in ckpt["state_dict"].items():  # and the same weights: the resume is exact
        assert torch.equal(again["state_dict"][k], v), k


@pytest.mark.parametrize("field, value, match", [("lr_decay", 0.0, "lr_decay must be in"),
                                                 ("lr_decay", 1.5, "lr_decay must be in"),
                                                 ("lr_patience", -1, "lr_patience"),
                                                 ("weight_decay", -0.1, "weight_decay must be")])
def test_schedule_config_errors(field, value, match):
    with pytest.raises(ValueError, match=match):
        TrainConfig(**{field: value})
