"""The SGLang stand-in's builder (tests/fakes/sglang_standin/build.py, importable by path only) and a prefix of it."""

from __future__ import annotations

from pathlib import Path

from support import CATALOG, ROOT, load_module

BUILD = ROOT / "tests" / "fakes" / "sglang_standin" / "build.py"
standin = load_module("sglang_standin_build", BUILD)


def make_project(project: Path, *, supervisor: bool, catalog: Path = CATALOG) -> Path:
    """A pixi project dir whose default environment ($PREFIX) holds the stand-in (and supervisor if asked)."""
    extras = ("pyyaml", "supervisor") if supervisor else ("pyyaml",)
    standin.make_prefix(project / ".pixi" / "envs" / "default", catalog, extra_packages=extras)
    return project
