"""The version has one owner (mdllm_kit._version), the one pyproject.toml declares."""
import tomllib
from pathlib import Path

import mdllm_kit as mk
from mdllm_kit._version import __version__


def test_one_version():
    project = tomllib.loads((Path(__file__).parents[1] / "pyproject.toml").read_text())["project"]
    assert mk.__version__ is __version__ and __version__ == project["version"]
