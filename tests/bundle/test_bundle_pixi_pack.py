"""`sglangc bundle` (pixi-pack kind) against the pixi / pixi-pack stand-ins in tests/fakes/bin: no network."""

from __future__ import annotations

import hashlib
import json
from importlib import resources
from pathlib import Path

from sglangc.load import tomllib

from .conftest import FAKES, Host, members, read_member, sha256sum_check

PACKAGED = resources.files("sglangc.emit_templates") / "pixi"


def user_template(host: Host, name: str = "template") -> Path:
    """A copy of the packaged template in a user directory."""
    directory = host.tmp / name
    directory.mkdir()
    (directory / "pixi.toml").write_text((PACKAGED / "pixi.toml").read_text("utf-8"), encoding="utf-8")
    return directory


def manifest_hash_in_lock(lock: Path) -> str:
    return json.loads(lock.read_text())["standin"]["manifest-sha256"]


def test_packaged_template_bundle(host: Host) -> None:
    result = host.bundle()
    assert result.exit_code == 0, result.stderr
    out = host.tmp / "sglang-offline-bundle-default.tar"
    digest = hashlib.sha256(out.read_bytes()).hexdigest()
    assert (host.tmp / (out.name + ".sha256")).read_text() == f"{digest}  {out.name}\n"
    assert sha256sum_check(out).returncode == 0
    summary = result.stdout.strip().splitlines()[-1]
    assert str(out) in summary and digest in summary and "pixi-pack" in summary and "default" in summary
    assert "no pixi.lock: locking" in result.stderr

    names = members(out)
    assert names[:2] == ["pixi-pack.json", "environment.yml"]
    assert json.loads(read_member(out, "pixi-pack.json")) == {
        "version": "1",
        "pixi-pack-version": "0.7.10",
        "platform": "linux-64",
    }
    assert "channel/linux-64/repodata.json" in names and "pypi/sglang-0.5.10.post1-py3-none-any.whl" in names
    assert any(n.startswith("channel/noarch/supervisor-") for n in names)
    assert any(n.startswith("channel/linux-64/pyyaml-") for n in names)

    assert host.commands() == ["pixi lock", "pixi-pack"]  # no lock to check: locked at once
    pack = host.runs()[-1]["argv"]
    partial = pack[pack.index("--output-file") + 1]
    assert pack[:8] == [
        "--environment",
        "default",
        "--platform",
        "linux-64",
        "--use-cache",
        str(host.cache / "pixi-pack"),
        "--output-file",
        partial,
    ]
    assert Path(partial).parent == host.tmp and not Path(partial).exists()
    assert pack[-1].endswith("/pixi.toml") and not pack[-1].startswith(str(Path(str(PACKAGED))))
    # the packaged template is never written to; the work dir is gone; only the bundle and its sha256 are new
    assert {p.name for p in Path(str(PACKAGED)).iterdir()} == {"pixi.toml"}
    assert list((host.cache / "tmp").iterdir()) == []
    assert sorted(p.name for p in host.tmp.glob("sglang-offline-bundle-*")) == [out.name, out.name + ".sha256"]


def test_packaged_template_lock_is_cached_for_the_next_bundle(host: Host) -> None:
    assert host.bundle().exit_code == 0
    result = host.bundle("-o", "again.tar")
    assert result.exit_code == 0, result.stderr
    assert "using the pixi.lock cached at" in result.stderr and "pixi.lock is up to date" in result.stderr
    assert host.commands() == ["pixi lock", "pixi-pack", "pixi lock --check", "pixi-pack"]


def test_user_template_lock_missing_fresh_stale(host: Host) -> None:
    template = user_template(host)
    out = host.tmp / "out" / "bundle.tar"  # parent made on demand

    first = host.bundle("--template", str(template), "-o", str(out))
    assert first.exit_code == 0, first.stderr
    assert f"wrote the new lock to {template / 'pixi.lock'}" in first.stderr
    manifest = (template / "pixi.toml").read_bytes()
    assert manifest_hash_in_lock(template / "pixi.lock") == hashlib.sha256(manifest).hexdigest()
    assert host.commands() == ["pixi lock", "pixi-pack"]
    assert sorted(p.name for p in template.iterdir()) == ["pixi.lock", "pixi.toml"]  # no .pixi/

    lock_before = (template / "pixi.lock").stat().st_mtime_ns
    second = host.bundle("--template", str(template), "-o", str(out), "-v")
    assert second.exit_code == 0, second.stderr
    assert "pixi.lock is up to date" in second.stderr and "wrote the new lock" not in second.stderr
    assert host.commands()[2:] == ["pixi lock --check", "pixi-pack"]  # fresh: not locked again
    assert (template / "pixi.lock").stat().st_mtime_ns == lock_before
    assert "cache hit: linux-64/python-" in second.stderr and "cache hit: pypi/sglang-0.5.10.post1" in second.stderr
    assert "downloading" not in second.stderr
    assert (host.cache / "pixi-pack" / "CACHEDIR.TAG").is_file()
    assert sha256sum_check(out).returncode == 0

    (template / "pixi.toml").write_text((template / "pixi.toml").read_text() + "\n# changed\n")
    third = host.bundle("--template", str(template), "-o", str(out))
    assert third.exit_code == 0, third.stderr
    assert "pixi.lock is stale" in third.stderr
    assert host.commands()[4:] == ["pixi lock --check", "pixi lock", "pixi-pack"]
    new_manifest = (template / "pixi.toml").read_bytes()
    assert manifest_hash_in_lock(template / "pixi.lock") == hashlib.sha256(new_manifest).hexdigest()
    assert sorted(p.name for p in template.iterdir()) == ["pixi.lock", "pixi.toml"]
    assert sha256sum_check(out).returncode == 0


def test_template_dot_pixi_is_not_copied_nor_touched(host: Host) -> None:
    template = user_template(host)
    (template / ".pixi" / "envs" / "default").mkdir(parents=True)
    result = host.bundle("--template", str(template), "-o", "b.tar")
    assert result.exit_code == 0, result.stderr
    assert sorted(p.relative_to(template / ".pixi").as_posix() for p in (template / ".pixi").rglob("*")) == [
        "envs",
        "envs/default",
    ]


def test_other_environment_and_unknown_environment(host: Host) -> None:
    result = host.bundle("-e", "latest")
    assert result.exit_code == 0, result.stderr
    out = host.tmp / "sglang-offline-bundle-latest.tar"
    names = members(out)
    assert "pypi/sglang-0.5.23-py3-none-any.whl" in names  # the stand-in's placeholder for the pin
    assert "environment latest" in result.stdout

    bad = host.bundle("-e", "nope")
    assert bad.exit_code == 2
    assert bad.stderr.strip() == "sglangc: --environment 'nope': the packaged template has default, latest"


def test_rattler_config_goes_to_pixi_pack(host: Host) -> None:
    config = host.tmp / "rattler.toml"
    config.write_text('[mirrors]\n"https://conda.anaconda.org/conda-forge" = ["https://mirror.example/cf"]\n')
    result = host.bundle("--rattler-config", str(config), "-v")
    assert result.exit_code == 0, result.stderr
    pack = host.runs()[-1]["argv"]
    assert pack[pack.index("--config") + 1] == str(config)
    assert "mirror: https://conda.anaconda.org/conda-forge -> https://mirror.example/cf" in result.stderr


def test_pixi_missing(host: Host) -> None:
    host.only_tools("pixi-pack")
    result = host.bundle()
    assert result.exit_code == 1
    assert result.stderr.strip() == (
        "sglangc: pixi not found on PATH: install it from https://pixi.sh "
        "(curl -fsSL https://pixi.sh/install.sh | bash)"
    )
    assert not list(host.tmp.glob("*.tar*")) and list((host.cache / "tmp").iterdir()) == []


def test_pixi_pack_missing(host: Host) -> None:
    host.only_tools("pixi")
    result = host.bundle()
    assert result.exit_code == 1
    assert result.stderr.strip() == (
        "sglangc: pixi-pack not found on PATH: install it with `pixi global install pixi-pack pixi-unpack`, "
        "or take the static binaries from https://github.com/Quantco/pixi-pack/releases"
    )
    assert host.runs() == []  # nothing ran


def test_pixi_pack_failure_shows_its_last_lines(host: Host) -> None:
    host.monkeypatch.setenv("PIXI_STANDIN_FAIL", "pack")
    result = host.bundle("--retries", "0", "-o", "b.tar")
    assert result.exit_code == 1
    lines = result.stderr.splitlines()
    start = lines.index("sglangc: pixi-pack failed (exit 1); its last 15 lines:")
    tail = lines[start + 1 :]
    assert len(tail) == 15 and all(line.startswith("  | ") for line in tail)
    assert tail[-1] == "  | Error: stand-in failure injected (PIXI_STANDIN_FAIL=pack)"
    assert tail[0] == "  | stand-in pack: output line 6 of 20"
    assert not list(host.tmp.glob("*b.tar*"))  # no bundle, no partial file, no sha256
    assert list((host.cache / "tmp").iterdir()) == []


def test_pixi_lock_failure(host: Host) -> None:
    host.monkeypatch.setenv("PIXI_STANDIN_FAIL", "lock")
    result = host.bundle("--retries", "1")
    assert result.exit_code == 1
    assert "sglangc: pixi lock failed (exit 1) after 2 attempts; its last 15 lines:" in result.stderr
    assert host.commands() == ["pixi lock", "pixi lock"]


def test_retries_recover_from_transient_failures(host: Host) -> None:
    host.monkeypatch.setenv("PIXI_STANDIN_FAIL", "lock,pack")
    host.monkeypatch.setenv("PIXI_STANDIN_FAIL_TIMES", "2")
    result = host.bundle("--retries", "2", "-o", "b.tar")
    assert result.exit_code == 0, result.stderr
    assert host.commands() == ["pixi lock"] * 3 + ["pixi-pack"] * 3
    assert result.stderr.count("failed (exit 1: Error: stand-in failure injected") == 4
    assert "retrying in 0 s (attempt 3 of 3)" in result.stderr
    assert sha256sum_check(host.tmp / "b.tar").returncode == 0


def test_too_few_retries_fail(host: Host) -> None:
    host.monkeypatch.setenv("PIXI_STANDIN_FAIL", "pack")
    host.monkeypatch.setenv("PIXI_STANDIN_FAIL_TIMES", "2")
    result = host.bundle("--retries", "1")
    assert result.exit_code == 1
    assert "sglangc: pixi-pack failed (exit 1) after 2 attempts" in result.stderr


def test_output_replaced_as_a_whole(host: Host) -> None:
    out = host.tmp / "b.tar"
    out.write_bytes(b"old bundle")
    (host.tmp / "b.tar.sha256").write_text("0" * 64 + "  b.tar\n")
    assert host.bundle("-o", str(out)).exit_code == 0
    assert out.read_bytes() != b"old bundle" and sha256sum_check(out).returncode == 0


def test_bundle_without_supervisor_is_refused(host: Host) -> None:
    template = user_template(host)
    text = (template / "pixi.toml").read_text()
    (template / "pixi.toml").write_text(text.replace('supervisor = "*"', "# no supervisor"))
    assert "supervisor" not in tomllib.loads((template / "pixi.toml").read_text())["dependencies"]
    result = host.bundle("--template", str(template), "-o", "b.tar")
    assert result.exit_code == 1
    assert "sglangc: the pixi-pack bundle lacks supervisor" in result.stderr
    assert not (host.tmp / "b.tar").exists()


def test_usage_errors(host: Host) -> None:
    for args, words in [
        (["--find-links", "x"], "--find-links: only with --kind wheelhouse"),
        (["--no-index", "--find-links", "x"], "--find-links, --no-index: only with --kind wheelhouse"),
        (
            ["--kind", "wheelhouse", "--rattler-config", str(FAKES / "pixi")],
            "--rattler-config: only with --kind pixi-pack",
        ),
        (["--kind", "wheelhouse", "--no-index"], "--no-index needs --find-links"),
        (["--template", str(FAKES)], "no pixi.toml in it"),
    ]:
        result = host.bundle(*args)
        assert result.exit_code == 2, (args, result.stderr)
        assert words in result.stderr
    assert host.bundle("--retries", "-1").exit_code == 2
    assert host.runs() == []


def test_template_own_pixi_config_is_used(host: Host) -> None:
    template = user_template(host)
    (template / ".pixi").mkdir()
    (template / ".pixi" / "config.toml").write_text(
        '[mirrors]\n"https://conda.anaconda.org/conda-forge" = ["https://m.example/cf"]\n'
    )
    result = host.bundle("--template", str(template), "-o", "b.tar", "-v")
    assert result.exit_code == 0, result.stderr
    pack = host.runs()[-1]["argv"]
    assert pack[pack.index("--config") + 1] == str(template / ".pixi" / "config.toml")
    assert "mirror: https://conda.anaconda.org/conda-forge -> https://m.example/cf" in result.stderr
    assert sorted(p.name for p in (template / ".pixi").iterdir()) == ["config.toml"]


def test_unwritable_output_is_a_one_line_error(host: Host) -> None:
    (host.tmp / "a-file").write_text("")
    result = host.bundle("-o", str(host.tmp / "a-file" / "b.tar"))
    assert result.exit_code == 1
    assert result.stderr.startswith(f"sglangc: {host.tmp / 'a-file'}: ") and result.stderr.count("\n") == 1


def test_second_bundle_of_the_same_file_waits(host: Host) -> None:
    import fcntl
    import subprocess
    import sys

    out = host.tmp / "b.tar"
    lock = host.cache / "locks" / (hashlib.sha256(str(out).encode()).hexdigest()[:16] + ".lock")
    lock.parent.mkdir(parents=True)
    sglangc = Path(sys.executable).parent / "sglangc"
    held = open(lock, "w")  # noqa: SIM115 - closed below, once the second bundle is seen waiting
    fcntl.flock(held, fcntl.LOCK_EX)
    proc = subprocess.Popen(
        [str(sglangc), "bundle", "--cache-dir", str(host.cache), "-o", str(out)],
        cwd=host.tmp,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stderr is not None
        first = proc.stderr.readline()
        assert first == f"sglangc: waiting for another sglangc bundle writing {out}\n"
        assert proc.poll() is None and not out.exists()
        held.close()  # the lock is free: the waiting bundle goes on
        stdout, _ = proc.communicate(timeout=60)
    finally:
        held.close()
        proc.kill()
        proc.wait()
        for pipe in (proc.stdout, proc.stderr):
            if pipe:
                pipe.close()
    assert proc.returncode == 0 and str(out) in stdout
    assert sha256sum_check(out).returncode == 0
