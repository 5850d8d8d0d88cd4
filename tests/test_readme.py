"""The README's commands and example are the ones that CI and users run."""

import pathlib
import re

import torch

ROOT = pathlib.Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()


def _bash_blocks():
    return re.findall(r"```bash\n(.*?)```", README, re.S)


def test_ci_runs_exactly_the_readme_test_command():
    test_cmd = [b.strip() for b in _bash_blocks() if "pytest" in b]
    assert len(test_cmd) == 1
    ci = (ROOT / ".ci" / "run").read_text()
    assert test_cmd[0] in ci.splitlines()


def test_main_job_command_runs_the_train_script():
    main = [b.strip() for b in _bash_blocks() if "scripts/train.py" in b]
    assert len(main) == 1 and main[0].endswith("python scripts/train.py --model arssm --guide full")


def test_python_example_runs():
    code = re.findall(r"```python\n(.*?)```", README, re.S)[0]
    ns = {}
    exec(compile(code, "README.md", "exec"), ns)
    assert ns["samples"].shape == (4, 50, 88) and ns["continued"].shape == (2, 30, 88)
    assert ns["iwae"].shape == (8,) and torch.isfinite(ns["iwae"]).all()


def test_readme_table_lists_every_preset():
    import pyro_dssm
    for name in pyro_dssm.list_models():
        assert f"| `{name}` |" in README
