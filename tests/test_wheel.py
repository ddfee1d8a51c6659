"""The installed package carries everything sglangc needs: schema, templates, flag catalogs, the Pixi template.

What is installed is what README's set-up line installs (`pip install .`, which builds the wheel, in a copy of the
checkout: the `fresh_setup` fixture, shared with tests/test_readme.py).
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from readme import FreshSetup
from support import EXAMPLES, ROOT

NEEDED = (
    "sglangc/schema/sglang-config.schema.json",
    "sglangc/emit_templates/launch.sh.j2",
    "sglangc/emit_templates/runtime/runner.sh",
    "sglangc/emit_templates/runtime/prelude.sh",
    "sglangc/emit_templates/pixi/pixi.toml",
    "sglangc/catalogs/sglang-0.5.23.json",
)


@pytest.fixture(scope="module")
def installed(fresh_setup: FreshSetup, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A directory outside the checkout with `venv`, the virtual environment README's set-up made (slow: a real
    build and install from the index; one run for this module and tests/test_readme.py)."""
    assert fresh_setup.returncode == 0, fresh_setup.stderr[-2000:]
    venv = fresh_setup.copy / ".venv"
    (site,) = venv.glob("lib/python*/site-packages")
    assert (site / "sglangc").is_dir(), "installed from a wheel, not in editable mode"
    for needed in NEEDED:
        assert (site / needed).is_file(), needed
    records = next(site.glob("sglangc-*.dist-info")) / "RECORD"
    listed = {line.split(",")[0] for line in records.read_text().splitlines()}
    assert set(NEEDED) <= listed, "the wheel's RECORD lists the package data"
    work = tmp_path_factory.mktemp("wheel")
    (work / "venv").symlink_to(venv)
    assert not (ROOT / "build").exists()  # built in the copy: nothing is written beside the checkout's sources
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
    done = subprocess.run(
        [sglangc, "compile", EXAMPLES[0].name, "-o", str(outside / "out")], cwd=outside, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    assert "warning" not in done.stderr, "the wheel's dependencies bring the whole lint gate (shellcheck, supervisor)"
    assert (outside / "out" / "pixi" / "pixi.toml").read_text() == (ROOT / "emit_templates/pixi/pixi.toml").read_text()
    done = subprocess.run([sglangc, "schema"], cwd=outside, capture_output=True, text=True)
    assert done.returncode == 0 and '"instances"' in done.stdout
