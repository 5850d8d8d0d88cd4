#!/usr/bin/env python
"""Evaluate a training run: Table II's test negative ELBO per time step and an importance-sampled NLL;

The same command as ``pyro-dssm evaluate`` (``python -m pyro_dssm evaluate``): see :mod:`pyro_dssm.cli.evaluate`
or ``python scripts/evaluate.py --help``.
"""

import sys

from pyro_dssm.cli.evaluate import main, parse_args  # noqa: F401  (parse_args: for callers of the old script module)

if __name__ == "__main__":
    sys.exit(main())
