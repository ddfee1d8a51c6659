"""sglangc in-process: click's runner with stdout and stderr apart and exceptions not swallowed."""

from __future__ import annotations

import os
import typing as t
from pathlib import Path

import pytest
from click.testing import CliRunner, Result


def run_cli(
    *args: str, cwd: Path | str | None = None, env: t.Mapping[str, str] | None = None, input: bytes | None = None
) -> Result:
    """`sglangc ARGS…` in this process (from `cwd` when given, `input` on stdin); a traceback propagates as the
    exception it is."""
    from sglangc.cli import cli

    old = Path.cwd()
    try:
        if cwd is not None:
            os.chdir(cwd)
        return CliRunner().invoke(cli, list(args), input=input, env=dict(env) if env else None, catch_exceptions=False)
    finally:
        os.chdir(old)


@pytest.fixture
def sglangc(tmp_path: Path) -> t.Callable[..., Result]:
    """run_cli with the test's own tmp_path as the working directory unless `cwd=` says otherwise."""

    def run(*args: str, cwd: Path | str | None = None, env: t.Mapping[str, str] | None = None) -> Result:
        return run_cli(*args, cwd=tmp_path if cwd is None else cwd, env=env)

    return run
