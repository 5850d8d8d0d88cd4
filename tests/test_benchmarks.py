"""The benchmarks still run (tiny sizes): each prints its side-by-side ratios."""

import importlib.util
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _load(name):
    spec = importlib.util.spec_from_file_location(name, ROOT / "benchmarks" / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_ls4_runtime_benchmark(capsys):
    _load("ls4_runtime").main(["--lengths", "16", "24", "--width", "8", "--state", "8", "--depth", "1",
                               "--repeats", "1", "--batch-size", "2"])
    out = capsys.readouterr().out
    rows = re.findall(r"^\| (\d+) \| ([\d.]+) \| ([\d.]+) \| ([\d.]+)x \| ([\d.]+) \| ([\d.]+) \| ([\d.]+)x \|$", out,
                      re.M)
    assert [r[0] for r in rows] == ["16", "24"]
    for r in rows:
        ls4, vrnn, ratio = float(r[1]), float(r[2]), float(r[3])
        assert ls4 > 0 and vrnn > 0 and ratio == pytest.approx(vrnn / ls4, rel=0.1, abs=0.06)


def test_speech_features_benchmark(capsys, monkeypatch, tmp_path):
    import os

    pytest.importorskip("librosa")
    monkeypatch.setenv("PYRO_DSSM_DATA", str(tmp_path))
    _load("speech_features").main(["--tile", "1", "--repeats", "1"])
    assert os.environ["PYRO_DSSM_DATA"] == str(tmp_path)  # the benchmark's own cache folder is gone again
    out = capsys.readouterr().out
    m = re.search(r"max relative difference ([\d.e+-]+)", out)
    assert m and float(m.group(1)) < 1e-5  # the torch and librosa spectrograms agree
    assert re.search(r"from cache [\d.]+ s, ratio [\d.]+x", out)
