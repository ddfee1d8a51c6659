"""install-sglang-offline.sh, wheelhouse route, for real: python -m venv + pip --no-index into a real venv."""

from __future__ import annotations

import datetime
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

from support import STAMP, bundlekit, procs

from .installbox import ENV, Sandbox, compile_config, copy_bundle

STEP = re.compile(r"^install-sglang-offline: (preflight|extract|install|verify|activate): .* \[\d+\.\d\ds\]$", re.M)


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def test_install_then_already_installed(box: Sandbox, wheelhouse: Path, tmp_path: Path) -> None:
    bundle = copy_bundle(wheelhouse, tmp_path / "bundle.tar")
    first = box.run(bundle, TZ="UTC-9")  # the marker's install time is UTC whatever the local zone
    assert first.rc == 0, first.text
    assert [m.group(1) for m in STEP.finditer(first.out)] == ["preflight", "extract", "install", "verify", "activate"]
    assert "route pip" in first.out and "sglang 0.5.23, torch 2.9.1+fake" in first.out

    # $PREFIX is a symlink to a versioned environment beside it; a real venv with the bundle's packages.
    assert box.current() == f"{ENV}.1"
    assert box.listing() == [ENV, f"{ENV}.1"]
    assert (box.envs / f"{ENV}.1" / "pyvenv.cfg").is_file()
    probe = subprocess.run(
        [
            str(box.prefix / "bin" / "python"),
            "-c",
            "import sglang, torch, supervisor, yaml, sys; print(sglang.__version__, sys.prefix)",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    assert probe.stdout.split()[0] == bundlekit.SGLANG_VERSION

    st = os.stat(bundle)
    marker = box.marker()
    assert marker["bundle_path"] == str(bundle)
    assert marker["bundle_size"] == st.st_size
    assert marker["bundle_mtime"] == f"{st.st_mtime_ns // 10**9}.{st.st_mtime_ns % 10**9:09d}"
    assert marker["sha256"] == sha256(bundle)
    assert marker["kind"] == "wheelhouse" and marker["route"] == "pip"
    assert marker["sha256_pinned_by"] is None
    assert re.fullmatch(r"\d+\.\d+\.\d+.*", marker["sglangc_version"])
    installed_at = datetime.datetime.strptime(marker["installed_at"], "%Y-%m-%dT%H:%M:%SZ")
    now = datetime.datetime.now(datetime.timezone.utc).replace(tzinfo=None)
    assert abs((now - installed_at).total_seconds()) < 600
    assert (box.project / ".sglang-install.lock").is_file()
    box.assert_no_junk()

    again = box.run(bundle)
    assert again.rc == 0, again.text
    assert "already installed" in again.out
    assert STEP.search(again.out) is None
    assert box.current() == f"{ENV}.1" and box.listing() == [ENV, f"{ENV}.1"]


def test_rerun_never_reads_the_bundle(box: Sandbox, pixi_pack: Path, tmp_path: Path) -> None:
    """The re-run decides from path, size and nanosecond mtime alone: it runs neither a hasher nor tar, and a bundle
    whose bytes were all replaced (same size, same mtime) is still "already installed". (How fast that is, on a
    2 GB bundle, is bench/bench_install.py's figure.)"""
    box.link_fake("pixi-unpack")  # route-independent: the quicker route
    bundle = copy_bundle(pixi_pack, tmp_path / "bundle.tar")
    box.log_calls("sha256sum", "openssl", "tar")
    first = box.run(bundle)
    assert first.rc == 0, first.text
    hashers = [c for c in box.called() if c.startswith(("sha256sum", "openssl dgst"))]
    assert hashers, f"the first install hashed nothing? calls: {box.called()}"
    box.calls.unlink()

    st = os.stat(bundle)
    bundle.write_bytes(bytes(st.st_size))  # zeros: neither tar nor a checksum would accept them
    os.utime(bundle, ns=(st.st_atime_ns, st.st_mtime_ns))
    again = box.run(bundle, timeout=30)
    assert again.rc == 0, again.text
    assert "already installed" in again.out
    assert box.called() == [], f"the re-run ran {box.called()}"

    # Same size and path, different mtime (a rebuilt bundle): installs again.
    shutil.copyfile(pixi_pack, bundle)
    os.utime(bundle, ns=(st.st_atime_ns, st.st_mtime_ns + 1))
    third = box.run(bundle)
    assert third.rc == 0 and "already installed" not in third.out, third.text
    assert box.current() == f"{ENV}.2"


def test_force_reinstalls_and_keeps_exactly_one_previous(box: Sandbox, pixi_pack: Path) -> None:
    box.link_fake("pixi-unpack")  # route-independent: the quicker route
    assert box.run(pixi_pack).rc == 0
    for n in (2, 3):
        forced = box.run(pixi_pack, "--force")
        assert forced.rc == 0, forced.text
        assert "already installed" not in forced.out
        assert box.current() == f"{ENV}.{n}"
        assert box.listing() == [ENV, f"{ENV}.{n - 1}", f"{ENV}.{n}"]
    assert f"(previous {ENV}.2 kept), 1 older removed" in forced.out
    # The kept previous environment still works (servers may run from it).
    old = box.envs / f"{ENV}.2" / "bin" / "python"
    assert subprocess.run([str(old), "-c", "import sglang"]).returncode == 0
    box.assert_no_junk()


def test_verify(box: Sandbox, tmp_path: Path, wheels: list[Path]) -> None:
    bundle = bundlekit.wheelhouse_tar(tmp_path / "bundle.tar", wheels, dot_slash=True)  # members named ./…
    nothing = box.run(bundle, "--verify")
    assert nothing.rc == 15 and "nothing to verify" in nothing.err

    assert box.run(bundle).rc == 0
    ok = box.run(bundle, "--verify")
    assert ok.rc == 0, ok.text
    assert f"sha256 {sha256(bundle)} matches" in ok.out and "verified" in ok.out

    wrong_pin = box.run(bundle, "--verify", AUTO_INFER_SGLANG_BUNDLE_SHA256="ab" * 32)
    assert wrong_pin.rc == 11 and "checksum mismatch" in wrong_pin.err

    # Another bundle at the same path: --verify re-hashes (it does not trust size/mtime) and says so.
    other = bundlekit.wheelhouse_tar(
        tmp_path / "other.tar", wheels, requirements=["sglang==0.5.23", "torch", "pyyaml", "supervisor"]
    )
    shutil.copyfile(other, bundle)
    mismatch = box.run(bundle, "--verify")
    assert mismatch.rc == 15, mismatch.text
    assert re.search(r"install-sglang-offline: error: verify failed: .* was installed from sha256", mismatch.err)
    assert len(mismatch.err.strip().splitlines()) == 1

    both = box.run(bundle, "--verify", "--force")
    assert both.rc == 2


def test_checksum_pins(box: Sandbox, pixi_pack: Path, tmp_path: Path) -> None:
    box.link_fake("pixi-unpack")  # route-independent: the quicker route
    bundle = copy_bundle(pixi_pack, tmp_path / "bundle.tar")
    good = sha256(bundle)
    box.fake_previous()
    before = box.snapshot()

    for extra, sidecar in [
        ({"AUTO_INFER_SGLANG_BUNDLE_SHA256": "0" * 64}, None),
        ({}, "1" * 64 + "  bundle.tar\n"),
        ({"AUTO_INFER_SGLANG_BUNDLE_SHA256": "not-a-hash"}, None),
    ]:
        if sidecar:
            (tmp_path / "bundle.tar.sha256").write_text(sidecar)
        bad = box.run(bundle, **extra)  # type: ignore[arg-type]  # mypy: the dict might hold `timeout`; it does not
        assert bad.rc == 11, bad.text
        assert bad.err.startswith("install-sglang-offline: error: ") and len(bad.err.strip().splitlines()) == 1
        assert box.snapshot() == before
        box.assert_no_junk()

    # The .sha256 file beside the bundle (sha256sum format, upper case accepted) ...
    (tmp_path / "bundle.tar.sha256").write_text(good.upper() + "  bundle.tar\n")
    by_file = box.run(bundle)
    assert by_file.rc == 0, by_file.text
    assert f"matches {bundle}.sha256" in by_file.out
    assert box.marker()["sha256_pinned_by"] == f"{bundle}.sha256"
    # ... and the variable, which wins over the file.
    (tmp_path / "bundle.tar.sha256").write_text("2" * 64 + "\n")
    by_env = box.run(bundle, "--force", AUTO_INFER_SGLANG_BUNDLE_SHA256=good)
    assert by_env.rc == 0, by_env.text
    assert "matches AUTO_INFER_SGLANG_BUNDLE_SHA256" in by_env.out


def test_verify_step_and_its_switches(box: Sandbox, pixi_pack: Path) -> None:
    box.link_fake("pixi-unpack")  # route-independent: the quicker route
    bundle = pixi_pack
    cuda_missing = box.run(bundle, AUTO_INFER_SGLANG_VERIFY_CUDA="1")
    assert cuda_missing.rc == 15, cuda_missing.text
    assert "CUDA is not usable" in cuda_missing.err
    assert box.current() is None and box.listing() == []

    with_cuda = box.run(bundle, AUTO_INFER_SGLANG_VERIFY_CUDA="1", FAKE_TORCH_CUDA="1")
    assert with_cuda.rc == 0, with_cuda.text
    assert "CUDA 12.6 usable, 1 GPU(s)" in with_cuda.out

    skipped = box.run(bundle, "--force", AUTO_INFER_SGLANG_VERIFY="0")
    assert skipped.rc == 0, skipped.text
    assert "warning: verify skipped" in skipped.err


def test_compiled_defaults_with_awkward_paths(tmp_path: Path, wheelhouse: Path) -> None:
    """The [master]/[bundle] values compiled into the script are used literally when no variable is set."""
    odd = tmp_path / "odd dir 'q' $HOME \\ x"
    odd.mkdir()
    bundle = copy_bundle(wheelhouse, odd / 'bundle "v1".tar')
    project = odd / "pixi project"
    config = tmp_path / "config.toml"
    toml_str = lambda s: json.dumps(str(s))  # noqa: E731 - a TOML basic string is a JSON string here
    config.write_text(
        "version = 1\n[master]\ngpu_count = 1\n"
        f"pixi_project_dir = {toml_str(project)}\n"
        f"[bundle]\npath = {toml_str(bundle)}\nsha256 = {toml_str(sha256(bundle))}\n"
        '[instances.a]\nmodel_path = "/llm-models/m"\n',
        encoding="utf-8",
    )
    out = tmp_path / "out"
    installer = compile_config(config, out)
    env = {
        "PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin",
        "AUTO_INFER_SGLANG_VERIFY_CUDA": "0",
        "HOME": str(tmp_path),
    }
    done = subprocess.run(["bash", str(installer)], env=env, capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "matches AUTO_INFER_SGLANG_BUNDLE_SHA256" in done.stdout
    prefix = project / ".pixi" / "envs" / "default"
    assert os.readlink(prefix) == "default.1"
    marker = json.loads((prefix / ".installed-from.json").read_text())
    assert marker["bundle_path"] == str(bundle)
    again = subprocess.run(["bash", str(installer)], env=env, capture_output=True, text=True, timeout=60)
    assert again.returncode == 0 and "already installed" in again.stdout, again.stdout + again.stderr


def test_marker_escapes_any_path(box: Sandbox, pixi_pack: Path, tmp_path: Path) -> None:
    box.link_fake("pixi-unpack")  # route-independent: the quicker route
    weird = tmp_path / 'we"ird\\dir\ttab \u00e9\u2603'
    weird.mkdir()
    bundle = copy_bundle(pixi_pack, weird / "b\x01.tar")
    done = box.run(bundle)
    assert done.rc == 0, done.text
    assert box.marker()["bundle_path"] == str(bundle)
    again = box.run(bundle)
    assert again.rc == 0 and "already installed" in again.out, again.text


def test_usage(box: Sandbox, wheelhouse: Path) -> None:
    assert box.run(wheelhouse, "-h").rc == 0
    bad = box.run(wheelhouse, "--bogus")
    assert bad.rc == 2
    assert bad.err.strip().splitlines() == [bad.err.strip()]
    assert bad.err.startswith("install-sglang-offline: error: unknown argument '--bogus'")
    raw = procs.run(box.argv("--bogus"), env=box.environ(wheelhouse), timeout=60, what="installer --bogus")
    assert STAMP.match(raw.stderr), "each line of the installer begins with the UTC time"
    assert box.run(wheelhouse, AUTO_INFER_SGLANG_PIXI_ENVIRONMENT="../x").rc == 2
