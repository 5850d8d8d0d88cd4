"""The command line: ``pyro-dssm COMMAND [ARGS]``, also ``python -m pyro_dssm COMMAND [ARGS]``.

Commands (each module's ``main(argv)``; ``pyro-dssm COMMAND --help`` for its flags):

* ``train``: train any model with any guide (:mod:`pyro_dssm.cli.train`);
* ``evaluate``: Table II's scores, speech resynthesis, generation and forecasting scores (:mod:`.evaluate`);
* ``sample``: prior samples and continuations (:mod:`.sample`);
* ``reproduce``: a paper experiment's grid of runs and its table (:mod:`.reproduce`);
* ``guide-study``: every guide fitted to a frozen model's samples (:mod:`.guide_study`);
* ``table``: run directories collected into one of the papers' tables (:mod:`.table`).

Installed with ``pip install pyro-dssm``, these work outside a checkout; in a checkout
``python scripts/train.py ...`` and the other scripts are the same commands.
"""

from __future__ import annotations

import importlib
import sys
from typing import List, Optional

__all__ = ["COMMANDS", "main"]

#: command -> (module under pyro_dssm.cli, one line of help)
COMMANDS = {
    "train": ("train", "train any model of the taxonomy (or LS4) with any guide"),
    "evaluate": ("evaluate", "score a run or a pretrained model: -ELBO, IWAE, resynthesis, generation, forecasting"),
    "sample": ("sample", "sample from a run or a pretrained model: prior samples and continuations"),
    "reproduce": ("reproduce", "run one of the papers' experiments (configs/experiments/*.yaml) and tabulate it"),
    "guide-study": ("guide_study", "fit every guide alone to a frozen model's samples; bounds against log p(x)"),
    "table": ("table", "collect run directories into one of the papers' tables (music, speech, generation, forecast)"),
}


def _usage() -> str:
    width = max(map(len, COMMANDS))
    lines = ["usage: pyro-dssm COMMAND [ARGS]   (pyro-dssm COMMAND --help for its flags)", "", "commands:"]
    lines += [f"  {name:{width}s}  {text}" for name, (_, text) in COMMANDS.items()]
    return "\n".join(lines)


def main(argv: Optional[List[str]] = None) -> int:
    """Dispatch ``argv`` (default ``sys.argv[1:]``) to a command; returns its exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(_usage())
        return 0 if argv else 2
    name, rest = argv[0], argv[1:]
    if name not in COMMANDS:
        print(f"pyro-dssm: unknown command {name!r}\n\n{_usage()}", file=sys.stderr)
        return 2
    module = importlib.import_module(f"{__name__}.{COMMANDS[name][0]}")
    sys.argv[0] = f"pyro-dssm {name}"  # argparse's prog in usage and error lines
    return module.main(rest)
