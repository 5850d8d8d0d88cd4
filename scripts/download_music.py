#!/usr/bin/env python
"""Opt-in download of the polyphonic music benchmarks (Boulanger-Lewandowski et al., 2012).

Example::

    python scripts/download_music.py jsb piano
    python scripts/download_music.py nottingham --allow-unverified

Files go to ``--root`` (default ``$PYRO_DSSM_DATA`` or ``~/.cache/pyro-dssm``), never
into the installed package, and are checked against their recorded SHA-256.
No verified checksum is known for Nottingham and MuseData; ``--allow-unverified``
accepts them and prints their checksum. Offline, put the files there by hand.
"""

from __future__ import annotations

import argparse
import sys


def main(argv=None) -> int:
    from pyro_dssm.data.music import BENCHMARKS, benchmark_cache_dir, download_benchmark

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("names", nargs="+", help=f"any of {sorted(BENCHMARKS)}")
    p.add_argument("--root", default=None, help=f"target folder (default {benchmark_cache_dir()})")
    p.add_argument("--sha256", default=None, help="expected checksum (one name only)")
    p.add_argument("--allow-unverified", action="store_true")
    args = p.parse_args(argv)
    status = 0
    for name in args.names:
        try:
            path = download_benchmark(name, args.root, sha256=args.sha256, allow_unverified=args.allow_unverified)
            print(f"{name}: {path}")
        except (ValueError, OSError) as e:
            print(f"error: {name}: {e}", file=sys.stderr)
            status = 2
    return status


if __name__ == "__main__":
    sys.exit(main())
