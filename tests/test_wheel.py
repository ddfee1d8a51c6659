"""The wheel carries everything sglangc needs: schema, templates, flag catalogs, the Pixi template."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from support import EXAMPLES, ROOT


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    work = tmp_path_factory.mktemp("wheel")
    # Built from a copy: a build writes build/ and *.egg-info beside the sources, never into the checkout.
    source = work / "source"
    shutil.copytree(ROOT, source, ignore=shutil.ignore_patterns(".git", ".venv", "build", "*.egg-info", "__pycache__",
                                                              ".pytest_cache", ".hypothesis", "tests"))
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w",
                    str(work / "dist"), str(source)], check=True, cwd=work)
    wheel = next((work / "dist").glob("sglangc-*.whl"))
    names = set(zipfile.ZipFile(wheel).namelist())
    for needed in ("sglangc/schema/sglang-config.schema.json", "sglangc/emit_templates/launch.sh.j2",
                   "sglangc/emit_templates/runtime/runner.sh", "sglangc/emit_templates/runtime/prelude.sh",
                   "sglangc/emit_templates/pixi/pixi.toml", "sglangc/catalogs/sglang-0.5.23.json"):
        assert needed in names, needed
    # A venv without pip of its own (this pip installs into it): the wheel and its dependencies, nothing else.
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(work / "venv")], check=True)
    subprocess.run([sys.executable, "-m", "pip", "--python", str(work / "venv" / "bin" / "python"), "install", "-q",
                    str(wheel)], check=True)
    assert not (ROOT / "build").exists()
    return work


def test_installed_wheel_checks_and_compiles_outside_the_checkout(installed: Path) -> None:
    outside = installed / "elsewhere"
    outside.mkdir()
    for example in EXAMPLES:
        shutil.copy(example, outside / example.name)
    sglangc = str(installed / "venv" / "bin" / "sglangc")
    for example in EXAMPLES:
        done = subprocess.run([sglangc, "check", example.name], cwd=outside, capture_output=True, text=True)
        assert done.returncode == 0, done.stderr
        assert ": ok: " in done.stdout
    done = subprocess.run([sglangc, "compile", EXAMPLES[0].name, "-o", str(outside / "out")], cwd=outside,
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "warning" not in done.stderr, "the wheel's dependencies bring the whole lint gate (shellcheck, supervisor)"
    assert (outside / "out" / "pixi" / "pixi.toml").read_text() == (ROOT / "emit_templates/pixi/pixi.toml").read_text()
    done = subprocess.run([sglangc, "schema"], cwd=outside, capture_output=True, text=True)
    assert done.returncode == 0 and '"instances"' in done.stdout
