"""The SGLang stand-in's builder (tests/fakes/sglang_standin/build.py, importable by path only) and a prefix of it."""

from __future__ import annotations

from pathlib import Path

from support import CATALOG, ROOT, load_module

BUILD = ROOT / "tests" / "fakes" / "sglang_standin" / "build.py"
standin = load_module("sglang_standin_build", BUILD)


SMG = "smg==1.13.0"  # SGLang's model gateway, the real wheel from the package index (as in the `test` extra)


def make_project(project: Path, *, supervisor: bool, catalog: Path = CATALOG, gateway: bool = False) -> Path:
    """A pixi project dir whose default environment ($PREFIX) holds the stand-in (and supervisor, and the real
    smg for the gateway, if asked)."""
    extras: tuple[str, ...] = ("pyyaml", "supervisor") if supervisor else ("pyyaml",)
    extras += (SMG,) if gateway else ()
    standin.make_prefix(project / ".pixi" / "envs" / "default", catalog, extra_packages=extras)
    return project
