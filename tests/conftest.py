"""Shared fixtures; the helpers live in tests/support/ (this module re-exports the names older tests import)."""

from __future__ import annotations

import os
import typing as t
from pathlib import Path

import pytest

import readme
from support import EXAMPLES, IN_CI, ROOT, built_once
from support.cli import run_cli, sglangc

__all__ = ["EXAMPLES", "IN_CI", "ROOT", "run_cli", "sglangc"]

# Where the tests that wait on real processes (servers, installs, builds of venvs and wheels) live, the slowest
# first. They are handed out first, so that a parallel run (pytest-xdist, `--dist load`) ends on quick tests
# rather than on one long test; the rest keep their order.
SLOW_FIRST = (
    "test_readme.py",
    "boot/",
    "test_bench.py",
    "test_wheel.py",
    "e2e/",
    "install/",
    "test_real_parser.py",
    "test_catalog_tool.py",
    "bundle/",
    "fakes/",
    "test_editor.py",
)


def pytest_xdist_auto_num_workers(config: pytest.Config) -> int:
    """`-n auto`: one worker more than there are cores, since most of the slow tests wait on servers and installs
    rather than compute (PYTEST_XDIST_AUTO_NUM_WORKERS still decides when set)."""
    env = os.environ.get("PYTEST_XDIST_AUTO_NUM_WORKERS")
    return int(env) if env else (os.cpu_count() or 1) + 1


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    def rank(item: pytest.Item) -> int:
        where = item.path.relative_to(ROOT / "tests").as_posix()
        return next((i for i, prefix in enumerate(SLOW_FIRST) if where.startswith(prefix)), len(SLOW_FIRST))

    items.sort(key=rank)


@pytest.fixture(scope="session")
def fresh_setup(tmp_path_factory: pytest.TempPathFactory) -> readme.FreshSetup:
    """README's set-up line, run once per session in a copy of the checkout, for every xdist worker."""
    return readme.fresh_setup(built_once(tmp_path_factory, "readme-setup", readme.setup_on_a_fresh_copy))


@pytest.fixture
def write_config(tmp_path: Path) -> t.Callable[..., Path]:
    def write(text: str, name: str = "config.toml") -> Path:
        path = tmp_path / name
        path.write_text(text, encoding="utf-8")
        return path

    return write


# Hypothesis keeps its example database and caches out of the checkout: the tests write nothing there.
import tempfile as _tempfile  # noqa: E402

from hypothesis import configuration as _hypothesis_configuration  # noqa: E402
from hypothesis import settings as _hypothesis_settings  # noqa: E402

_hypothesis_configuration.set_hypothesis_home_dir(_tempfile.mkdtemp(prefix="sglangc-hypothesis-"))
_hypothesis_settings.register_profile("sglangc", database=None)
_hypothesis_settings.load_profile("sglangc")
