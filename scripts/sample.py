#!/usr/bin/env python
"""Sample from a trained run: new sequences from the prior, and continuations of held-out prefixes.

The same command as ``pyro-dssm sample`` (``python -m pyro_dssm sample``): see :mod:`pyro_dssm.cli.sample`
or ``python scripts/sample.py --help``.
"""

import sys

from pyro_dssm.cli.sample import main, parse_args  # noqa: F401  (parse_args: for callers of the old script module)

if __name__ == "__main__":
    sys.exit(main())
