"""Build the SGLang stand-in wheel for a flag catalog and install it into a venv.

    build_wheel(out_dir, catalog) -> wheel path
    make_prefix(prefix, catalog)  -> prefix, a venv where
        "$prefix/bin/python -m sglang.launch_server ..." runs the stand-in

Wheels (per catalog and stand-in source) and the extra packages' wheels are
cached under $SGLANG_STANDIN_CACHE (default: <tempdir>/sglang-standin-cache-<uid>),
so only the first make_prefix of a machine pays for a build and a download.
Stdlib only; importable by path (it is not part of a package).
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
from contextlib import contextmanager
from pathlib import Path

SOURCE = Path(__file__).resolve().parent
IGNORED = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info", "build", "dist", "_catalog.json")


def _pip(*args: str) -> list[str]:
    return [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q", *args]


def _run(argv: list[str], check: bool = True) -> bool:
    done = subprocess.run(argv, capture_output=True, text=True)
    if check and done.returncode:
        raise RuntimeError(f"{' '.join(argv)} failed ({done.returncode}):\n{done.stdout}{done.stderr}")
    return done.returncode == 0


def build_wheel(out_dir: Path, catalog: Path) -> Path:
    """Build sglang-0.5.23-py3-none-any.whl with `catalog` packaged as sglang/_catalog.json."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="sglang-standin-src-") as tmp:
        tree = Path(tmp) / "src"
        shutil.copytree(SOURCE, tree, ignore=IGNORED)
        shutil.copyfile(catalog, tree / "sglang" / "_catalog.json")
        wheel = _pip("wheel", "--no-deps", "-w", str(out_dir), str(tree))
        # No build isolation needs setuptools with bdist_wheel here; else pip fetches one.
        if not _run(wheel[:-1] + ["--no-build-isolation", str(tree)], check=False):
            _run(wheel)
    return out_dir / "sglang-0.5.23-py3-none-any.whl"


def _cache() -> Path:
    default = Path(tempfile.gettempdir()) / f"sglang-standin-cache-{os.getuid()}"
    path = Path(os.environ.get("SGLANG_STANDIN_CACHE") or default)
    path.mkdir(parents=True, exist_ok=True)
    return path


@contextmanager
def _locked(cache: Path):
    with open(cache / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def _fingerprint(catalog: Path) -> str:
    digest = hashlib.sha256(Path(catalog).read_bytes())
    for path in [SOURCE / "pyproject.toml", SOURCE / "README.md", *sorted((SOURCE / "sglang").glob("*.py"))]:
        digest.update(b"\0" + path.name.encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:20]


def make_prefix(
    prefix: Path, catalog: Path, *, extra_packages: tuple[str, ...] = ("pyyaml",), with_pip: bool = False
) -> Path:
    """Create a venv at `prefix` holding the stand-in (for `catalog`) and `extra_packages`."""
    prefix, cache = Path(prefix), _cache()
    with _locked(cache):
        wheel_dir = cache / "wheels" / _fingerprint(catalog)
        wheel = wheel_dir / "sglang-0.5.23-py3-none-any.whl"
        if not wheel.exists():
            with tempfile.TemporaryDirectory(dir=cache) as tmp:
                built = build_wheel(Path(tmp), catalog)
                wheel_dir.mkdir(parents=True, exist_ok=True)
                os.replace(built, wheel)
    venv = [sys.executable, "-m", "venv", str(prefix)]
    _run(venv if with_pip else venv + ["--without-pip"])
    extras = cache / "extras"
    install = _pip("--python", str(prefix / "bin" / "python"), "install", "--force-reinstall",
                   "--no-index", "--find-links", str(extras), str(wheel), *extra_packages)
    if not _run(install, check=False):
        with _locked(cache):  # first use of these packages: fetch them once
            _run(_pip("download", "--only-binary=:all:", "-d", str(extras), *extra_packages))
        _run(install)
    return prefix
