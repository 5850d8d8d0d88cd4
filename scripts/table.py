#!/usr/bin/env python
"""Collect run directories into one of the papers' tables (Table II, Table I, LS4's Tables 1 and 2).

The same command as ``pyro-dssm table`` (``python -m pyro_dssm table``): see :mod:`pyro_dssm.cli.table`
or ``python scripts/table.py --help``. ``results_table.py``, ``speech_table.py`` and
``generation_table.py`` are this command for one kind of table each.
"""

import sys

from pyro_dssm.cli.table import main, parse_args  # noqa: F401  (parse_args: like the other command shims)

if __name__ == "__main__":
    sys.exit(main())
