"""The pixi-unpack stand-in (tests/fakes/bin/pixi-unpack) follows pixi-unpack's documented command line."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from support import bundlekit

from .installbox import FAKES_BIN

STANDIN = FAKES_BIN / "pixi-unpack"


def unpack(*args: str, cwd: Path, stdin: bytes | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin", "TMPDIR": str(cwd)}
    return subprocess.run([str(STANDIN), *args], cwd=cwd, env=env, input=stdin, capture_output=True, timeout=120)


def test_first_comment_line_says_what_it_is() -> None:
    assert STANDIN.read_text().splitlines()[1] == "# Stand-in for pixi-unpack, for tests only."
    assert os.access(STANDIN, os.X_OK)


@pytest.mark.parametrize("source", ["tar", "stdin", "directory", "default-name"])
def test_unpacks_a_pack(tmp_path: Path, wheels: list[Path], source: str) -> None:
    pack = bundlekit.pixi_pack_tar(tmp_path / "environment.tar", wheels)
    if source == "tar":
        done = unpack("-o", "out", "-e", "myenv", str(pack), cwd=tmp_path)
    elif source == "stdin":
        done = unpack("--output-directory", "out", "--env-name", "myenv", "-", cwd=tmp_path, stdin=pack.read_bytes())
    elif source == "directory":
        (tmp_path / "extracted").mkdir()
        subprocess.run(["tar", "-xf", str(pack), "-C", str(tmp_path / "extracted")], check=True)
        done = unpack("-o", "out", "-e", "myenv", str(tmp_path / "extracted"), cwd=tmp_path)
    else:  # PACK_FILE defaults to ./environment.tar, -o to the working directory, -e to "env"
        (tmp_path / "out").mkdir()
        os.replace(pack, tmp_path / "out" / "environment.tar")
        done = unpack(cwd=tmp_path / "out")
    assert done.returncode == 0, done.stderr.decode()
    prefix = tmp_path / "out" / ("env" if source == "default-name" else "myenv")
    probe = subprocess.run([str(prefix / "bin" / "python"), "-c", "import sglang, torch, yaml, supervisor"])
    assert probe.returncode == 0
    assert sorted(p.name for p in (prefix / "conda-meta").glob("*.json"))[:1] == ["pip-25.2-pyh8b19718_0.json"]
    activate = (tmp_path / "out" / "activate.sh").read_text()
    assert f"export CONDA_PREFIX={prefix}" in activate
    assert not [p for p in tmp_path.iterdir() if p.name.startswith("pixi-unpack-")], "temporary directory left"


@pytest.mark.parametrize(
    "problem, message",
    [
        ({"version": "2"}, "unsupported pixi-pack version"),
        ({"platform": "linux-aarch64"}, "the pack is for platform 'linux-aarch64'"),
        ({"unlisted_package": True}, "is not listed in linux-64/repodata.json"),
    ],
)
def test_refuses_a_bad_pack(tmp_path: Path, wheels: list[Path], problem: dict, message: str) -> None:
    pack = bundlekit.pixi_pack_tar(tmp_path / "environment.tar", wheels, **problem)
    done = unpack("-o", "out", "-e", "env", str(pack), cwd=tmp_path)
    assert done.returncode == 1
    assert message in done.stderr.decode()
    assert not (tmp_path / "out" / "env").exists()


def test_refuses_a_non_empty_target(tmp_path: Path, wheels: list[Path]) -> None:
    pack = bundlekit.pixi_pack_tar(tmp_path / "environment.tar", wheels)
    (tmp_path / "out" / "env").mkdir(parents=True)
    (tmp_path / "out" / "env" / "x").write_text("")
    done = unpack("-o", "out", str(pack), cwd=tmp_path)
    assert done.returncode == 1 and b"exists and is not empty" in done.stderr
