"""The installed command line: ``pyro-dssm COMMAND`` and ``python -m pyro_dssm COMMAND`` are the scripts.

The wheel itself, installed outside the checkout, is checked by ``.ci/wheel-check`` (run by CI).
"""

import subprocess
import sys

import pytest

from pyro_dssm.cli import COMMANDS, main

from conftest import ROOT


def test_without_a_command_it_prints_the_commands(capsys):
    assert main([]) == 2 and main(["--help"]) == 0
    out = capsys.readouterr().out
    for name in COMMANDS:
        assert f"  {name}" in out


def test_an_unknown_command_is_named(capsys):
    assert main(["trian"]) == 2
    assert "unknown command 'trian'" in capsys.readouterr().err


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_every_command_is_the_script_of_the_same_name(name):
    import importlib

    module = importlib.import_module(f"pyro_dssm.cli.{COMMANDS[name][0]}")
    shim = (ROOT / "scripts" / f"{COMMANDS[name][0]}.py").read_text()
    assert f"from pyro_dssm.cli.{COMMANDS[name][0]} import main" in shim
    assert callable(module.main) and callable(module.parse_args)


def test_a_command_reports_its_own_usage(capsys):
    with pytest.raises(SystemExit) as stop:
        main(["evaluate", "--particles", "0", "x"])
    assert stop.value.code == 2 and capsys.readouterr().err.startswith("usage: pyro-dssm evaluate")


def test_python_dash_m_is_the_command_line():
    r = subprocess.run([sys.executable, "-m", "pyro_dssm"], capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert r.returncode == 2 and r.stdout.startswith("usage: pyro-dssm COMMAND") and "guide-study" in r.stdout


def test_the_package_declares_its_console_script():
    import tomllib

    meta = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert meta["project"]["scripts"] == {"pyro-dssm": "pyro_dssm.cli:main"}
    assert "bash .ci/wheel-check" in (ROOT / ".ci" / "run").read_text().splitlines()
