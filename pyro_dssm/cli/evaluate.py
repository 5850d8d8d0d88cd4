"""Evaluate a training run: Table II's test negative ELBO per time step and an importance-sampled NLL;
on a speech run also Table I's analysis-resynthesis (SI-SDR, wide-band PESQ, ESTOI).

Examples::

    python scripts/evaluate.py runs/arssm-full-bach --particles 10 --iwae 100
    python scripts/evaluate.py runs/arssm-full-speech                  # + resynthesis, latents sampled
    python scripts/evaluate.py runs/arssm-full-speech --latents mean   # posterior means instead
    python scripts/evaluate.py runs/ls4/flame --generation             # LS4 Table 1 scores and Fig. 1
    python scripts/evaluate.py runs/ls4/ushcn --forecast interpolation extrapolation   # LS4 Table 2
    python scripts/evaluate.py arssm-full-bach --sample-stats          # a pretrained model: + prior samples' polyphony
    python scripts/evaluate.py arssm-full-bach --data jsb --split all  # another corpus of the same dimension

Writes ``RUN_DIR/eval_SPLIT.json`` (totals) and ``RUN_DIR/eval_SPLIT.csv`` (one row
per sequence: length, ELBO, K-particle IWAE bound, both per step). The IWAE
bound ``log (1/K) sum_k p(x, z_k) / q(z_k | x)`` is computed per sequence; it
equals ``-RenyiELBO(alpha=0, num_particles=K, vectorize_particles=True)`` summed
over sequences (Pyro's ``vectorized_importance_weights`` would pool the batch).

On a speech run (``--data speech``, ``asterisk``, ``librispeech-*`` or an audio folder)
every utterance of the split is also resynthesised in teacher-forcing mode (see
``pyro_dssm.resynthesis``) into ``RUN_DIR/resynthesis-LATENTS/`` (test split) or
``RUN_DIR/resynthesis-LATENTS-train/`` (``--split train``: whole training files): ``utterances.csv``
(per-utterance SI-SDR, PESQ-WB, ESTOI), ``summary.json`` (mean, median, 95%
interval), ``wav/`` (resynthesised speech) and ``mel_spectrograms.png``.

``--sample-stats`` (binary piano rolls) draws as many prior samples as the split holds,
with the split's lengths, and writes ``RUN_DIR/samples_SPLIT.json``: notes per frame and
the share of held notes of the samples and of the data (``pyro_dssm.metrics.piano_roll_stats``).

``--data PATH_OR_NAME`` evaluates on another corpus (any ``--data`` of ``scripts/train.py``:
a corpus name, a MIDI or audio folder, an array file), read with the run's own
pre-processing (frames per quarter, STFT); its dimension must match the model's. The
outputs then go to ``RUN_DIR/on-DATA/`` unless ``--out`` says otherwise. ``--split all``
evaluates every sequence of the corpus.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import sys
import time
from pathlib import Path

from pyro_dssm.training.runs import RunDir
from pyro_dssm.utils import atomic_write_text


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("run_dir", help="a directory written by scripts/train.py, or a pretrained model's name "
                   "(pyro_dssm.list_pretrained())")
    p.add_argument("--out", default=None, help="where to write the results (default: the run directory; "
                   "runs/pretrained-NAME for a pretrained model)")
    p.add_argument("--checkpoint", default="best", help="best | last | path to a .ckpt (default best)")
    p.add_argument("--split", default="test", choices=["train", "valid", "test", "all"],
                   help="the split evaluated (all: every sequence of the corpus)")
    p.add_argument("--data", default=None, metavar="PATH_OR_NAME",
                   help="evaluate on this corpus instead of the run's (same dimension; the run's pre-processing)")
    p.add_argument("--no-elbo", dest="elbo", action="store_false",
                   help="skip the ELBO / IWAE pass (only the other analyses asked for)")
    p.add_argument("--sample-stats", action="store_true",
                   help="binary rolls: notes per frame and held-note share of prior samples vs the data")
    p.add_argument("--particles", type=int, default=10, help="particles averaged in the ELBO")
    p.add_argument("--iwae", type=int, default=None,
                   help="K of the importance-weighted bound (0: skip; default 100, 0 for speech)")
    p.add_argument("--latents", choices=["sample", "mean"], default="sample",
                   help="speech: latents drawn from the guide (paper) or its per-step means")
    p.add_argument("--no-wav", dest="wav", action="store_false", help="speech: don't write the WAV files")
    p.add_argument("--figure-items", type=int, default=3, help="speech: utterances in the mel figure (0: none)")
    p.add_argument("--generation", action="store_true",
                   help="real-valued data: LS4's Table 1 scores of prior samples (marginal, classification, "
                        "prediction; and the bin-free Wasserstein marginal) and its Fig. 1, in RUN_DIR/generation/")
    p.add_argument("--probe-epochs", type=int, default=100, help="--generation: epochs of the S4 probes")
    p.add_argument("--crossing-level", type=float, default=None,
                   help="--generation: also test when samples first reach this level against the data "
                        "(two-sample KS of the first-crossing times; FLAME: 0.5)")
    p.add_argument("--sample-mean", action="store_true",
                   help="--generation: score each step's decoder mean, not the sample with observation noise "
                        "(the LS4 authors' code plots means), into RUN_DIR/generation-mean/")
    p.add_argument("--forecast", nargs="+", choices=["interpolation", "extrapolation"], default=[],
                   help="LS4: Sec. 5.3's tasks on the split (MSE, CRPS) into RUN_DIR/forecast_TASK.json")
    p.add_argument("--forecast-samples", type=int, default=10, help="--forecast: latent paths per sequence")
    p.add_argument("--context-fraction", type=float, default=0.5,
                   help="--forecast interpolation: share of the observed time points the model sees")
    p.add_argument("--batch-size", type=int, default=50)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    if args.particles < 1 or (args.iwae is not None and args.iwae < 0) or args.batch_size < 1 \
            or args.figure_items < 0 or args.forecast_samples < 1 or not 0 < args.context_fraction < 1:
        p.error("--particles, --batch-size and --forecast-samples must be >= 1, --iwae and --figure-items >= 0, "
                "--context-fraction in (0, 1)")
    return args


def _elbo_pass(args, cfg, corpus, model, guide, seqs, run: Path) -> None:
    """Table II's scores of ``seqs``: ``eval_SPLIT.json`` (totals) and ``eval_SPLIT.csv`` (per sequence)."""
    from pyro_dssm.training import evaluate_split

    t0 = time.time()
    res = evaluate_split(model, guide, seqs, batch_size=args.batch_size, elbo_particles=args.particles,
                         iwae_particles=args.iwae, seed=args.seed)
    per = res.pop("per_sequence")
    res.update(model=cfg.model, guide=cfg.guide, iaf=cfg.iaf, data=corpus.name, split=args.split,
               checkpoint=args.checkpoint, seconds=time.time() - t0)
    out = RunDir(run)
    atomic_write_text(out.eval_file(args.split), json.dumps(res, indent=2))
    ids = (corpus.ids or {}).get(args.split) or [str(i) for i in range(len(seqs))]
    buf = io.StringIO()
    w = csv.writer(buf)
    cols = ["index", "id", "length", "elbo", "nelbo_per_step"] + (["iwae", "nll_per_step"] if args.iwae else [])
    w.writerow(cols)
    for i, n in enumerate(per["length"]):
        row = [i, ids[i], n, per["elbo"][i], -per["elbo"][i] / n]
        if args.iwae:
            row += [per["iwae"][i], -per["iwae"][i] / n]
        w.writerow(row)
    atomic_write_text(out.eval_file(args.split, "csv"), buf.getvalue())
    msg = f"{args.split}: negative ELBO per step {res['nelbo_per_step']:.4f} ({args.particles} particles)"
    if args.iwae:
        msg += f", NLL per step <= {res['nll_per_step']:.4f} (IWAE, K={args.iwae})"
    print(msg)
    print(f"wrote {out.eval_file(args.split)} and {out.eval_file(args.split, 'csv')}")


def main(argv=None) -> int:
    args = parse_args(argv)
    from pyro_dssm.training import open_run
    from pyro_dssm.training.engine import data_label, evaluation_corpus, run_output_dir

    run = open_run(args.run_dir, args.checkpoint)
    if run is None:
        return 2
    cfg, corpus, model, guide = run
    run = run_output_dir(args.run_dir, args.out)
    if args.data is not None:
        try:
            corpus = evaluation_corpus(cfg, args.data, model)
        except (ValueError, FileNotFoundError) as e:
            print(f"error: {e}", file=sys.stderr)
            return 2
        if args.out is None:
            run = run / f"on-{data_label(args.data)}"
    if args.split == "all":
        corpus = corpus.merged("all")
    is_speech = corpus.kind == "speech"
    if args.iwae is None:
        args.iwae = 0 if is_speech else 100
    seqs = corpus.splits[args.split]
    if not seqs:
        print(f"error: the {args.split} split of {corpus.name} is empty", file=sys.stderr)
        return 2
    run.mkdir(parents=True, exist_ok=True)
    if args.elbo:
        _elbo_pass(args, cfg, corpus, model, guide, seqs, run)
    if args.sample_stats:
        from pyro_dssm.generation import music_sample_stats

        try:
            stats = music_sample_stats(model, corpus, split=args.split, seed=args.seed, batch_size=args.batch_size)
        except ValueError as e:
            print(f"error: {e}", file=sys.stderr)
            return 2
        stats.update(model=cfg.model, guide=cfg.guide, iaf=cfg.iaf, data=corpus.name, checkpoint=args.checkpoint)
        atomic_write_text(RunDir(run).samples_file(args.split), json.dumps(stats, indent=2))
        s, d = stats["samples"], stats["real"]
        print(f"prior samples: {s['notes_per_frame']:.2f} notes per frame, held-note share {s['held_share']:.3f} "
              f"(data: {d['notes_per_frame']:.2f}, {d['held_share']:.3f}); wrote {RunDir(run).samples_file(args.split)}")
    if is_speech and args.split not in ("valid", "all"):
        from pyro_dssm.resynthesis import evaluate_resynthesis

        out = RunDir(run).resynthesis_dir(args.latents, args.split)
        summary = evaluate_resynthesis(model, guide, corpus, out, latents=args.latents, seed=args.seed,
                                       save_wav=args.wav, figure_items=args.figure_items, split=args.split)
        summary.update(model=cfg.model, guide=cfg.guide, iaf=cfg.iaf, data=corpus.name, checkpoint=args.checkpoint)
        atomic_write_text(out / RunDir.SUMMARY, json.dumps(summary, indent=2))
        print(f"wrote {out}/ (utterances.csv, summary.json{', wav/' if args.wav else ''}"
              f"{', mel_spectrograms.png' if args.figure_items else ''})")
    for task in args.forecast:
        from pyro_dssm.forecasting import evaluate_forecast

        try:
            report = evaluate_forecast(model, guide, seqs, task, num_samples=args.forecast_samples,
                                       context_fraction=args.context_fraction, batch_size=args.batch_size,
                                       seed=args.seed)
        except (TypeError, ValueError) as e:
            print(f"error: {e}", file=sys.stderr)
            return 2
        report.update(model=cfg.model, data=corpus.name, split=args.split, checkpoint=args.checkpoint)
        atomic_write_text(RunDir(run).forecast_file(task), json.dumps(report, indent=2))
        print(f"{task}: MSE {report['mse']:.4g}, CRPS {report['crps']:.4g} over {report['targets']} hidden entries; "
              f"wrote {RunDir(run).forecast_file(task)}")
    if args.generation:
        from pyro_dssm.generation import evaluate_generation

        try:
            gen_dir = RunDir(run).generation_dir(args.sample_mean)
            report = evaluate_generation(model, corpus, gen_dir, split=args.split,
                                         probe_epochs=args.probe_epochs, seed=args.seed,
                                         crossing_level=args.crossing_level, mean=args.sample_mean)
        except ValueError as e:
            print(f"error: {e}", file=sys.stderr)
            return 2
        report.update(model=cfg.model, data=corpus.name, checkpoint=args.checkpoint)
        atomic_write_text(gen_dir / RunDir.GENERATION, json.dumps(report, indent=2))
        print(f"wrote {gen_dir}/ (generation.json, generated.npy, generation.png)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
