#!/usr/bin/env python
"""Regenerate ``pyro_dssm/data/assets/bach_chorales.npz``, the corpus that the main job trains on.

Bach's chorales from the corpus that ``music21`` ships (``corpus.chorales.Iterator``),
one frame per quarter note, the four voices (the first four parts: soprano, alto,
tenor, bass) on the 88 piano keys, ties merged. Chorales with fewer than four parts
are skipped. The split is deterministic: chorales sorted by corpus path, then a
seeded permutation into 60% train, 20% valid, 20% test (JSB's 229/76/77 ratio).

Needs ``music21`` (``pip install music21``); parsing takes 2 to 4 minutes.
``--limit N`` converts only the first N chorales (for checks); ``--check`` compares
with the shipped file instead of writing it.
"""

from __future__ import annotations

import argparse
import sys

import numpy as np

from pyro_dssm.data.music import BACH_CHORALES_PATH, load_bach_chorales, save_bach_chorales, score_to_roll

SEED = 0
FRACTIONS = (0.6, 0.2, 0.2)


def convert(limit=None, verbose=True):
    """Returns (ids, rolls) in corpus-path order."""
    from music21 import corpus

    paths = sorted(set(corpus.chorales.Iterator(returnType="filename")))
    if limit is not None:
        paths = paths[:limit]
    ids, rolls = [], []
    for i, p in enumerate(paths):
        score = corpus.parse(p)
        if len(score.parts) < 4:
            continue
        roll = score_to_roll(score, frames_per_quarter=1, parts=[0, 1, 2, 3])
        if roll.shape[0] == 0 or roll.sum() == 0:
            continue
        ids.append(str(p))
        rolls.append(roll)
        if verbose and (i + 1) % 50 == 0:
            print(f"  {i + 1}/{len(paths)} parsed", file=sys.stderr)
    return ids, rolls


def split_assignment(n, seed=SEED):
    """0 = train, 1 = valid, 2 = test, for n chorales in path order."""
    perm = np.random.default_rng(seed).permutation(n)
    n_train = int(round(FRACTIONS[0] * n))
    n_valid = int(round(FRACTIONS[1] * n))
    split = np.empty(n, dtype=np.int8)
    split[perm[:n_train]] = 0
    split[perm[n_train:n_train + n_valid]] = 1
    split[perm[n_train + n_valid:]] = 2
    return split


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default=str(BACH_CHORALES_PATH))
    p.add_argument("--limit", type=int, default=None, help="convert only the first N chorales")
    p.add_argument("--check", action="store_true", help="compare the first chorales with the shipped file")
    args = p.parse_args(argv)
    ids, rolls = convert(args.limit)
    if args.check:
        shipped = load_bach_chorales()
        by_id = {i: r for s in shipped.splits for i, r in zip(shipped.ids[s], shipped.splits[s])}
        bad = [i for i, r in zip(ids, rolls) if i not in by_id or not np.array_equal(by_id[i], r)]
        print(f"checked {len(ids)} chorales against {BACH_CHORALES_PATH}: {len(bad)} differ")
        return 1 if bad else 0
    split = split_assignment(len(rolls))
    save_bach_chorales(rolls, ids, split, args.out)
    lengths = np.array([len(r) for r in rolls])
    print(f"wrote {args.out}: {len(rolls)} chorales, split {np.bincount(split).tolist()}, "
          f"lengths {lengths.min()}..{lengths.max()} (median {int(np.median(lengths))})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
