#!/usr/bin/env python
"""Guides against a known teacher: fit every guide alone to a frozen model's own samples and

The same command as ``pyro-dssm guide-study`` (``python -m pyro_dssm guide-study``): see :mod:`pyro_dssm.cli.guide_study`
or ``python scripts/guide_study.py --help``.
"""

import sys

from pyro_dssm.cli.guide_study import main, parse_args  # noqa: F401  (parse_args: for callers of the old script module)

if __name__ == "__main__":
    sys.exit(main())
