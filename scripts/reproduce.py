#!/usr/bin/env python
"""Run one of the papers' experiments: train every config x seed, evaluate, and write its table.

The same command as ``pyro-dssm reproduce`` (``python -m pyro_dssm reproduce``): see :mod:`pyro_dssm.cli.reproduce`
or ``python scripts/reproduce.py --help``.
"""

import sys

from pyro_dssm.cli.reproduce import main, parse_args  # noqa: F401  (parse_args: for callers of the old script module)

if __name__ == "__main__":
    sys.exit(main())
