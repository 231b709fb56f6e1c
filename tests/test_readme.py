"""The README's promises: its API snippet runs as written (fewer epochs), its first two
commands are what CI and the package provide."""
import os
import re

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def readme():
    with open(os.path.join(ROOT, "README.md"), encoding="utf-8") as f:
        return f.read()


def test_api_snippet_runs(tmp_path, monkeypatch):
    blocks = re.findall(r"```python\n(.*?)```", readme(), re.S)
    assert blocks, "the README lost its API snippet"
    code = blocks[0].replace("epochs=30", "epochs=2")
    monkeypatch.chdir(tmp_path)
    scope = {}
    exec(compile(code, "README.md", "exec"), scope)
    assert np.isfinite(scope["loss"]) and scope["pred"].shape == scope["y_te"].shape
    assert os.path.exists(tmp_path / "sine.npz")


def test_first_commands_are_demo_then_tests():
    commands = re.findall(r"```bash\n(.*?)\n```", readme(), re.S)
    assert commands[0] == 'pip install ".[plot]" && lstm-native demo'
    assert commands[1] == 'pip install ".[test]" && python -m pytest -q'
    with open(os.path.join(ROOT, ".ci", "run"), encoding="utf-8") as f:
        assert commands[1] in f.read()
