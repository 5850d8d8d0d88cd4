"""Run one of the papers' experiments: train every config x seed, evaluate, and write its table.

Examples::

    python scripts/reproduce.py configs/experiments/music-bach.yaml                 # the papers' protocol
    python scripts/reproduce.py configs/experiments/music-bach.yaml --profile cpu --jobs 2
    python scripts/reproduce.py configs/experiments/music-bach.yaml --profile cpu --table-only
    python scripts/reproduce.py configs/experiments/oracle-lgssm.yaml
    python scripts/reproduce.py configs/experiments/ls4-grid-macro.yaml --profile cpu --seeds 0      # a tuning grid
    python scripts/reproduce.py configs/experiments/ls4-grid-macro.yaml --profile cpu --seeds 1 2 --best-of-grid

Runs go to ``OUT/PROFILE/CONFIG/seedS`` (finished runs are skipped, interrupted ones
resumed, missing evaluations done), logs to ``OUT/PROFILE/logs/``; the table to
``OUT/PROFILE/table.md`` and every run's numbers, wall times and the machine to
``OUT/PROFILE/results.json``. See ``configs/experiments/README.md``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("experiment", help="an experiment file (configs/experiments/*.yaml)")
    p.add_argument("--profile", default="paper", help="the budget profile of the file (default: paper)")
    p.add_argument("--seeds", type=int, nargs="+", help="only these seeds (default: the file's)")
    p.add_argument("--only", nargs="+", metavar="CONFIG", help="only these run configs (file stems)")
    p.add_argument("--jobs", type=int, default=1, help="runs trained at once (each gets cores/jobs threads)")
    p.add_argument("--table-only", action="store_true", help="train nothing: tabulate the finished runs")
    p.add_argument("--best-of-grid", action="store_true",
                   help="a tuning grid's second stage: only the config of each (data, model) with the best mean validation "
                        "ELBO over the seeds all its configs finished (e.g. with --seeds 1 2 after the grid's seed 0)")
    args = p.parse_args(argv)
    if args.best_of_grid and args.only:
        p.error("--best-of-grid chooses the configs itself; drop --only")
    if args.jobs < 1:
        p.error("--jobs must be >= 1")
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    from pyro_dssm import experiments as ex
    from pyro_dssm.utils import atomic_write_text

    try:
        exp = ex.load_experiment(args.experiment)
        out = exp.out_dir(args.profile)
        if exp.kind == "oracle":
            from pyro_dssm.oracle import oracle_experiment, oracle_table

            t0 = time.time()
            records = oracle_experiment(**{**exp.oracle, **exp.profile(args.profile)},
                                        seeds=args.seeds if args.seeds is not None else exp.seeds)
            status, table, baselines = {}, oracle_table(records), []
            seconds = time.time() - t0
        else:
            only = args.only
            if args.best_of_grid:
                best = ex.best_of_grid(exp, args.profile)
                for (data, model), config in sorted(best.items()):
                    print(f"best on validation: {data} {model}: {config}")
                only = sorted(best.values())
            plans = ex.plan_runs(exp, args.profile, seeds=args.seeds, only=only)
            status = {} if args.table_only else ex.execute(plans, jobs=args.jobs, log_dir=out / "logs")
            records = ex.collect(plans)
            baselines = ex.run_baselines(exp, args.profile, seeds=args.seeds, train=not args.table_only)
            table = ex.experiment_table(exp.kind, records, baselines)
            seconds = sum(r.get("train_seconds") or 0.0 for r in records)
    except (ValueError, FileNotFoundError, ImportError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    result = {"experiment": exp.name, "kind": exp.kind, "profile": args.profile, "baselines": baselines,
              "overrides": exp.profiles[args.profile] or {},
              "machine": ex.machine_info(), "seconds": seconds, "runs": records}
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / "results.json", json.dumps(result, indent=2))
    atomic_write_text(out / "table.md", table + "\n")
    print(table)
    print(f"wrote {out / 'table.md'} and {out / 'results.json'}")
    failed = {k: v for k, v in status.items() if v != "ok"}
    for k, v in failed.items():
        print(f"failed: {k}: {v}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
