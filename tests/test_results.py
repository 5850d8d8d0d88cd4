"""The committed results stay what their runs say.

Each experiment's small files under ``results/experiments/NAME/PROFILE/`` (kept by
``scripts/archive_runs.py``) hold the table ``reproduce`` wrote and every run's summaries. These
tests re-render each table from those summaries with today's code, and check that RESULTS.md quotes
every verdict of every committed table word for word: a verdict in the docs that the committed
runs no longer give (a stale paste, a hand edit, a rendering change not rerun) fails here.
"""

import json
import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SUMMARIES = sorted((REPO / "results" / "experiments").glob("*/*/results.json"))
TABLES = sorted((REPO / "results" / "experiments").glob("*/*/table*.md"))
VERDICT_ROW = re.compile(r"^\| .+ \| (confirmed|contradicted|within noise|one seed|not run) \|$")


def _ids(paths):
    return [str(p.parent.relative_to(REPO / "results" / "experiments")) + "/" + p.name for p in paths]


def test_the_committed_experiments_are_found():
    assert {p.parent.parent.name for p in SUMMARIES} >= {"music-bach", "speech-asterisk", "ls4-grid-flame",
                                                         "ls4-grid-macro"}


@pytest.mark.parametrize("summary", SUMMARIES, ids=_ids(SUMMARIES))
def test_a_committed_table_is_what_its_committed_runs_render(summary):
    from pyro_dssm import experiments as ex
    from pyro_dssm.tables import run_record

    result = json.loads(summary.read_text())
    root = summary.parent
    records = []
    for run in result["runs"]:
        rec = run_record(root / run["config"] / f"seed{run['seed']}")
        assert rec is not None, f"{root}: the table counts {run['config']} seed {run['seed']}, whose summaries are gone"
        records.append({"config": run["config"], "seed": run["seed"], **rec})
    table = ex.experiment_table(result["kind"], records, result["baselines"]) + "\n"  # as reproduce writes it
    assert table == (root / "table.md").read_text(), (
        f"{root / 'table.md'} is not what its runs render now: rerun `scripts/reproduce.py "
        f"configs/experiments/{result['experiment']}.yaml --profile {result['profile']} --table-only` and copy it back")


@pytest.mark.parametrize("table", TABLES, ids=_ids(TABLES))
def test_results_md_quotes_every_verdict_of_a_committed_table(table):
    doc = (REPO / "RESULTS.md").read_text()
    text = table.read_text()
    rows = [line for line in text.splitlines() if VERDICT_ROW.match(line)]
    assert bool(rows) == ("| claim |" in text), f"{table}: the verdict rows were not recognised"
    missing = [row for row in rows if row not in doc.splitlines()]
    assert not missing, f"RESULTS.md lacks {len(missing)} of the {len(rows)} verdicts of {table}: {missing[:3]}"
