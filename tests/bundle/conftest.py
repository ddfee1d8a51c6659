"""Fixtures of the bundle tests: the pixi / pixi-pack stand-ins on PATH, tiny wheels, sglangc bundle in-process.

Only `pypi_wheels` uses the network (one `pip download` of supervisor and pyyaml per session).
"""

from __future__ import annotations

import dataclasses
import json
import os
import platform
import shutil
import subprocess
import sys
import tarfile
import typing as t
from pathlib import Path

import pytest
from click.testing import Result

import sglangc.bundle
from support import FAKES_BIN, bundlekit, not_here
from support.cli import run_cli

FAKES = FAKES_BIN
SHA256SUM = shutil.which("sha256sum")
PY = f"{sys.version_info.major}.{sys.version_info.minor}"
X86_64 = platform.machine() in ("x86_64", "AMD64")


def make_wheel(directory: Path, name: str, version: str, body: str = "") -> Path:
    """A tiny pure-Python wheel `name==version` (module `name` with __version__) that pip installs."""
    module = name.replace("-", "_")
    return bundlekit.make_wheel(
        directory, name, version, {f"{module}/__init__.py": f'__version__ = "{version}"\n{body}'}
    )


def clean_pip_env() -> dict[str, str]:
    """The environment without the machine's pip configuration (indexes, find-links, constraints)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIP_")}
    env.update(PIP_CONFIG_FILE=os.devnull, PIP_DISABLE_PIP_VERSION_CHECK="1")
    return env


def members(path: Path) -> list[str]:
    with tarfile.open(path) as tar:
        return tar.getnames()


def read_member(path: Path, name: str) -> bytes:
    with tarfile.open(path) as tar:
        f = tar.extractfile(name)
        assert f is not None
        return f.read()


def extract(path: Path, dest: Path) -> Path:
    with tarfile.open(path) as tar:
        if hasattr(tarfile, "data_filter"):
            tar.extractall(dest, filter="data")
        else:  # pragma: no cover - Python without extraction filters
            tar.extractall(dest)
    return dest


def sha256sum_check(output: Path) -> subprocess.CompletedProcess[str]:
    """`sha256sum -c FILE.sha256` in FILE's directory."""
    if SHA256SUM is None:
        not_here("sha256sum is not installed")
    return subprocess.run([SHA256SUM, "-c", output.name + ".sha256"], cwd=output.parent, capture_output=True, text=True)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "pypi: resolves or downloads the template's real pins from PyPI (network; "
        "select with -m pypi, leave out with -m 'not pypi')",
    )


@dataclasses.dataclass
class Host:
    """A host with the stand-ins on PATH: tmp dirs, a run log of pixi / pixi-pack, sglangc bundle in-process."""

    tmp: Path
    cache: Path
    wheels: Path
    run_log: Path
    monkeypatch: pytest.MonkeyPatch

    def bundle(self, *args: str) -> Result:
        return run_cli("bundle", "--cache-dir", str(self.cache), *args, cwd=self.tmp)

    def runs(self) -> list[dict[str, t.Any]]:
        if not self.run_log.exists():
            return []
        return [json.loads(line) for line in self.run_log.read_text().splitlines()]

    def commands(self) -> list[str]:
        """The runs as short strings: `pixi lock --check`, `pixi lock`, `pixi-pack`."""
        out = []
        for run in self.runs():
            words = [run["tool"]] + [a for a in run["argv"] if a in ("lock", "install", "--check")]
            out.append(" ".join(words))
        return out

    def only_tools(self, *tools: str) -> None:
        """PATH holding just these stand-ins (and python3 for their #! line)."""
        bin_dir = self.tmp / "only-bin"
        shutil.rmtree(bin_dir, ignore_errors=True)
        bin_dir.mkdir()
        for tool in tools:
            (bin_dir / tool).symlink_to(FAKES / tool)
        python3 = bin_dir / "python3"
        python3.write_text(f'#!/bin/sh\nexec "{sys.executable}" "$@"\n')
        python3.chmod(0o755)
        self.monkeypatch.setenv("PATH", str(bin_dir))


@pytest.fixture
def host(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Host:
    wheels = tmp_path / "standin-wheels"
    make_wheel(wheels, "sglang", "0.5.10.post1")  # the version the packaged template's `default` pins
    h = Host(
        tmp=tmp_path,
        cache=tmp_path / "cache",
        wheels=wheels,
        run_log=tmp_path / "standin-runs.jsonl",
        monkeypatch=monkeypatch,
    )
    monkeypatch.setenv("PATH", f"{FAKES}{os.pathsep}{os.environ.get('PATH', '')}")
    monkeypatch.setenv("PIXI_STANDIN_WHEELS", str(wheels))
    monkeypatch.setenv("PIXI_STANDIN_LOG", str(h.run_log))
    for name in (
        "PIXI_STANDIN_FAIL",
        "PIXI_STANDIN_FAIL_TIMES",
        "PIXI_STANDIN_STATE_DIR",
        "PIXI_OFFLINE",
        "PIXI_FROZEN",
        "PIXI_LOCKED",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(sglangc.bundle, "RETRY_DELAY_SECONDS", 0.0)
    return h


@pytest.fixture(scope="session")
def pypi_wheels(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """supervisor and pyyaml wheels (with their dependencies) for CPython of this interpreter on Linux x86-64,
    downloaded once per session from the configured index (network)."""
    dest = tmp_path_factory.mktemp("pypi-wheels")
    argv = [
        sys.executable,
        "-m",
        "pip",
        "download",
        "-q",
        "--disable-pip-version-check",
        "-d",
        str(dest),
        "--only-binary=:all:",
        "--python-version",
        PY,
        "--implementation",
        "cp",
        *[f"--platform={p}" for p in sglangc.bundle.WHEEL_PLATFORMS],
        "supervisor",
        "pyyaml",
    ]
    done = subprocess.run(argv, capture_output=True, text=True)
    assert done.returncode == 0, f"pip download of supervisor and pyyaml failed (network?):\n{done.stderr}"
    return dest
