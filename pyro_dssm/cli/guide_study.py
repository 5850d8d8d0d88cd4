"""Guides against a known teacher: fit every guide alone to a frozen model's own samples and
report how far each bound lies below log p(x) (taxonomy paper Sec. II-B, II-C, App. D).

Examples::

    python scripts/guide_study.py arssm-full-bach                       # a pretrained teacher
    python scripts/guide_study.py runs/experiments/music-bach/converge/srnn-full/seed0 --out results/guides/srnn
    python scripts/guide_study.py arssm-full-bach --guides partial full --iafs 0 --ks 10 100 --epochs 5   # quick

The teacher (a run directory or a pretrained name) draws ``--train``/``--valid``/``--test``
sequences of ``--length`` steps from its prior; each guide of ``--guides`` x ``--iafs``
(the teacher's widths) is fitted with the teacher frozen until its validation ELBO has not
improved for ``--patience`` epochs, and scored on the test sequences with ``max(--ks)``
importance weights. ``log p(x)`` is estimated by the tightest guide's IWAE bound (at ``max(--logp-ks)``
particles, drawn for that guide alone, when given: ``--logp-ks 10000`` shows the convergence in K).
Writes ``OUT/guide_study.json`` (every number, the settings and the teacher's card) and
``OUT/table.md``; see :mod:`pyro_dssm.guide_study`. Each guide's fit is kept in ``OUT/fits/``
when done: run the same command again after an interruption and the study resumes there.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("teacher", help="a run directory or a pretrained model's name (pyro_dssm.list_pretrained())")
    p.add_argument("--checkpoint", default="best", help="best | last | a .ckpt path (run directories)")
    p.add_argument("--guides", nargs="+", default=None,
                   help="default: every one of partial, full, A, B, C that the teacher's graph admits")
    p.add_argument("--iafs", type=int, nargs="+", default=[0, 3], help="IAF counts to try with every guide")
    p.add_argument("--ks", type=int, nargs="+", default=[10, 100, 1000], help="importance particles reported")
    p.add_argument("--logp-ks", type=int, nargs="+", default=[],
                   help="more particles (each above max(--ks)) for the tightest guide alone: log p(x) is its bound at "
                        "the largest, and the table shows how the estimate moves with K")
    p.add_argument("--train", type=int, default=200, help="synthetic training sequences")
    p.add_argument("--valid", type=int, default=50)
    p.add_argument("--test", type=int, default=30)
    p.add_argument("--length", type=int, default=48, help="steps per synthetic sequence")
    p.add_argument("--epochs", type=int, default=300)
    p.add_argument("--patience", type=int, default=15)
    p.add_argument("--lr", type=float, default=3e-3)
    p.add_argument("--batch-size", type=int, default=20)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=None, help="output folder (default: runs/guide-study-TEACHER)")
    args = p.parse_args(argv)
    if min(args.ks) < 1 or min(args.train, args.valid, args.test, args.length, args.epochs, args.batch_size) < 1 \
            or args.patience < 0 or min(args.iafs) < 0:
        p.error("--ks, --train, --valid, --test, --length, --epochs and --batch-size must be >= 1; "
                "--patience and --iafs >= 0")
    if args.logp_ks and min(args.logp_ks) <= max(args.ks):
        p.error(f"--logp-ks must exceed the largest of --ks ({max(args.ks)})")
    from pyro_dssm.guides import list_guides

    unknown = sorted(set(args.guides or ()) - set(list_guides()))
    if unknown:
        p.error(f"unknown guide(s) {unknown}; known: {list_guides()}")
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    from pyro_dssm.config import data_label
    from pyro_dssm.guide_study import guide_study, guide_study_table, teacher_corpus
    from pyro_dssm.training import open_run
    from pyro_dssm.utils import atomic_write_text

    run = open_run(args.teacher, args.checkpoint)
    if run is None:
        return 2
    cfg, _, model, teacher_guide = run
    if cfg.model == "ls4":
        print("error: the guide study compares the taxonomy's guides; LS4 has its own inference network",
              file=sys.stderr)
        return 2
    if args.guides is None:
        from pyro_dssm.guides import inapplicable_guides, list_guides

        for name, why in inapplicable_guides(model).items():
            print(f"guide {name} left out: {why}")
        args.guides = list_guides(model)
    out = Path(args.out or Path("runs") / f"guide-study-{data_label(args.teacher)}")
    corpus = teacher_corpus(model, sizes={"train": args.train, "valid": args.valid, "test": args.test},
                            length=args.length, seed=args.seed, name=f"teacher-{data_label(args.teacher)}")
    try:
        result = guide_study(model, corpus, guides=args.guides, iafs=args.iafs, ks=args.ks,
                             rnn_dim=cfg.guide_rnn_dim, hidden_dim=cfg.hidden_dim, iaf_dim=cfg.iaf_dim,
                             teacher_guide=teacher_guide, seed=args.seed, logp_ks=args.logp_ks,
                             cache_dir=out / "fits", lr=args.lr, batch_size=args.batch_size, epochs=args.epochs,
                             patience=args.patience)
    except ValueError as e:  # a guide the teacher does not admit; kept fits of other settings
        print(f"error: {e}", file=sys.stderr)
        return 2
    result.update(teacher=str(args.teacher), teacher_config=cfg.to_dict(),
                  settings={k: v for k, v in vars(args).items() if k not in ("teacher", "out")},
                  command="python scripts/guide_study.py " + " ".join(sys.argv[1:] if argv is None else argv))
    table = guide_study_table(result)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / "guide_study.json", json.dumps(result, indent=2))
    atomic_write_text(out / "table.md", table + "\n")
    print(table)
    print(f"wrote {out / 'guide_study.json'} and {out / 'table.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
