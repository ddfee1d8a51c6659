"""The SGLang stand-in's builder (tests/fakes/sglang_standin/build.py, importable by path only) and a prefix of it."""

from __future__ import annotations

import importlib.util
import types
from pathlib import Path

from support import CATALOG, ROOT

BUILD = ROOT / "tests" / "fakes" / "sglang_standin" / "build.py"


def _load(name: str, path: Path) -> types.ModuleType:
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec and spec.loader, path
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


standin = _load("sglang_standin_build", BUILD)


def make_project(project: Path, *, supervisor: bool, catalog: Path = CATALOG) -> Path:
    """A pixi project dir whose default environment ($PREFIX) holds the stand-in (and supervisor if asked)."""
    extras = ("pyyaml", "supervisor") if supervisor else ("pyyaml",)
    standin.make_prefix(project / ".pixi" / "envs" / "default", catalog, extra_packages=extras)
    return project
