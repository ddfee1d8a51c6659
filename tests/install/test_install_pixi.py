"""install-sglang-offline.sh, pixi-pack bundles: through the pixi-unpack stand-in, and the re-lock route through
the pixi stand-in (tests/fakes/bin; the real tools are not available here)."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from support import bundlekit

from .installbox import ENV, ROOT, Sandbox


def calls(log: Path) -> list[list[str]]:
    return [json.loads(line)["argv"] for line in log.read_text().splitlines()] if log.exists() else []


def test_pixi_pack_through_pixi_unpack(box: Sandbox, wheels: list[Path], tmp_path: Path) -> None:
    bundle = bundlekit.pixi_pack_tar(tmp_path / "environment.tar", wheels)
    box.link_fake("pixi-unpack")
    box.link_fake("pixi")  # present too: pixi-unpack is preferred
    log = tmp_path / "unpack.log"
    done = box.run(bundle, PIXI_UNPACK_STANDIN_LOG=str(log), PIXI_STANDIN_LOG=str(tmp_path / "pixi.log"))
    assert done.rc == 0, done.text
    assert "pixi-pack via pixi-unpack" in done.out
    assert not (tmp_path / "pixi.log").exists()

    # One call: -o <envs dir> -e <versioned name> <already extracted directory>; the env lands at its final path.
    [argv] = calls(log)
    assert argv[:4] == ["-o", str(box.envs), "-e", f"{ENV}.1"]
    assert Path(argv[4]).name == "x" and Path(argv[4]).parent.name.startswith(f".{ENV}.staging.")
    assert box.current() == f"{ENV}.1"
    assert (box.prefix / "conda-meta" / "history").exists()
    assert (box.prefix / "activate.sh").is_file(), "pixi-unpack's activate.sh belongs to the environment"
    marker = box.marker()
    assert marker["kind"] == "pixi-pack" and marker["route"] == "pixi-unpack"
    box.assert_no_junk()

    again = box.run(bundle)
    assert again.rc == 0 and "already installed" in again.out, again.text


def test_pixi_unpack_failure_leaves_nothing(box: Sandbox, wheels: list[Path], tmp_path: Path) -> None:
    bundle = bundlekit.pixi_pack_tar(tmp_path / "environment.tar", wheels)
    box.link_fake("pixi-unpack")
    box.fake_previous()
    before = box.snapshot()
    failed = box.run(bundle, PIXI_UNPACK_STANDIN_FAIL="1")
    assert failed.rc == 14, failed.text
    assert failed.err.strip().splitlines()[-1].startswith("install-sglang-offline: error: install failed (pixi-unpack)")
    assert box.snapshot() == before
    box.assert_no_junk()

    # A pack the real pixi-unpack would refuse (another platform): install failed too, nothing touched.
    other = bundlekit.pixi_pack_tar(tmp_path / "osx.tar", wheels, platform="osx-arm64")
    refused = box.run(other)
    assert refused.rc == 14 and "platform" in refused.err, refused.text
    assert box.snapshot() == before
    box.assert_no_junk()


@pytest.fixture
def relock_pack(compiled: Path, wheels: list[Path], tmp_path: Path) -> Path:
    """A pixi-pack archive holding exactly what the shipped template pins for the default environment."""
    pinned = bundlekit.template_wheels(compiled / "pixi" / "pixi.toml", ENV, tmp_path / "pinned")
    third = [w for w in wheels if w.name.split("-")[0].lower() in ("supervisor", "pyyaml")]
    return bundlekit.pixi_pack_tar(tmp_path / "environment.tar", pinned + third)


def test_relock_route_without_pixi_unpack(box: Sandbox, relock_pack: Path, tmp_path: Path, compiled: Path) -> None:
    box.link_fake("pixi")
    log = tmp_path / "pixi.log"
    done = box.run(relock_pack, PIXI_STANDIN_LOG=str(log))
    assert done.rc == 0, done.text
    assert "route pixi-relock" in done.out
    project = box.envs / f"{ENV}.1"

    # pixi lock, then pixi install --frozen, both offline, on a project of its own at the final location.
    argvs = calls(log)
    manifest = str(project / "pixi.toml")
    assert argvs == [
        ["lock", "--offline", "--manifest-path", manifest],
        ["install", "--frozen", "--offline", "--manifest-path", manifest, "-e", ENV],
    ]
    assert box.current() == f"{ENV}.1/.pixi/envs/{ENV}"
    assert (project / "pixi.lock").is_file()
    assert not (project / "channel").exists() and not (project / "pypi").exists(), "installed: sources dropped"

    # The template with channels patched to ./channel and PyPI to ./pypi, only the packed environment.
    patched = (project / "pixi.toml").read_text()
    assert 'channels = ["./channel"]' in patched and 'find-links = [{ path = "./pypi" }]' in patched
    assert "conda-pypi-map = false" in patched and "download.pytorch.org" not in patched
    assert "latest = {" not in patched
    import jsonschema

    from sglangc.load import tomllib

    schema = ROOT / "tests" / "data" / "pixi" / "manifest.schema.json"
    jsonschema.validate(tomllib.loads(patched), json.loads(schema.read_text()))

    lock = json.loads((project / "pixi.lock").read_text())
    locked = [p.get("conda") or p["pypi"] for p in lock["packages"]]
    assert all(ref.startswith(str(project / "channel")) for ref in locked if not ref.startswith("./pypi/"))

    verify = [line for line in done.out.splitlines() if ": verify: " in line]
    assert verify and "sglang 0.5.10.post1" in verify[0]
    marker = box.marker()
    assert marker["route"] == "pixi-relock" and marker["environment_dir"] == f"{ENV}.1"
    py = subprocess.run([str(box.prefix / "bin" / "python"), "-c", "import sglang, yaml, supervisor"])
    assert py.returncode == 0
    box.assert_no_junk()

    again = box.run(relock_pack)
    assert again.rc == 0 and "already installed" in again.out, again.text
    # A second install keeps the first as the previous environment, and the switch stays relative.
    forced = box.run(relock_pack, "--force")
    assert forced.rc == 0, forced.text
    assert box.current() == f"{ENV}.2/.pixi/envs/{ENV}"
    assert box.listing() == [ENV, f"{ENV}.1", f"{ENV}.2"]


@pytest.mark.parametrize("step", ["lock", "install"])
def test_relock_failure_leaves_nothing(box: Sandbox, relock_pack: Path, step: str) -> None:
    box.link_fake("pixi")
    box.fake_previous()
    before = box.snapshot()
    failed = box.run(relock_pack, PIXI_STANDIN_FAIL=step)
    assert failed.rc == 14, failed.text
    assert "stand-in failure injected" in failed.err  # the tool's last lines are shown ...
    assert failed.err.strip().splitlines()[-1].startswith("install-sglang-offline: error: install failed (pixi-relock)")
    assert box.snapshot() == before
    box.assert_no_junk()


def test_pixi_pack_needs_a_tool(box: Sandbox, relock_pack: Path, tmp_path: Path) -> None:
    """Neither pixi-unpack nor pixi: refused in preflight, before the bundle is read."""
    done = box.run(relock_pack)
    assert done.rc == 18, done.text
    assert "pixi-unpack" in done.err and len(done.err.strip().splitlines()) == 1
    box.link_fake("pixi")
    no_template = box.run(relock_pack, AUTO_INFER_SGLANG_PIXI_TEMPLATE_DIR=str(tmp_path / "missing"))
    assert no_template.rc == 18 and "pixi.toml" in no_template.err
    assert not any(n.startswith(".") for n in os.listdir(box.envs))
