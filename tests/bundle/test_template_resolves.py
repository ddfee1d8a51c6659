"""The shipped Pixi template against the real PyPI: every environment resolves for the target container, and the
real wheelhouse route downloads the SGLang-side pins.

Marked `pypi` (select with `-m pypi`). They need network to PyPI: under CI=true an unreachable PyPI fails them,
elsewhere they skip. download.pytorch.org need not be reachable: tools/resolve-template.py then resolves the
same torch version from PyPI and says so.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tarfile
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from sglangc.bundle import DEFAULT_GLIBC, _pep440, _pip_requirements, required_glibc, wheel_platforms
from sglangc.pixitemplate import Template
from support import ROOT, not_here

from .conftest import sha256sum_check

pytestmark = pytest.mark.pypi

TOOL = ROOT / "tools" / "resolve-template.py"
PYPI = "https://pypi.org/simple/"
TEMPLATE = Template.load(None)
SGLANG_SIDE = ("sglang", "sglang-kernel", "flashinfer-python", "cuda-python")  # no torch, no CUDA wheels


def needs_pypi() -> None:
    try:
        with urllib.request.urlopen(PYPI + "pip/", timeout=15):
            return
    except urllib.error.HTTPError:
        return
    except (urllib.error.URLError, OSError) as e:
        not_here(f"PyPI cannot be reached ({e})")


def pypi_only_env() -> dict[str, str]:
    """This machine's pip configuration left out (mirrors, find-links, constraints): PyPI, as CI sees it."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIP_")}
    env.update(PIP_CONFIG_FILE=os.devnull, PIP_DISABLE_PIP_VERSION_CHECK="1")
    return env


@pytest.mark.parametrize("environment", TEMPLATE.environments())
def test_environment_resolves_on_pypi(environment: str) -> None:
    needs_pypi()
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, str(TOOL), "-e", environment, "--glibc", DEFAULT_GLIBC],
        capture_output=True,
        text=True,
        timeout=1200,
        stdin=subprocess.DEVNULL,
    )
    print(done.stdout, done.stderr, f"({time.monotonic() - started:.1f} s)")
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"{environment}: ok: " in done.stdout
    for url in {
        spec["index"]
        for spec in TEMPLATE.environment(environment).pypi.values()
        if isinstance(spec, dict) and spec.get("index")
    }:
        # Either the index took part, or the output says the same version came from PyPI instead.
        assert url not in done.stdout or "cannot be reached: resolving" in done.stdout


def test_real_wheelhouse_of_the_sglang_side_pins(tmp_path: Path) -> None:
    """`sglangc bundle --kind wheelhouse` for real, for the four SGLang-side pins of `default` without their
    dependencies (--only: torch and the CUDA wheels would be gigabytes); sglang-kernel alone is about 350 MB."""
    needs_pypi()
    env = TEMPLATE.environment("default")
    out = tmp_path / "sglang-side.tar"
    argv = [
        sys.executable,
        "-m",
        "sglangc",
        "bundle",
        "--kind",
        "wheelhouse",
        "--environment",
        "default",
        "--output",
        str(out),
        "--cache-dir",
        str(tmp_path / "cache"),
    ]
    for name in SGLANG_SIDE:
        argv += ["--only", name]
    started = time.monotonic()
    done = subprocess.run(
        argv, env=pypi_only_env(), capture_output=True, text=True, timeout=3600, stdin=subprocess.DEVNULL
    )
    seconds = time.monotonic() - started
    assert done.returncode == 0, done.stdout + done.stderr
    print(f"{out.stat().st_size / (1 << 20):.1f} MiB in {seconds:.1f} s")
    assert sha256sum_check(out).returncode == 0

    with tarfile.open(out) as tar:
        names = tar.getnames()
        requirements = tar.extractfile("requirements.txt").read().decode()  # type: ignore[union-attr]
        meta = json.loads(tar.extractfile("bundle.json").read())  # type: ignore[union-attr]
    pins = {
        name: _pep440(spec if isinstance(spec, str) else spec["version"]).removeprefix("==")
        for name, spec in env.pypi.items()
        if name in SGLANG_SIDE
    }
    assert requirements == "".join(f"{name}=={pins[name]}\n" for name in sorted(pins))
    assert _pip_requirements(TEMPLATE, env, SGLANG_SIDE)[0] == [f"{n}=={pins[n]}" for n in sorted(pins)]

    wheels = [Path(n).name for n in names if n.startswith("wheels/")]
    assert len(wheels) == len(SGLANG_SIDE) and all(w.endswith(".whl") for w in wheels), wheels
    allowed = set(wheel_platforms(DEFAULT_GLIBC)) | {"any"}
    for wheel in wheels:
        tags = wheel.removesuffix(".whl").split("-")[-1].split(".")
        assert allowed & set(tags), f"{wheel}: none of {tags} is allowed for glibc {DEFAULT_GLIBC}"
        needs = required_glibc(wheel)
        assert needs is None or needs <= (2, 35), wheel
    highest = max(filter(None, map(required_glibc, wheels)), default=None)
    assert meta == {
        "format": 1,
        "kind": "wheelhouse",
        "environment": "default",
        "python": "3.12",
        "glibc": f"{highest[0]}.{highest[1]}" if highest else None,
        "cuda": 12,
        "sglangc_version": meta["sglangc_version"],
    }
