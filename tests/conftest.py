"""Shared fixtures; the helpers live in tests/support/ (this module re-exports the names older tests import)."""

from __future__ import annotations

import typing as t
from pathlib import Path

import pytest

from support import EXAMPLES, IN_CI, ROOT
from support.cli import run_cli, sglangc

__all__ = ["EXAMPLES", "IN_CI", "ROOT", "run_cli", "sglangc"]


@pytest.fixture
def write_config(tmp_path: Path) -> t.Callable[..., Path]:
    def write(text: str, name: str = "config.toml") -> Path:
        path = tmp_path / name
        path.write_text(text, encoding="utf-8")
        return path

    return write
