"""The notebooks: each runs top to bottom in smoke mode, is stored without outputs, and is linked from the README.

Smoke mode (``PYRO_DSSM_SMOKE=1``) shrinks every training run to toy sizes; the
notebooks' own ``assert`` cells (bounds, causal structure) run in it too. The
notebooks execute in a fresh Jupyter kernel (``nbclient``) with the test's
environment, inside a temporary folder, so runs and caches never touch the repo
or the user's cache.
"""

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK_DIR = ROOT / "notebooks"

#: Every notebook, with what its smoke run must show: the number of pictures (PNG outputs) at least.
NOTEBOOKS = {
    "01_taxonomy_tour": 3,
    "02_music": 4,
    "03_speech": 2,
    "04_ls4_flame": 4,
    "05_bring_your_own_model": 3,
}


def _read(name):
    nbformat = pytest.importorskip("nbformat")
    return nbformat.read(NOTEBOOK_DIR / f"{name}.ipynb", as_version=4)


def test_every_notebook_is_executed_by_the_suite():
    found = sorted(p.stem for p in NOTEBOOK_DIR.glob("*.ipynb"))
    assert found == sorted(NOTEBOOKS), (
        f"notebooks/ holds {found} but tests/test_notebooks.py executes {sorted(NOTEBOOKS)}: "
        "add the new notebook to NOTEBOOKS (or remove the stale entry)")


@pytest.mark.parametrize("name", sorted(NOTEBOOKS))
def test_notebook_is_stored_without_outputs_and_has_a_smoke_switch(name):
    nb = _read(name)
    code = [c for c in nb.cells if c.cell_type == "code"]
    dirty = [i for i, c in enumerate(code) if c.outputs or c.execution_count is not None]
    assert not dirty, f"{name}.ipynb has outputs in code cells {dirty}: clear them before committing"
    assert nb.cells[0].cell_type == "markdown" and nb.cells[0].source.startswith("# "), "first cell: a title"
    assert 'os.environ.get("PYRO_DSSM_SMOKE") == "1"' in code[0].source, "the first code cell reads the smoke switch"


def test_readme_links_every_notebook_with_a_line_saying_what_it_shows():
    readme = (ROOT / "README.md").read_text()
    for name in NOTEBOOKS:
        lines = [ln for ln in readme.splitlines() if f"(notebooks/{name}.ipynb)" in ln]
        assert len(lines) == 1, f"README.md must link notebooks/{name}.ipynb on exactly one line"
        text = re.sub(r"\[[^\]]*\]\([^)]*\)", "", lines[0]).strip(" -*:|")
        assert len(text.split()) >= 5, f"README.md's line for {name} should say what the notebook shows"


@pytest.mark.notebook
@pytest.mark.parametrize("name", sorted(NOTEBOOKS))
def test_notebook_runs_in_smoke_mode(name, tmp_path, monkeypatch):
    nbclient = pytest.importorskip("nbclient")
    pytest.importorskip("ipykernel")
    if name == "03_speech":
        for module in ("librosa", "soundfile", "pesq", "pystoi"):
            pytest.importorskip(module)
    monkeypatch.setenv("PYRO_DSSM_SMOKE", "1")
    monkeypatch.setenv("PYRO_DSSM_DATA", str(tmp_path / "data"))
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    nb = _read(name)
    client = nbclient.NotebookClient(nb, timeout=600, kernel_name="python3",
                                     resources={"metadata": {"path": str(tmp_path)}})
    client.execute()  # raises CellExecutionError, with the cell and traceback, when a cell fails
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    pictures = sum("image/png" in o.get("data", {}) for o in outputs)
    assert pictures >= NOTEBOOKS[name], f"{name} drew {pictures} figures, expected at least {NOTEBOOKS[name]}"
    assert (tmp_path / "runs").is_dir() or name == "05_bring_your_own_model", "training runs go under ./runs"
