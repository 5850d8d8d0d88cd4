#!/usr/bin/env python
"""SVI step time and memory of every preset against the plain-PyTorch limit, side by side.

For each preset x guide (``partial``, ``full``) at the papers' two sizes, one SVI
step (negative ELBO, backward, Adam update) is timed three ways, interleaved
round by round so that machine noise hits all three alike:

* ``ours``: ``LeanTraceMeanField_ELBO`` (``pyro_dssm.infer``; what the training engine
  uses): Pyro's mean-field estimator, computing only the log-densities it uses, run as the
  engine runs it: without Pyro's per-site validation (each batch is checked once);
* ``pyro``: Pyro's own ``TraceMeanField_ELBO`` with Pyro's default validation (what plain
  ``SVI`` user code gets);
* ``plain``: the same ELBO, same networks, in plain PyTorch (``plain_elbo.py``);
* ``iaf``: ``ours`` with the same guide plus ``--iafs`` IAF layers;
* ``old``: ``ours`` as the engine ran it before 2026-12: the plain per-step path
  (``pyro_dssm.nn.hoisted_steps(False)``: nothing hoisted out of the time loop, no fused
  heads, per-step slices) with Pyro's per-site validation on; ``iaf_old``
  the same for the IAF guide: ``old/ours`` and ``iaf_old/iaf`` are the absolute speed-ups.

Printed per row: median milliseconds per step, ``ours/plain`` (goal <= 1.3),
``pyro/plain``, ``iaf/ours`` (goal <= 1.5), ``old/ours`` and ``iafold/iaf`` (the speed-ups), and the memory a step keeps for its backward pass:
on CUDA the peak allocated bytes, on CPU the bytes of the distinct tensors that
autograd saves (``torch.autograd.graph.saved_tensors_hooks``), which is what grows
with batch and length.

Sizes (``--sizes``):

* ``music``: B = 20, T = 100 (lengths 80-100), x_dim = 88 Bernoulli, z_dim = 100,
  generative RNN and MLPs 200 wide, inference RNNs 600 (Pyro's DMM on JSB);
* ``speech``: B = 100, T = 50, x_dim = 513 Itakura-Saito, z_dim = 16, widths 128
  (``configs/speech``).

    python benchmarks/svi_step.py --sizes music speech --steps 9
    python benchmarks/svi_step.py --models arssm vrnn --sizes music --device cuda
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import statistics
import sys
import time
import warnings

import torch

import pyro
from pyro.infer import TraceMeanField_ELBO

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from plain_elbo import plain_negative_elbo  # noqa: E402

from pyro_dssm.infer import LeanTraceMeanField_ELBO  # noqa: E402
from pyro_dssm.nn import hoisted_steps  # noqa: E402

SIZES = {
    "music": dict(B=20, T=100, min_len=80, x_dim=88, emission="bernoulli", z_dim=100, h_dim=200,
                  hidden_dim=200, rnn_dim=600, iaf_dim=100),
    "speech": dict(B=100, T=50, min_len=50, x_dim=513, emission="itakura_saito", z_dim=16, h_dim=128,
                   hidden_dim=128, rnn_dim=128, iaf_dim=20),
    "tiny": dict(B=3, T=6, min_len=3, x_dim=5, emission="bernoulli", z_dim=3, h_dim=8, hidden_dim=8,
                 rnn_dim=8, iaf_dim=8),  # for the tests
}


def make_batch(size: dict, device, seed: int = 0):
    """Random data of the size's shape: piano rolls (about 4 keys on of 88) or exponential powers."""
    g = torch.Generator().manual_seed(seed)
    B, T, D = size["B"], size["T"], size["x_dim"]
    if size["emission"] == "bernoulli":
        x = (torch.rand(B, T, D, generator=g) < 4.0 / D).float()
    else:
        x = torch.distributions.Exponential(torch.ones(())).sample((B, T, D)) * torch.rand(B, 1, D, generator=g)
    lengths = torch.randint(size["min_len"], T + 1, (B,), generator=g)
    lengths[0] = T
    mask = torch.arange(T) < lengths.unsqueeze(-1)
    return x.to(device), mask.to(device)


def build(name: str, guide: str, size: dict, num_iafs: int, device):
    from pyro_dssm.guides import create_guide
    from pyro_dssm.models import create_model

    torch.manual_seed(0)
    model = create_model(name, x_dim=size["x_dim"], emission=size["emission"], z_dim=size["z_dim"],
                         h_dim=size["h_dim"], hidden_dim=size["hidden_dim"]).to(device)
    g = create_guide(guide, model, rnn_dim=size["rnn_dim"], hidden_dim=size["hidden_dim"],
                     num_iafs=num_iafs, iaf_dim=size["iaf_dim"]).to(device)
    return model, g


class SavedBytes:
    """Bytes of the distinct tensors autograd saves for backward during a forward pass."""

    def __init__(self):
        self.seen = {}

    def pack(self, t):
        try:
            key = (t.untyped_storage().data_ptr(), t.device)
            self.seen[key] = max(self.seen.get(key, 0), t.untyped_storage().nbytes())
        except RuntimeError:  # storage-less tensors
            pass
        return t

    @staticmethod
    def unpack(t):
        return t

    def total(self) -> int:
        return sum(self.seen.values())


def make_step(loss_fn, model, guide, x, mask, hoisted: bool = True, validate: bool = False):
    """One SVI step; ``validate``: Pyro's per-site validation (the training engine runs without it)."""
    params = list(model.parameters()) + list(guide.parameters())
    opt = torch.optim.Adam(params, lr=1e-4)

    def step(measure_memory: bool = False):
        with hoisted_steps(hoisted), pyro.validation_enabled(validate):
            return _step(measure_memory)

    def _step(measure_memory: bool = False):
        opt.zero_grad(set_to_none=True)
        if measure_memory:
            sb = SavedBytes()
            if x.is_cuda:
                torch.cuda.synchronize()
                torch.cuda.reset_peak_memory_stats()
                base = torch.cuda.memory_allocated()
            with torch.autograd.graph.saved_tensors_hooks(sb.pack, sb.unpack):
                loss = loss_fn(model, guide, x, mask)
            loss.backward()
            opt.step()
            if x.is_cuda:
                torch.cuda.synchronize()
                return torch.cuda.max_memory_allocated() - base
            return sb.total()
        loss = loss_fn(model, guide, x, mask)
        loss.backward()
        opt.step()
        if x.is_cuda:
            torch.cuda.synchronize()
        return None

    return step


def ours_loss(model, guide, x, mask):
    return LeanTraceMeanField_ELBO().differentiable_loss(model, guide, x, mask)


def pyro_loss(model, guide, x, mask):
    return TraceMeanField_ELBO().differentiable_loss(model, guide, x, mask)


def plain_loss(model, guide, x, mask):
    return plain_negative_elbo(model, guide, x, mask)


def run_row(name, guide_name, size, args, device):
    x, mask = make_batch(size, device)
    model, guide = build(name, guide_name, size, 0, device)
    model_i, guide_i = build(name, guide_name, size, args.iafs, device)
    steps = {"ours": make_step(ours_loss, model, guide, x, mask),
             "pyro": make_step(pyro_loss, model, guide, x, mask, validate=True),
             "plain": make_step(plain_loss, model, guide, x, mask)}
    if args.iafs:
        steps["iaf"] = make_step(ours_loss, model_i, guide_i, x, mask)
    if not args.no_old:
        steps["old"] = make_step(ours_loss, model, guide, x, mask, hoisted=False, validate=True)
        if args.iafs:
            steps["iaf_old"] = make_step(ours_loss, model_i, guide_i, x, mask, hoisted=False, validate=True)
    mem = {k: f(measure_memory=True) for k, f in steps.items()}  # also the warm-up step
    times = {k: [] for k in steps}
    order = list(steps)
    for i in range(args.steps):
        for k in order[i % len(order):] + order[:i % len(order)]:  # rotate who goes first
            gc.collect()  # each variant starts from a collected heap
            t0 = time.perf_counter()
            steps[k]()
            times[k].append(time.perf_counter() - t0)
    med = {k: statistics.median(v) * 1e3 for k, v in times.items()}
    row = dict(model=name, guide=guide_name, size=args.current_size, ms=med,
               mem_mb={k: v / 2**20 for k, v in mem.items()}, ours_over_plain=med["ours"] / med["plain"],
               pyro_over_plain=med["pyro"] / med["plain"])
    if args.iafs:
        row["iaf_over_ours"] = med["iaf"] / med["ours"]
    if "old" in med:
        row["old_over_ours"] = med["old"] / med["ours"]
    if "iaf_old" in med:
        row["iaf_old_over_iaf"] = med["iaf_old"] / med["iaf"]
    return row


def main(argv=None):
    from pyro_dssm.models import list_models

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models", nargs="+", default=list_models())
    p.add_argument("--guides", nargs="+", default=["partial", "full"])
    p.add_argument("--sizes", nargs="+", default=["music", "speech"], choices=sorted(SIZES))
    p.add_argument("--iafs", type=int, default=3, help="IAF layers of the 'iaf' column (0: no IAF column)")
    p.add_argument("--steps", type=int, default=9, help="timed steps per variant (median reported)")
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--device", default="cpu")
    p.add_argument("--json", default=None, help="also write the rows to this file")
    p.add_argument("--no-old", action="store_true", help="leave out the old per-step path (old, iaf_old)")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    warnings.simplefilter("ignore")
    pyro.settings.set(module_local_params=True)
    device = torch.device(args.device)
    dev_name = (torch.cuda.get_device_name(device) if device.type == "cuda"
                else f"CPU, {torch.get_num_threads()} threads")
    print(f"# SVI step (loss + backward + Adam), median of {args.steps}; {dev_name}; torch {torch.__version__}, "
          f"pyro {pyro.__version__}")
    mem_kind = "peak MB" if device.type == "cuda" else "saved MB"
    head = (f"{'size':7} {'model':8} {'guide':8} {'ours ms':>8} {'pyro ms':>8} {'plain ms':>8} {'ours/plain':>10} "
            f"{'pyro/plain':>10} {'iaf ms':>8} {'iaf/ours':>8} {'old/ours':>8} {'iafold/iaf':>10}  "
            f"{mem_kind}: ours / pyro / plain / iaf")
    rows = []
    nan = float("nan")
    for size_name in args.sizes:
        args.current_size = size_name
        print(head, flush=True)
        for name in args.models:
            for g in args.guides:
                r = run_row(name, g, SIZES[size_name], args, device)
                rows.append(r)
                ms, mb = r["ms"], r["mem_mb"]
                print(f"{size_name:7} {name:8} {g:8} {ms['ours']:8.1f} {ms['pyro']:8.1f} {ms['plain']:8.1f} "
                      f"{r['ours_over_plain']:10.2f} {r['pyro_over_plain']:10.2f} {ms.get('iaf', nan):8.1f} "
                      f"{r.get('iaf_over_ours', nan):8.2f} {r.get('old_over_ours', nan):8.2f} "
                      f"{r.get('iaf_old_over_iaf', nan):10.2f}  {mb['ours']:.1f} / {mb['pyro']:.1f} / {mb['plain']:.1f} / "
                      f"{mb.get('iaf', nan):.1f}", flush=True)
        sel = [r for r in rows if r["size"] == size_name]
        med = {k: statistics.median(r[k] for r in sel) for k in ("ours_over_plain", "pyro_over_plain")}
        iafr = [r["iaf_over_ours"] for r in sel if "iaf_over_ours" in r]
        oldr = [r["old_over_ours"] for r in sel if "old_over_ours" in r]
        print(f"# {size_name}: ours/plain median {med['ours_over_plain']:.2f}, max "
              f"{max(r['ours_over_plain'] for r in sel):.2f}; pyro/plain median {med['pyro_over_plain']:.2f}"
              + (f"; iaf/ours median {statistics.median(iafr):.2f}, max {max(iafr):.2f}, "
                 f"{sum(v > 1.5 for v in iafr)} of {len(iafr)} rows above 1.5" if iafr else "")
              + (f"; old/ours median {statistics.median(oldr):.2f}, min {min(oldr):.2f}" if oldr else ""))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=1)


if __name__ == "__main__":
    main()
