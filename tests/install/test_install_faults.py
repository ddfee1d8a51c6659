"""install-sglang-offline.sh under faults: kills, corrupt or wrong bundles, concurrency, a read-only target, too
little space. In every failure $PREFIX and the previous environment stay exactly as they were and nothing is left
behind (no staging directory, no partial environment, no temporary symlink)."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
from pathlib import Path

import pytest

from support import bundlekit, not_here, wait_for

from .installbox import ENV, Sandbox, copy_bundle


def staging_file(box: Sandbox, relpath: str):
    """The path of `relpath` inside a staging directory, once it exists and is not empty."""

    def find():
        for d in box.envs.glob(f".{ENV}.staging.*"):
            p = d / "x" / relpath
            if p.exists() and p.stat().st_size > 0:
                return p
        return None

    return find


def one_error_line(err: str) -> str:
    last = err.strip().splitlines()[-1]
    assert last.startswith("install-sglang-offline: error: "), err
    return last


def test_kill_9_during_extraction_then_rerun(box: Sandbox, padded_pixi_pack: Path) -> None:
    box.link_fake("pixi-unpack")
    box.fake_previous()
    before = box.snapshot()
    box.throttle_hasher(16)
    proc = box.start(padded_pixi_pack)
    try:
        partial = wait_for(staging_file(box, "pypi/padding.bin"), 60, "extraction to start")
        os.killpg(proc.pid, signal.SIGKILL)  # the whole group, like a container being killed
    finally:
        proc.wait(30)
    assert partial.parent.parent.parent.exists(), "killed mid-extraction: its staging directory is still there"
    assert box.snapshot()["current"] == before["current"]
    assert (box.envs / f"{ENV}.1" / "payload.txt").exists()

    box.unthrottle_hasher()
    rerun = box.run(padded_pixi_pack)
    assert rerun.rc == 0, rerun.text
    assert "removing leftover" in rerun.out
    assert box.current() == f"{ENV}.2"
    assert box.listing() == [ENV, f"{ENV}.1", f"{ENV}.2"]  # the previous environment is kept
    box.assert_no_junk()


def test_kill_9_of_the_installer_alone(box: Sandbox, padded_pixi_pack: Path) -> None:
    """Only the installer's shell dies; its tar/tee/hasher go on holding the lock, so the next run waits for them
    rather than cleaning up under their feet."""
    box.link_fake("pixi-unpack")
    box.throttle_hasher(16)
    proc = box.start(padded_pixi_pack)
    try:
        wait_for(staging_file(box, "pypi/padding.bin"), 60, "extraction to start")
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait(30)
    box.unthrottle_hasher()  # for the next run; the orphaned hasher goes on at its pace
    rerun = box.run(padded_pixi_pack, timeout=300)
    assert rerun.rc == 0, rerun.text
    assert "waiting for another install" in rerun.out, "the orphans of the killed run held the lock"
    assert box.current() == f"{ENV}.1"
    box.assert_no_junk()


def test_kill_9_during_install_leaves_a_partial_env_that_the_next_run_removes(box: Sandbox, wheelhouse: Path) -> None:
    box.fake_previous()
    before = box.snapshot()
    proc = box.start(wheelhouse)
    try:
        wait_for(lambda: (box.envs / f"{ENV}.2" / "pyvenv.cfg").exists(), 60, "the new venv")
        os.killpg(proc.pid, signal.SIGKILL)
    finally:
        proc.wait(30)
    assert (box.envs / f"{ENV}.2").exists()
    assert box.snapshot()["current"] == before["current"] and box.snapshot()["marker"] == before["marker"]

    rerun = box.run(wheelhouse)
    assert rerun.rc == 0, rerun.text
    assert f"removing partial environment {box.envs}/{ENV}.2" in rerun.out
    assert box.current() == f"{ENV}.2" and box.listing() == [ENV, f"{ENV}.1", f"{ENV}.2"]
    box.assert_no_junk()


def test_sigterm_during_install_cleans_up(box: Sandbox, wheelhouse: Path, tmp_path: Path) -> None:
    box.fake_previous()
    before = box.snapshot()
    log = tmp_path / "run.log"
    proc = box.start(wheelhouse, log=log)
    try:
        wait_for(lambda: (box.envs / f"{ENV}.2" / "pyvenv.cfg").exists(), 60, "the new venv")
        os.killpg(proc.pid, signal.SIGTERM)
        assert proc.wait(60) == 143
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert "error: interrupted by signal 15; nothing was changed" in log.read_text()
    assert box.snapshot() == before
    box.assert_no_junk()


@pytest.mark.parametrize("damage", ["garbage", "truncated", "cut-at-member-boundary", "not-a-bundle", "flipped-header"])
def test_corrupt_bundle(box: Sandbox, wheelhouse: Path, wheels: list[Path], tmp_path: Path, damage: str) -> None:
    bundle = tmp_path / "bundle.tar"
    if damage == "garbage":
        bundle.write_bytes(os.urandom(300_000))
    elif damage == "truncated":
        data = wheelhouse.read_bytes()
        bundle.write_bytes(data[: len(data) * 6 // 10])
    elif damage == "cut-at-member-boundary":  # tar alone would extract the first members and exit 0
        import tarfile

        with tarfile.open(wheelhouse) as tar:
            last = tar.getmembers()[-1]
        bundle.write_bytes(wheelhouse.read_bytes()[: last.offset])
    elif damage == "not-a-bundle":
        import tarfile

        with tarfile.open(bundle, "w") as tar:
            tar.add(str(wheels[0]), arcname="something/else.whl")
    else:  # a later member's header spoilt: the member list cannot be read past it
        spoilt = bytearray(wheelhouse.read_bytes())
        second = spoilt.find(b"wheels/", 1024)
        spoilt[second + 148 : second + 156] = b"9999999\0"  # its header checksum
        bundle.write_bytes(bytes(spoilt))
    box.fake_previous()
    before = box.snapshot()
    done = box.run(bundle)
    assert done.rc == 13, done.text
    assert "extraction failed" in one_error_line(done.err)
    assert box.snapshot() == before
    box.assert_no_junk()


def test_no_bundle(box: Sandbox, tmp_path: Path) -> None:
    box.fake_previous()
    before = box.snapshot()
    for bundle, words in [(tmp_path / "missing.tar", "does not exist"), (tmp_path, "not a regular file")]:
        done = box.run(bundle)
        assert done.rc == 10, done.text
        assert words in one_error_line(done.err)
    compiled_default = box.run(None)  # no variable: the compiled default, absent here
    assert compiled_default.rc == 10 and "/hard/volume/workspace/sglang-offline-bundle.tar" in compiled_default.err
    assert box.snapshot() == before
    box.assert_no_junk()


def test_two_runs_at_once(box: Sandbox, padded_pixi_pack: Path, tmp_path: Path) -> None:
    """The second run waits for the lock (never interleaves), then finds the bundle installed; with --no-wait it
    reports the busy lock instead. (The first run's extraction is slowed down: it holds the lock long enough.)"""
    box.link_fake("pixi-unpack")
    box.throttle_hasher(16)
    log = tmp_path / "both.log"
    first = box.start(padded_pixi_pack, log=log)
    second = None
    try:
        wait_for(lambda: list(box.envs.glob(f".{ENV}.staging.*")), 60, "the first run to hold the lock")
        second = box.start(padded_pixi_pack, log=log)
        wait_for(lambda: "waiting for another install" in log.read_text(), 60, "the second run to wait")
        busy = box.run(padded_pixi_pack, "--no-wait")
        assert busy.rc == 16, busy.text
        assert "lock" in one_error_line(busy.err)
        assert first.wait(180) == 0
        assert second.wait(60) == 0
    finally:
        for proc in (first, second):
            if proc and proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
    lines = log.read_text().splitlines()
    waiting = next(i for i, line in enumerate(lines) if "waiting for another install" in line)
    done = [i for i, line in enumerate(lines) if ": done: " in line]
    already = [i for i, line in enumerate(lines) if "already installed" in line]
    assert len(done) == 1 and len(already) == 1, lines
    assert waiting < done[0] < already[0], lines
    # the first run's steps are contiguous apart from the second run's one "waiting" line
    steps = [line.split(":")[1].strip() for line in lines if line.endswith("s]")]
    assert steps == ["preflight", "extract", "install", "verify", "activate"], lines
    assert box.listing() == [ENV, f"{ENV}.1"]
    box.assert_no_junk()


def root_without_dac_override() -> list[str]:
    """As root, chmod does not stop writes: run the installer without CAP_DAC_OVERRIDE (setpriv), so the mode
    bits apply to it as to any user."""
    if os.geteuid() != 0:
        return []
    caps = "-dac_override,-dac_read_search"
    wrap = ["setpriv", f"--inh-caps={caps}", f"--bounding-set={caps}"]
    if not shutil.which("setpriv") or subprocess.run([*wrap, "true"]).returncode != 0:
        not_here("root, and setpriv cannot drop CAP_DAC_OVERRIDE here: a read-only target cannot be simulated")
    return wrap


def test_read_only_target(box: Sandbox, wheelhouse: Path) -> None:
    box.fake_previous()
    (box.project / ".sglang-install.lock").touch()
    before = box.snapshot()
    box.wrap = root_without_dac_override()
    box.envs.chmod(0o555)
    try:
        done = box.run(wheelhouse)
    finally:
        box.envs.chmod(0o755)
    assert done.rc == 17, done.text
    assert "cannot write in" in one_error_line(done.err)
    assert box.snapshot() == before
    box.assert_no_junk()


def test_read_only_target_already_installed(box: Sandbox, pixi_pack: Path) -> None:
    """Installed, then mounted read-only: a re-run with the same bundle still answers "already installed"."""
    box.link_fake("pixi-unpack")
    assert box.run(pixi_pack).rc == 0
    lock = box.project / ".sglang-install.lock"
    box.wrap = root_without_dac_override()
    for path, mode in [(lock, 0o444), (box.envs, 0o555), (box.project, 0o555)]:
        path.chmod(mode)
    try:
        same = box.run(pixi_pack)
        forced = box.run(pixi_pack, "--force")
    finally:
        for path, mode in [(box.project, 0o755), (box.envs, 0o755), (lock, 0o644)]:
            path.chmod(mode)
    assert same.rc == 0 and "already installed" in same.out, same.text
    assert forced.rc == 17, forced.text
    assert box.current() == f"{ENV}.1" and box.listing() == [ENV, f"{ENV}.1"]


def test_read_only_project_dir_on_first_install(box: Sandbox, wheelhouse: Path) -> None:
    box.project.mkdir()
    box.wrap = root_without_dac_override()
    box.project.chmod(0o555)
    try:
        done = box.run(wheelhouse)
    finally:
        box.project.chmod(0o755)
    assert done.rc == 17, done.text
    assert os.listdir(box.project) == []


def test_target_under_a_file(box: Sandbox, wheelhouse: Path, tmp_path: Path) -> None:
    """A path component that is a file (ENOTDIR): not writable whoever runs it."""
    (tmp_path / "file").write_text("")
    done = box.run(wheelhouse, AUTO_INFER_SGLANG_PIXI_PROJECT_DIR=str(tmp_path / "file" / "project"))
    assert done.rc == 17, done.text
    assert "cannot create" in one_error_line(done.err)


def test_not_enough_space(box: Sandbox, wheelhouse: Path) -> None:
    # Simulation: no small file system can be mounted here, so a df first on PATH reports 100 KiB free.
    box.tool(
        "df",
        'printf "Filesystem 1024-blocks Used Available Capacity Mounted on\\n/dev/simulated 1000 900 100 90%% /\\n"\n',
    )
    box.fake_previous()
    before = box.snapshot()
    done = box.run(wheelhouse)
    assert done.rc == 12, done.text
    assert "not enough space" in one_error_line(done.err) and "100 KiB free" in done.err
    assert box.snapshot() == before
    box.assert_no_junk()


def test_install_failed(box: Sandbox, wheels: list[Path], tmp_path: Path) -> None:
    bundle = bundlekit.wheelhouse_tar(
        tmp_path / "bundle.tar", wheels, requirements=["sglang==0.5.23", "not-in-the-wheelhouse==1.0"]
    )
    box.fake_previous()
    before = box.snapshot()
    done = box.run(bundle)
    assert done.rc == 14, done.text
    assert "not-in-the-wheelhouse" in done.err  # pip's last lines come first ...
    assert "install failed (pip)" in one_error_line(done.err)  # ... then one error line
    assert box.snapshot() == before
    box.assert_no_junk()


def test_verify_failed(box: Sandbox, wheels: list[Path], tmp_path: Path) -> None:
    box.link_fake("pixi-unpack")  # route-independent: the quicker route
    no_torch = [w for w in wheels if not w.name.startswith("torch-")]
    bundle = bundlekit.pixi_pack_tar(tmp_path / "bundle.tar", no_torch)
    box.fake_previous()
    before = box.snapshot()
    done = box.run(bundle)
    assert done.rc == 15, done.text
    assert "No module named 'torch'" in done.err
    assert "verify failed" in one_error_line(done.err)
    assert box.snapshot() == before
    box.assert_no_junk()


def test_tool_missing(box: Sandbox, wheelhouse: Path) -> None:
    done = box.run(wheelhouse, AUTO_INFER_SGLANG_PYTHON="/nonexistent/python3")
    assert done.rc == 18, done.text
    assert "AUTO_INFER_SGLANG_PYTHON" in one_error_line(done.err)
    box.assert_no_junk()


def test_a_plain_directory_at_prefix_is_moved_aside(box: Sandbox, pixi_pack: Path) -> None:
    """$PREFIX left as a real directory (e.g. by a plain `pixi install`): kept as the previous environment."""
    box.link_fake("pixi-unpack")
    box.prefix.mkdir(parents=True)
    (box.prefix / "old.txt").write_text("old\n")
    done = box.run(pixi_pack)
    assert done.rc == 0, done.text
    assert "was a directory, not a symlink" in done.err
    assert box.current() == f"{ENV}.1"
    assert (box.envs / f"{ENV}.2" / "old.txt").exists()
    forced = box.run(pixi_pack, "--force")
    assert forced.rc == 0, forced.text
    assert box.listing() == [ENV, f"{ENV}.1", f"{ENV}.3"]
    box.assert_no_junk()


def test_same_bundle_copied_elsewhere_is_not_already_installed(box: Sandbox, pixi_pack: Path, tmp_path: Path) -> None:
    box.link_fake("pixi-unpack")
    bundle = copy_bundle(pixi_pack, tmp_path / "a.tar")
    assert box.run(bundle).rc == 0
    moved = copy_bundle(bundle, tmp_path / "b.tar")
    again = box.run(moved)
    assert again.rc == 0 and "already installed" not in again.out
    assert box.current() == f"{ENV}.2"
