"""``python -m pyro_dssm COMMAND [ARGS]``: the command line of :mod:`pyro_dssm.cli`."""

import sys

from .cli import main

sys.exit(main())
