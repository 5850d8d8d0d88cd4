"""Sample from a trained run: new sequences from the prior, and continuations of held-out prefixes.

Example::

    python scripts/sample.py runs/arssm-full-bach --num 4 --steps 64 --prefix-steps 16

Writes to ``RUN_DIR/samples/``: ``prior.npy`` ``(num, steps, x_dim)``,
``continuations.npy`` ``(num, prefix_steps + steps, x_dim)`` with the matching
``prefixes.npy``; for piano rolls (88 binary keys) also one MIDI file per
sequence and ``piano_rolls.png`` (held-out data, continuations, prior samples);
for speech runs one WAV file per sequence, its phase found by Griffin-Lim
(``prior_0.wav``, ``continuations_0.wav``, ...).
"""

from __future__ import annotations

import argparse
import sys

import numpy as np
import torch


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("run_dir", help="a directory written by scripts/train.py, or a pretrained model's name "
                   "(pyro_dssm.list_pretrained())")
    p.add_argument("--out", default=None, help="where to write samples/ (default: the run directory; "
                   "runs/pretrained-NAME for a pretrained model)")
    p.add_argument("--checkpoint", default="best", help="best | last | path to a .ckpt")
    p.add_argument("--num", type=int, default=4, help="sequences of each kind")
    p.add_argument("--steps", type=int, default=64, help="new steps per sequence")
    p.add_argument("--prefix-steps", type=int, default=16, help="steps of each held-out prefix (0: no continuations)")
    p.add_argument("--split", default="test", choices=["train", "valid", "test"])
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--tempo", type=float, default=100.0, help="MIDI tempo in beats per minute")
    p.add_argument("--no-png", action="store_true")
    args = p.parse_args(argv)
    if args.num < 1 or args.steps < 1 or args.prefix_steps < 0:
        p.error("--num and --steps must be >= 1, --prefix-steps >= 0")
    return args


def plot_rolls(groups, path):
    from pyro_dssm.plots import piano_roll_figure, save_figure

    save_figure(piano_roll_figure(groups), path, dpi=80)


def main(argv=None) -> int:
    args = parse_args(argv)
    from pyro_dssm.training import open_run
    from pyro_dssm.training.engine import run_output_dir

    run = open_run(args.run_dir, args.checkpoint)
    if run is None:
        return 2
    cfg, corpus, model, guide = run
    import pyro
    from pyro_dssm.data import roll_to_midi

    pyro.set_rng_seed(args.seed)
    out = run_output_dir(args.run_dir, args.out) / "samples"
    out.mkdir(parents=True, exist_ok=True)
    with torch.no_grad():
        prior, _ = model.generate(args.steps, batch_size=args.num)
        saved = {"prior": prior.numpy()}
        data = []
        if args.prefix_steps:
            held = [s for s in corpus.splits[args.split] if len(s) >= args.prefix_steps][:args.num]
            if not held:
                print(f"error: no {args.split} sequence has {args.prefix_steps} steps", file=sys.stderr)
                return 2
            prefix = torch.as_tensor(np.stack([s[:args.prefix_steps] for s in held]), dtype=torch.float32)
            cont, _ = model.generate(args.steps, prefix=prefix, guide=guide)
            saved.update(prefixes=prefix.numpy(), continuations=cont.numpy())
            data = [s[:args.prefix_steps + args.steps] for s in held]
    for name, arr in saved.items():
        np.save(out / f"{name}.npy", arr)
    is_roll = corpus.x_dim == 88 and model.config.emission == "bernoulli"
    if is_roll:
        for name in ("prior", "continuations"):
            for i, roll in enumerate(saved.get(name, [])):
                roll_to_midi(roll, out / f"{name}_{i}.mid", tempo_bpm=args.tempo)
        for i, roll in enumerate(data):
            roll_to_midi(roll, out / f"data_{i}.mid", tempo_bpm=args.tempo)
    is_speech = corpus.kind == "speech"
    if is_speech:
        from pyro_dssm.resynthesis import griffin_lim, wav_bytes
        from pyro_dssm.utils import atomic_write_bytes

        for name in ("prior", "continuations"):
            for i, power in enumerate(saved.get(name, [])):
                wave = griffin_lim(power, corpus.stft, seed=args.seed)
                wave = wave / max(float(np.abs(wave).max()), 1e-8)  # peak-normalised, as the training audio
                atomic_write_bytes(out / f"{name}_{i}.wav", wav_bytes(wave, corpus.stft.sample_rate))
    if not args.no_png and not is_speech:
        groups = [("held-out data", data)] if data else []
        if "continuations" in saved:
            groups.append((f"continued after {args.prefix_steps}", list(saved["continuations"])))
        groups.append(("prior samples", list(saved["prior"])))
        plot_rolls(groups, out / "piano_rolls.png")
    print(f"wrote {len(saved)} arrays{', MIDI files' if is_roll else ''}{', WAV files' if is_speech else ''}"
          f"{' and piano_rolls.png' if not (args.no_png or is_speech) else ''} to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
