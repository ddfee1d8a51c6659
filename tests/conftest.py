from __future__ import annotations

import os
import typing as t
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from sglangc.cli import cli

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = sorted((ROOT / "model-configs").glob("*.toml"))
IN_CI = os.environ.get("CI") == "true"


def run_cli(*args: str, cwd: Path | None = None) -> Result:
    """sglangc in-process, stdout and stderr apart, exceptions not swallowed."""
    runner = CliRunner()
    old = Path.cwd()
    try:
        if cwd:
            os.chdir(cwd)
        return runner.invoke(cli, list(args), catch_exceptions=False)
    finally:
        os.chdir(old)


@pytest.fixture
def write_config(tmp_path: Path) -> t.Callable[[str], Path]:
    def write(text: str, name: str = "config.toml") -> Path:
        path = tmp_path / name
        path.write_text(text, encoding="utf-8")
        return path

    return write
