"""download-models.sh with the real huggingface_hub client against the stand-in hub (tests/fakes/hub.py, reached
through HF_ENDPOINT): first download, a re-run without transfer, a pinned model checked with no network call,
kill -9 mid-file then a resumed run, a corrupted file fetched again, a wrong token, an unknown revision or
repository, no network, a full disk (a small tmpfs) and a shard the index names but the download leaves out.

The environment the script downloads with is this test run's own Python (it has huggingface_hub), standing
where the installer puts SGLang's: $AUTO_INFER_SGLANG_PIXI_PROJECT_DIR/.pixi/envs/default.
"""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from support import SYSTEM_PATH, procs, wait_for
from support.cli import run_cli
from support.hub import Hub
from support.net import free_port

TOKEN = "hf_standin_secret_4d2c"
BIG_SHARD = 10 * 1024 * 1024 + 300_000


@pytest.fixture
def hub(tmp_path):
    h = Hub(tmp_path)
    yield h
    h.stop()


@pytest.fixture(params=["huggingface", "modelscope"])
def source(request) -> str:
    return request.param


def compile_config(
    tmp: Path, download: str, model_path: str | None = None, source: str = "huggingface"
) -> tuple[Path, Path]:
    """A config with one instance that downloads org/tiny; its compiled DIR and where the model lands."""
    models = tmp / "models"
    text = f'version = 1\n[master]\nmodels_dir = "{models}"\n[instances.tiny]\ngpu_ids = [0]\n' + (
        f'model_path = "{model_path}"\n' if model_path else ""
    )
    text += f'[instances.tiny.download]\nrepo = "org/tiny"\nsource = "{source}"\n{download}\n'
    config = tmp / "download.toml"
    config.write_text(text)
    out = tmp / "out"
    result = run_cli("compile", str(config), "-o", str(out))
    assert result.exit_code == 0, result.output
    return out, Path(model_path) if model_path else models / "org" / "tiny"


def environment(tmp: Path, port: int, **extra: str) -> dict[str, str]:
    project = tmp / "project"
    envs = project / ".pixi" / "envs"
    envs.mkdir(parents=True, exist_ok=True)
    if not (envs / "default").exists():
        (envs / "default").symlink_to(sys.prefix)
    return {
        "PATH": SYSTEM_PATH,
        "HOME": str(tmp),
        "HF_HOME": str(tmp / "hf-home"),
        "HF_ENDPOINT": f"http://127.0.0.1:{port}",
        "MODELSCOPE_ENDPOINT": f"http://127.0.0.1:{port}",
        "MODELSCOPE_CACHE": str(tmp / "modelscope-cache"),
        "AUTO_INFER_SGLANG_PIXI_PROJECT_DIR": str(project),
        "AUTO_INFER_SGLANG_DOWNLOAD_TRIES": "2",
        "HF_HUB_OFFLINE": "1",  # as a container may set it for SGLang: the download goes on
        **extra,
    }


def download(out: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return procs.run(["bash", str(out / "download-models.sh"), *args], env=env, timeout=120)


def same_files(model: Path, repo: Path) -> None:
    want = sorted(p.relative_to(repo) for p in repo.rglob("*") if p.is_file())
    got = sorted(p.relative_to(model) for p in model.rglob("*") if p.is_file() and p.name != ".sglangc-download")
    assert got == want
    for rel in want:
        assert hashlib.sha256((model / rel).read_bytes()).digest() == hashlib.sha256((repo / rel).read_bytes()).digest()


def test_first_download_then_a_rerun_transfers_nothing(tmp_path, hub, source):
    out, model = compile_config(tmp_path, "", source=source)
    env = environment(tmp_path, hub.port)
    done = download(out, env)
    assert done.returncode == 0, done.stderr
    same_files(model, hub.repo)
    assert model.is_symlink() and os.readlink(model).startswith(".tiny.sglangc/")
    progress = [line for line in done.stdout.splitlines() if line.endswith("/s)")]
    assert len(progress) == 5, done.stdout  # one line per file, with its size and rate
    assert any("model-00001-of-00002.safetensors: 292.9 KiB in" in line for line in progress)
    assert not list(model.parent.glob(".tiny.sglangc/partial"))

    hub.log.write_text("")
    again = download(out, env)
    assert again.returncode == 0, again.stderr
    assert "complete" in again.stdout and "fetching" not in again.stdout
    assert hub.requests() and not hub.transfers()  # asked, not fetched


def test_pinned_and_complete_needs_no_network(tmp_path, hub, source):
    out, model = compile_config(tmp_path, f'revision = "{hub.commit()}"', source=source)
    env = environment(tmp_path, hub.port)
    assert download(out, env).returncode == 0
    hub.stop()  # no hub at all now
    done = download(out, env)
    assert done.returncode == 0, done.stderr
    assert "the hub was not asked" in done.stdout
    same_files(model, hub.repo)


def test_kill_mid_file_then_resume_ends_with_the_same_bytes(tmp_path, source):
    # huggingface_hub writes what arrives in pieces of 10 MiB: the first shard is larger, and after its first
    # piece it comes slowly, so that the download is killed with part of it on disk
    big = BIG_SHARD
    hub = Hub(tmp_path, token=TOKEN, shard=big)
    try:
        out, model = compile_config(tmp_path, 'token_env = "HUB_TOKEN"', source=source)
        env = environment(tmp_path, hub.port, HUB_TOKEN=TOKEN)
        hub.throttle(2000, after=big - 100_000)
        work = model.parent / ".tiny.sglangc" / "partial" / ".sglangc"
        shard = "model-00001-of-00002.safetensors"
        part = work / f"{shard}.part" if source == "huggingface" else work / "ms" / f"{shard}.incomplete"
        run = subprocess.Popen(
            ["bash", str(out / "download-models.sh")],
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )
        try:
            wait_for(lambda: part.exists() and 0 < part.stat().st_size < big, 60, "the first shard partly fetched")
            # the token is in no process's command line while the download runs
            for pid in procs.live_pids():
                assert TOKEN.encode() not in b"\0".join(procs.cmdline(pid)), pid
            os.killpg(run.pid, signal.SIGKILL)
        finally:
            stdout, stderr = run.communicate()
        assert TOKEN.encode() not in stdout + stderr
        assert not model.exists() and not model.is_symlink()  # nothing half-made where SGLang looks
        stopped_at = part.stat().st_size
        assert 0 < stopped_at < big

        hub.throttle(0)
        hub.log.write_text("")
        done = download(out, env)
        assert done.returncode == 0, done.stderr
        resumed = [r for r in hub.requests() if r.endswith(f"bytes={stopped_at}-")]
        if source == "huggingface":  # the hub's redirect, then its CDN
            assert [r.split()[1].startswith("/cdn/") for r in resumed] == [False, True], hub.requests()
        else:
            assert len(resumed) == 1, hub.requests()
        assert not [r for r in hub.requests() if shard in r and r.endswith(" -")]  # never from the start
        assert "resumed at" in done.stdout
        same_files(model, hub.repo)
        assert TOKEN not in done.stdout + done.stderr
        for f in [*out.rglob("*"), *model.parent.rglob("*")]:
            assert not f.is_file() or TOKEN.encode() not in f.read_bytes(), f
    finally:
        hub.stop()


def test_a_corrupted_file_is_fetched_again(tmp_path, hub, source):
    out, model = compile_config(tmp_path, "", source=source)
    env = environment(tmp_path, hub.port)
    assert download(out, env).returncode == 0
    shard = model / "model-00002-of-00002.safetensors"
    with shard.open("r+b") as f:  # same size, other bytes
        f.seek(100)
        f.write(b"\xff" * 8)
    hub.log.write_text("")
    done = download(out, env)
    assert done.returncode == 0, done.stderr
    fetched = hub.transfers()
    assert len(fetched) == 1, fetched
    assert "model-00002-of-00002.safetensors: 195.3 KiB in" in done.stdout
    same_files(model, hub.repo)
    assert len(list((model.parent / ".tiny.sglangc").glob("[!.]*"))) == 1  # the old version is gone


def test_verify_rehashes_a_file_changed_behind_its_mtime(tmp_path, hub):
    out, model = compile_config(tmp_path, "")
    env = environment(tmp_path, hub.port)
    assert download(out, env).returncode == 0
    shard = model / "model-00001-of-00002.safetensors"
    stat = shard.stat()
    with shard.open("r+b") as f:
        f.write(b"\0" * 4)
    os.utime(shard, ns=(stat.st_atime_ns, stat.st_mtime_ns))  # bit rot: the size and mtime are as recorded
    assert "fetching" not in download(out, env).stdout
    done = download(out, env, "--verify")
    assert done.returncode == 0 and "fetching 1 file(s)" in done.stdout, done.stdout + done.stderr
    same_files(model, hub.repo)


def test_wrong_token_is_refused(tmp_path, source):
    hub = Hub(tmp_path, token=TOKEN)
    try:
        out, model = compile_config(tmp_path, 'token_env = "HUB_TOKEN"', source=source)
        done = download(out, environment(tmp_path, hub.port, HUB_TOKEN="hf_wrong_token_1234"))
        assert done.returncode == 23, done.stderr
        assert "refused" in done.stderr and "hf_wrong_token_1234" not in done.stderr + done.stdout
        assert len(done.stderr.strip().splitlines()) == 1, done.stderr
        assert not model.exists()
    finally:
        hub.stop()


@pytest.mark.parametrize(
    ("table", "says"),
    [('revision = "no-such-branch"', "unknown revision"), ('revision = "main"', "unknown repository")],
)
def test_unknown_revision_or_repository(tmp_path, hub, table, says, source):
    unknown_repo = says == "unknown repository"
    if source == "modelscope":  # its client tells the two apart only in the server's words
        table, says = table.replace('"main"', '"master"'), "unknown repository or revision"
    out, model = compile_config(tmp_path, table, source=source)
    if unknown_repo:
        (hub.repos / "org" / "tiny").rename(hub.repos / "org" / "other")
    done = download(out, environment(tmp_path, hub.port))
    assert done.returncode == 22, done.stderr
    assert says in done.stderr and len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert not model.exists()


def test_no_network(tmp_path, source):
    out, model = compile_config(tmp_path, "", source=source)
    done = download(out, environment(tmp_path, free_port(), AUTO_INFER_SGLANG_DOWNLOAD_TRIES="2"))
    assert done.returncode == 21, done.stderr
    retry, error = done.stderr.strip().splitlines()  # one warning per retry, then the one-line error
    assert retry.endswith("; try 2 of 2 in 2s") and "cannot be reached" in error
    assert not model.exists()


def test_full_disk_leaves_no_half_model(tmp_path, hub, source):
    models = tmp_path / "models"
    models.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(models)], capture_output=True)
    assert mounted.returncode == 0, f"a tmpfs cannot be mounted here: {mounted.stderr!r}"
    try:
        out, model = compile_config(tmp_path, "", source=source)
        done = download(out, environment(tmp_path, hub.port))
        assert done.returncode == 24, done.stderr
        assert "not enough space" in done.stderr and "is unchanged" in done.stderr
        assert not model.exists() and not model.is_symlink()
    finally:
        subprocess.run(["umount", "-l", str(models)], check=False)


def test_a_shard_left_out_by_exclude_fails_verification(tmp_path, hub):
    out, model = compile_config(tmp_path, 'exclude = ["model-00002-*"]')
    done = download(out, environment(tmp_path, hub.port))
    assert done.returncode == 25, done.stderr
    assert "model-00002-of-00002.safetensors" in done.stderr
    assert not model.exists()


def test_model_path_given_is_where_it_lands_and_launch_names_the_command(tmp_path, hub):
    target = tmp_path / "elsewhere" / "tiny-model"
    out, _ = compile_config(tmp_path, "", model_path=str(target))
    env = environment(tmp_path, hub.port)
    preflight = procs.run(["bash", str(out / "launch-tiny.sh"), "--preflight"], env=env, timeout=60)
    assert preflight.returncode == 11
    assert f"download it with {out}/download-models.sh tiny" in preflight.stdout
    dry = procs.run(["bash", str(out / "launch-tiny.sh"), "--dry-run"], env=env, timeout=60)
    assert "HF_HUB_OFFLINE=1" in dry.stdout.splitlines()
    assert download(out, env, "tiny").returncode == 0
    same_files(target, hub.repo)
    assert download(out, env, "nope").returncode == 2


def test_model_path_that_is_not_ours_is_left_alone(tmp_path, hub):
    target = tmp_path / "mounted"
    target.mkdir()
    (target / "config.json").write_text("{}")
    out, _ = compile_config(tmp_path, "", model_path=str(target))
    done = download(out, environment(tmp_path, hub.port))
    assert done.returncode == 26 and "was not made by download-models.sh" in done.stderr
    assert [p.name for p in target.iterdir()] == ["config.json"]


def boot(out: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """A strict entrypoint that sources the entry hook, then goes on."""
    entry = f"set -euo pipefail\n. {out}/entry-hook.sh\necho entrypoint-continues\n"
    return procs.run(["bash", "-c", entry], env=env, timeout=120)


def test_download_gate_failure_does_not_stop_the_boot(tmp_path):
    out, model = compile_config(tmp_path, "")
    env = environment(
        tmp_path, free_port(), AUTO_INFER_SGLANG_DOWNLOAD_TRIES="1", AUTO_INFER_SGLANG_DOWNLOAD_ON_BOOT="1"
    )
    done = boot(out, env)
    assert done.returncode == 0 and done.stdout.rstrip().endswith("entrypoint-continues")
    assert f"sglang-entry-hook: downloading the models: {out}/download-models.sh" in done.stdout
    assert f"sglang-entry-hook: ERROR: {out}/download-models.sh failed (exit status 21)" in done.stderr
    assert not model.exists()
    quiet = boot(out, {**env, "AUTO_INFER_SGLANG_DOWNLOAD_ON_BOOT": "0"})
    assert "download" not in quiet.stdout + quiet.stderr  # the gate off: not a word about it


def test_download_gate_without_any_download_table(tmp_path):
    config = tmp_path / "plain.toml"
    config.write_text('version = 1\n[instances.a]\nmodel_path = "/llm-models/x"\ngpu_ids = [0]\n')
    out = tmp_path / "out"
    assert run_cli("compile", str(config), "-o", str(out)).exit_code == 0
    assert not (out / "download-models.sh").exists()
    done = boot(out, {"PATH": SYSTEM_PATH, "AUTO_INFER_SGLANG_DOWNLOAD_ON_BOOT": "true"})
    assert "no instance of" in done.stdout and "has a download table: nothing to download" in done.stdout
    assert done.stdout.rstrip().endswith("entrypoint-continues")
