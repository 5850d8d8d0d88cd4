#!/usr/bin/env python
"""Collect training runs into the markdown table of the taxonomy paper's Table II.

Example::

    python scripts/results_table.py runs/* --out results/table2.md

The same command as ``pyro-dssm table music`` (:mod:`pyro_dssm.cli.table`), with the flags it had
before that command existed.
"""

import sys

from pyro_dssm.cli.table import main as _table


def main(argv=None) -> int:
    return _table(["music", *(sys.argv[1:] if argv is None else argv)])


if __name__ == "__main__":
    sys.exit(main())
