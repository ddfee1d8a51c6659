"""Fixtures for the installer tests: a compiled install-sglang-offline.sh, real wheels, bundles, a sandbox.

The wheelhouse route is tested for real (python -m venv + pip --no-index into a real venv). pixi, pixi-pack and
pixi-unpack are not available here: the pixi-pack routes run through the stand-ins in tests/fakes/bin, which follow
the documented command lines and the pixi-pack archive layout.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from support import bundlekit

from .installbox import EXAMPLE, MiB, Sandbox, compile_config


@pytest.fixture(scope="session")
def compiled(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """DIR of a compiled example config (installer, pixi/pixi.toml)."""
    out = tmp_path_factory.mktemp("compiled")
    compile_config(EXAMPLE, out)
    return out


@pytest.fixture(scope="session")
def wheels(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """Real wheels: the tiny sglang and torch built here, supervisor and PyYAML (with their dependencies)
    downloaded from PyPI once per session (or kept in $SGLANGC_INSTALL_TEST_CACHE across sessions)."""
    out = tmp_path_factory.mktemp("wheels")
    cache = Path(os.environ.get("SGLANGC_INSTALL_TEST_CACHE") or tmp_path_factory.mktemp("pypi"))
    return [bundlekit.fake_sglang_wheel(out), bundlekit.fake_torch_wheel(out), *bundlekit.third_party_wheels(cache)]


@pytest.fixture(scope="session")
def bundle_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("bundles")


@pytest.fixture(scope="session")
def wheelhouse(bundle_dir: Path, wheels: list[Path]) -> Path:
    """A small wheelhouse bundle; tests copy it before changing it."""
    return bundlekit.wheelhouse_tar(bundle_dir / "wheelhouse.tar", wheels)


@pytest.fixture(scope="session")
def pixi_pack(bundle_dir: Path, wheels: list[Path]) -> Path:
    """A pixi-pack archive (fake conda packages, the real wheels in pypi/) for the pixi-unpack stand-in."""
    return bundlekit.pixi_pack_tar(bundle_dir / "environment.tar", wheels)


@pytest.fixture(scope="session")
def padded_pixi_pack(bundle_dir: Path, wheels: list[Path]) -> Path:
    """The pixi-pack archive with 32 MiB of padding last (pypi/padding.bin, which pixi-unpack leaves alone): through
    `Sandbox.throttle_hasher(16)` its extraction lasts about two seconds, long enough to be interrupted or waited
    for, on any machine. What is tested around extraction does not depend on the route: the quicker one."""
    return bundlekit.pixi_pack_tar(bundle_dir / "padded-environment.tar", wheels, pad_bytes=32 * MiB)


@pytest.fixture
def box(tmp_path: Path, compiled: Path) -> Sandbox:
    return Sandbox(tmp_path, compiled / "install-sglang-offline.sh", compiled / "pixi")
