#!/usr/bin/env python
"""Collect speech runs into the markdown table of the taxonomy paper's Table I.

Example::

    python scripts/speech_table.py runs/speech/* [--latents mean] [--stat median] --out results/table1.md

The same command as ``pyro-dssm table speech`` (:mod:`pyro_dssm.cli.table`), with the flags it had
before that command existed.
"""

import sys

from pyro_dssm.cli.table import main as _table


def main(argv=None) -> int:
    return _table(["speech", *(sys.argv[1:] if argv is None else argv)])


if __name__ == "__main__":
    sys.exit(main())
