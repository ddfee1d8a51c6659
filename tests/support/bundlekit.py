"""Build offline bundles for the installer's tests and benchmark: real wheels, wheelhouse tars, pixi-pack archives.

Stdlib only; used by the installer, bundle and boot tests and by bench/bench_install.py.

    make_wheel(out_dir, name, version, files)      -> a real wheel (zip with METADATA, WHEEL, RECORD)
    fake_sglang_wheel / fake_torch_wheel(out_dir)  -> tiny stand-ins: sglang.__version__, torch.cuda.is_available()
    third_party_wheels(cache)                      -> supervisor and PyYAML (+ dependencies), `pip download`ed once
    wheelhouse_tar(path, wheels, ...)              -> requirements.txt + wheels/ as one plain tar
    pixi_pack_tar(path, wheels, ...)               -> pixi-pack.json, environment.yml, channel/, pypi/ as one tar
"""

from __future__ import annotations

import base64
import fcntl
import hashlib
import io
import json
import os
import re
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from contextlib import contextmanager
from pathlib import Path

SGLANG_VERSION = "0.5.23"
TORCH_VERSION = "2.9.1+fake"
THIRD_PARTY = ("supervisor", "pyyaml")

# torch stand-in: CUDA "usable" only when FAKE_TORCH_CUDA=1, so tests can check both outcomes of the verify step.
TORCH_INIT = f'''"""Stand-in for torch, for tests only."""
import os as _os

__version__ = "{TORCH_VERSION}"


class version:
    cuda = "12.6"


class cuda:
    @staticmethod
    def is_available():
        return _os.environ.get("FAKE_TORCH_CUDA") == "1"

    @staticmethod
    def device_count():
        return 1 if cuda.is_available() else 0
'''


def _record_hash(data: bytes) -> str:
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return f"sha256={digest}"


def make_wheel(out_dir: Path, name: str, version: str, files: dict[str, str]) -> Path:
    """A pure-Python wheel holding `files` (path -> text); installable by pip like any other."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    dist = re.sub(r"[-_.]+", "_", name)
    tag_version = version.replace("-", "_")
    dist_info = f"{dist}-{tag_version}.dist-info"
    entries = {path: text.encode() for path, text in files.items()}
    entries[f"{dist_info}/METADATA"] = f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n".encode()
    entries[f"{dist_info}/WHEEL"] = (
        b"Wheel-Version: 1.0\nGenerator: bundlekit\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
    )
    record = "".join(f"{path},{_record_hash(data)},{len(data)}\n" for path, data in entries.items())
    record += f"{dist_info}/RECORD,,\n"
    wheel = out_dir / f"{dist}-{tag_version}-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w", zipfile.ZIP_DEFLATED) as zf:
        for path, data in entries.items():
            info = zipfile.ZipInfo(path, date_time=(2020, 1, 1, 0, 0, 0))
            info.external_attr = 0o644 << 16
            zf.writestr(info, data)
        zf.writestr(zipfile.ZipInfo(f"{dist_info}/RECORD", date_time=(2020, 1, 1, 0, 0, 0)), record)
    return wheel


def fake_sglang_wheel(out_dir: Path) -> Path:
    return make_wheel(
        out_dir,
        "sglang",
        SGLANG_VERSION,
        {
            "sglang/__init__.py": f'"""Stand-in for sglang, for tests only."""\n__version__ = "{SGLANG_VERSION}"\n',
        },
    )


def fake_torch_wheel(out_dir: Path, version: str = TORCH_VERSION) -> Path:
    return make_wheel(out_dir, "torch", version, {"torch/__init__.py": TORCH_INIT.replace(TORCH_VERSION, version)})


def template_wheels(pixi_toml: Path, environment: str, out_dir: Path) -> list[Path]:
    """Tiny wheels at the exact versions the pixi template pins for `environment` (for the re-lock route):
    torch is the torch stand-in, sglang has __version__, the others are empty packages."""
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # Python 3.10
        import tomli as tomllib
    data = tomllib.loads(Path(pixi_toml).read_text(encoding="utf-8"))
    spec = data.get("environments", {}).get(environment, {})
    features = spec if isinstance(spec, list) else spec.get("features", [])
    pins: dict[str, str] = {}
    for table in [data, *(data.get("feature", {}).get(f, {}) for f in features)]:
        for name, value in table.get("pypi-dependencies", {}).items():
            version = value.get("version", "") if isinstance(value, dict) else value
            pins[name] = re.sub(r"^[=<>~!]+", "", version).replace(".*", ".0") or "1.0"
    wheels = []
    for name, version in sorted(pins.items()):
        if name == "torch":
            wheels.append(fake_torch_wheel(out_dir, version))
        else:
            module = re.sub(r"[-.]+", "_", name)
            wheels.append(make_wheel(out_dir, name, version, {f"{module}/__init__.py": f'__version__ = "{version}"\n'}))
    return wheels


@contextmanager
def _locked(directory: Path):
    directory.mkdir(parents=True, exist_ok=True)
    with open(directory / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def default_cache() -> Path:
    return Path(
        os.environ.get("SGLANGC_INSTALL_TEST_CACHE")
        or Path(tempfile.gettempdir()) / f"sglangc-install-test-cache-{os.getuid()}"
    )


GATEWAY = ("smg==1.13.0",)  # SGLang's model gateway, for bundles that run [gateway]


def third_party_wheels(
    cache: Path | None = None,
    python: str = sys.executable,
    packages: tuple[str, ...] = THIRD_PARTY,
    extra: tuple[str, ...] = (),
) -> list[Path]:
    """supervisor and PyYAML wheels (or `packages`, e.g. GATEWAY; and the `extra` packages, such as
    huggingface_hub) with their dependencies for `python`, downloaded once into `cache`."""
    packages = (*packages, *extra)
    cache = Path(cache or default_cache())
    tag = subprocess.run(
        [python, "-c", "import sys; print('cp%d%d' % sys.version_info[:2])"], capture_output=True, text=True, check=True
    ).stdout.strip()
    target = cache / (f"wheels-{tag}" if packages == THIRD_PARTY else f"wheels-{tag}-{'-'.join(packages)}")
    with _locked(cache):
        done = target / ".complete"
        if not done.exists():
            target.mkdir(parents=True, exist_ok=True)
            subprocess.run(
                [
                    python,
                    "-m",
                    "pip",
                    "--disable-pip-version-check",
                    "-q",
                    "download",
                    "--only-binary=:all:",
                    "-d",
                    str(target),
                    *packages,
                ],
                check=True,
            )
            done.write_text("ok\n")
    return sorted(target.glob("*.whl"))


def requirement(wheel: Path) -> str:
    """`name==version` of a wheel file name."""
    name, version = Path(wheel).name.split("-")[:2]
    return f"{name.replace('_', '-').lower()}=={version}"


class ZeroStream(io.RawIOBase):
    """`size` bytes of a repeating pattern, read without holding them in memory (padding for big bundles)."""

    def __init__(self, size: int, pattern: bytes = b"\0"):
        self.left = size
        self.block = (pattern * ((1 << 20) // max(1, len(pattern)) + 1))[: 1 << 20]

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        n = min(len(buffer), self.left, len(self.block))
        buffer[:n] = self.block[:n]
        self.left -= n
        return n


def _add_bytes(tar: tarfile.TarFile, name: str, data: bytes, mode: int = 0o644) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mode = mode
    tar.addfile(info, io.BytesIO(data))


def _add_dir(tar: tarfile.TarFile, name: str) -> None:
    info = tarfile.TarInfo(name)
    info.type = tarfile.DIRTYPE
    info.mode = 0o755
    tar.addfile(info)


def _add_padding(tar: tarfile.TarFile, name: str, size: int, random_file: Path | None = None) -> None:
    info = tarfile.TarInfo(name)
    info.size = size
    info.mode = 0o644
    if random_file is not None:
        with open(random_file, "rb") as src:
            tar.addfile(info, src)
    else:
        tar.addfile(info, io.BufferedReader(ZeroStream(size), 1 << 20))


def wheelhouse_tar(
    path: Path,
    wheels: list[Path],
    *,
    requirements: list[str] | None = None,
    pad_bytes: int = 0,
    pad_file: Path | None = None,
    dot_slash: bool = False,
) -> Path:
    """A wheelhouse bundle: requirements.txt (name==version of every wheel unless given) and wheels/.

    `pad_bytes` adds wheels/padding.bin (zeros, or the first bytes of `pad_file`: e.g. random data for an
    incompressible benchmark bundle); pip ignores it, the installer reads it like any other member.
    """
    p = "./" if dot_slash else ""
    reqs = requirements if requirements is not None else [requirement(w) for w in wheels]
    with tarfile.open(path, "w", format=tarfile.GNU_FORMAT) as tar:
        _add_bytes(tar, f"{p}requirements.txt", ("\n".join(reqs) + "\n").encode())
        _add_dir(tar, f"{p}wheels")
        for wheel in wheels:
            tar.add(str(wheel), arcname=f"{p}wheels/{Path(wheel).name}")
        if pad_bytes:
            _add_padding(tar, f"{p}wheels/padding.bin", pad_bytes, pad_file)
    return Path(path)


FAKE_CONDA = {  # subdir -> package file names: fakes, only listed and checked by the pixi-unpack stand-in
    "linux-64": ["python-3.12.11-h9e4cc4f_0_cpython.conda", "pyyaml-6.0.2-py312h178313f_2.conda"],
    "noarch": ["pip-25.2-pyh8b19718_0.conda", "supervisor-4.2.5-pyhd8ed1ab_1.conda"],
}


def pixi_pack_tar(
    path: Path,
    wheels: list[Path],
    *,
    platform: str = "linux-64",
    version: str = "1",
    unlisted_package: bool = False,
    pad_bytes: int = 0,
) -> Path:
    """A pixi-pack archive (pixi-facts §3 layout) whose conda packages are fakes and whose PyPI part is `wheels`."""
    conda_lines = []
    with tarfile.open(path, "w", format=tarfile.GNU_FORMAT) as tar:
        _add_bytes(
            tar,
            "pixi-pack.json",
            json.dumps({"version": version, "pixi-pack-version": "0.7.10", "platform": platform}).encode(),
        )
        for subdir, names in FAKE_CONDA.items():
            packages = {}
            for name in names:
                data = f"fake conda package {name}\n".encode()
                _add_bytes(tar, f"channel/{subdir}/{name}", data)
                pkg, ver, build = name.removesuffix(".conda").rsplit("-", 2)
                packages[name] = {
                    "name": pkg,
                    "version": ver,
                    "build": build,
                    "subdir": subdir,
                    "sha256": hashlib.sha256(data).hexdigest(),
                    "size": len(data),
                    "depends": [],
                }
                conda_lines.append(f"  - {pkg}={ver}={build}")
            repodata = {"info": {"subdir": subdir}, "packages": {}, "packages.conda": packages}
            _add_bytes(tar, f"channel/{subdir}/repodata.json", json.dumps(repodata, indent=1).encode())
        if unlisted_package:
            _add_bytes(tar, "channel/linux-64/stray-1.0-0.conda", b"not in repodata\n")
        for wheel in wheels:
            tar.add(str(wheel), arcname=f"pypi/{Path(wheel).name}")
        pip_lines = "".join(f"    - {requirement(w)}\n" for w in wheels)
        env_yml = (
            "channels:\n  - ./channel\n  - nodefaults\ndependencies:\n"
            + "\n".join(conda_lines)
            + "\n"
            + "  - pip:\n    - --no-index\n    - --find-links ./pypi\n"
            + pip_lines
        )
        _add_bytes(tar, "environment.yml", env_yml.encode())
        if pad_bytes:
            _add_padding(tar, "pypi/padding.bin", pad_bytes)
    return Path(path)
