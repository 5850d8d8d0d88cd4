#!/usr/bin/env python
"""Collect evaluated LS4-style runs into LS4's Table 1 (generation) or, ``--forecast``, Table 2, as markdown.

Examples::

    python scripts/generation_table.py runs/ls4/* runs/vrnn-fred-md --out results/table1.md
    python scripts/generation_table.py runs/ls4/ushcn* --forecast --out results/table2.md

The same command as ``pyro-dssm table generation`` (``forecast`` with ``--forecast``) (:mod:`pyro_dssm.cli.table`), with the flags it had
before that command existed.
"""

import sys

from pyro_dssm.cli.table import main as _table


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    kind = "forecast" if "--forecast" in argv else "generation"
    return _table([kind, *(a for a in argv if a != "--forecast")])


if __name__ == "__main__":
    sys.exit(main())
