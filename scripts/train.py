#!/usr/bin/env python
"""Train any DSSM of the taxonomy with any guide, on music or your own sequences.

The same command as ``pyro-dssm train`` (``python -m pyro_dssm train``): see :mod:`pyro_dssm.cli.train`
or ``python scripts/train.py --help``.
"""

import sys

from pyro_dssm.cli.train import main, parse_args  # noqa: F401  (parse_args: for callers of the old script module)

if __name__ == "__main__":
    sys.exit(main())
