"""The sandbox the installer tests run install-sglang-offline.sh in: every path inside tmp_path, a bin directory
first on PATH for stand-ins and wrappers, and helpers to snapshot the state a failed run must not touch."""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from support import FAKES_BIN, ROOT, procs, unstamped

EXAMPLE = ROOT / "model-configs" / "sglang-single-gpu.toml"
ENV = "default"
MiB = 1 << 20


def compile_config(config: Path, out: Path) -> Path:
    """`sglangc compile CONFIG -o OUT`, as a user runs it; returns the installer's path."""
    done = subprocess.run(
        [sys.executable, "-m", "sglangc", "compile", str(config), "-o", str(out)], capture_output=True, text=True
    )
    assert done.returncode == 0, f"sglangc compile failed:\n{done.stdout}{done.stderr}"
    return out / "install-sglang-offline.sh"


@dataclasses.dataclass
class Run:
    rc: int
    out: str
    err: str

    @property
    def text(self) -> str:
        return self.out + self.err


class Sandbox:
    """One project directory, a bin directory put first on PATH, and the installer's environment variables."""

    def __init__(self, tmp: Path, installer: Path, template_dir: Path) -> None:
        self.tmp = tmp
        self.installer = installer
        self.project = tmp / "project"
        self.envs = self.project / ".pixi" / "envs"
        self.prefix = self.envs / ENV
        self.bin = tmp / "bin"
        self.bin.mkdir()
        self.calls = tmp / "calls.log"
        self.wrap: list[str] = []  # a command to run the installer under (e.g. setpriv)
        self.env = {
            "PATH": f"{self.bin}:{Path(sys.executable).parent}:/usr/local/bin:/usr/bin:/bin",
            "HOME": str(tmp / "home"),
            "LC_ALL": "C.UTF-8",
            "AUTO_INFER_SGLANG_PIXI_PROJECT_DIR": str(self.project),
            "AUTO_INFER_SGLANG_PIXI_ENVIRONMENT": ENV,
            "AUTO_INFER_SGLANG_PIXI_TEMPLATE_DIR": str(template_dir),
            "AUTO_INFER_SGLANG_VERIFY_CUDA": "0",
        }

    # --- running ----------------------------------------------------------------------------------------
    def argv(self, *args: str) -> list[str]:
        return [*self.wrap, "bash", str(self.installer), *args]

    def environ(self, bundle: Path | None, **extra: str) -> dict[str, str]:
        env = dict(self.env)
        if bundle is not None:
            env["AUTO_INFER_SGLANG_BUNDLE_PATH"] = str(bundle)
        env.update(extra)
        return env

    def run(self, bundle: Path | None, *args: str, timeout: float = 180, **extra: str) -> Run:
        """The installer in the foreground; the test fails if it has not finished after `timeout` seconds."""
        done = procs.run(
            self.argv(*args),
            env=self.environ(bundle, **extra),
            timeout=timeout,
            what=f"install-sglang-offline.sh {' '.join(args)}",
        )
        # each line begins with the UTC time (tests/install/test_install_wheelhouse.py: test_usage), left out here
        return Run(done.returncode, unstamped(done.stdout), unstamped(done.stderr))

    def start(self, bundle: Path, *args: str, log: Path | None = None, **extra: str) -> subprocess.Popen:
        """The installer in the background, in a process group of its own (so a test can kill all of it)."""
        argv, env = self.argv(*args), self.environ(bundle, **extra)
        if log is None:
            return subprocess.Popen(
                argv,
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        with open(log, "ab") as out:
            return subprocess.Popen(
                argv, env=env, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True
            )

    # --- tools --------------------------------------------------------------------------------------------
    def tool(self, name: str, script: str) -> Path:
        path = self.bin / name
        path.write_text("#!/usr/bin/env bash\n" + script)
        path.chmod(0o755)
        return path

    def link_fake(self, name: str) -> None:
        (self.bin / name).symlink_to(FAKES_BIN / name)

    def log_calls(self, *names: str) -> None:
        """Wrappers that log each call of these tools, then run the real one."""
        for name in names:
            real = shutil.which(name, path="/usr/local/bin:/usr/bin:/bin")
            if real:
                self.tool(name, f'printf "%s\\n" "{name} $*" >>{self.calls}\nexec {real} "$@"\n')

    def throttle_hasher(self, mib_per_second: int) -> None:
        """Hashers that read the bundle at most this fast. The installer's tee feeds tar and the hasher together,
        so extraction goes no faster either: it lasts long enough to be interrupted, whatever the machine."""
        for name in ("openssl", "sha256sum"):
            real = shutil.which(name, path="/usr/local/bin:/usr/bin:/bin")
            if real:
                self.tool(
                    name,
                    f"""python3 -c '
import sys, time
while chunk := sys.stdin.buffer.read1(1 << 20):
    sys.stdout.buffer.write(chunk)
    time.sleep(len(chunk) / ({mib_per_second} << 20))
' | exec {real} "$@"
""",
                )

    def unthrottle_hasher(self) -> None:
        for name in ("openssl", "sha256sum"):
            (self.bin / name).unlink(missing_ok=True)

    def called(self) -> list[str]:
        return self.calls.read_text().splitlines() if self.calls.exists() else []

    # --- state ----------------------------------------------------------------------------------------------
    def current(self) -> str | None:
        return os.readlink(self.prefix) if self.prefix.is_symlink() else None

    def marker(self) -> dict:
        return json.loads((self.prefix / ".installed-from.json").read_text())

    def listing(self) -> list[str]:
        return sorted(p.name for p in self.envs.iterdir()) if self.envs.is_dir() else []

    def snapshot(self) -> dict:
        """What a failed run must leave exactly as it was: the symlink, the directories, the current marker."""
        marker = self.prefix / ".installed-from.json"
        tree = {}
        for d in self.envs.iterdir() if self.envs.is_dir() else []:
            if d.is_dir() and not d.is_symlink():
                tree[d.name] = sorted(str(p.relative_to(d)) for p in d.rglob("*"))
        return {
            "current": self.current(),
            "listing": self.listing(),
            "tree": tree,
            "marker": marker.read_text() if marker.exists() else None,
        }

    def assert_no_junk(self) -> None:
        names = self.listing()
        junk = [n for n in names if n.startswith(f".{ENV}.") or n == "activate.sh"]
        assert not junk, f"left behind in {self.envs}: {junk}"
        for name in names:
            path = self.envs / name
            if name != ENV and path.is_dir():
                prefix = path / ".pixi" / "envs" / ENV if (path / ".pixi" / "envs" / ENV).is_dir() else path
                assert (prefix / ".installed-from.json").exists(), f"partial environment left behind: {path}"

    def fake_previous(self, name: str = f"{ENV}.1") -> Path:
        """A complete-looking environment (marker + bin/python) that $PREFIX points to: the state a failed run
        must not touch. Cheaper than a real install; the real ones are tested on their own."""
        env_dir = self.envs / name
        (env_dir / "bin").mkdir(parents=True)
        (env_dir / "bin" / "python").symlink_to(sys.executable)
        (env_dir / "payload.txt").write_text("previous environment\n")
        (env_dir / ".installed-from.json").write_text(
            json.dumps(
                {
                    "format": 1,
                    "bundle_path": "/nowhere/old.tar",
                    "bundle_size": 1,
                    "bundle_mtime": "1.000000000",
                    "sha256": "0" * 64,
                    "kind": "wheelhouse",
                },
                indent=2,
            )
            + "\n"
        )
        self.prefix.parent.mkdir(parents=True, exist_ok=True)
        self.prefix.symlink_to(name)
        return env_dir


def copy_bundle(src: Path, dst: Path) -> Path:
    shutil.copyfile(src, dst)
    return dst
