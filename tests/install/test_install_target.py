"""install-sglang-offline.sh preflight against bundle.json: the container's glibc, driver CUDA and Python.

Stand-ins for getconf, ldd and nvidia-smi go first on PATH; a mismatch is exit 19, before anything is extracted.
"""

from __future__ import annotations

import io
import json
import shutil
import sys
import tarfile
from pathlib import Path

import pytest

from sglangc.bundle import bundle_metadata
from support import bundlekit

from .installbox import ENV, Sandbox, copy_bundle

PY = f"{sys.version_info.major}.{sys.version_info.minor}"
NVIDIA_SMI = """\
cat <<'EOF'
Tue Jul 15 10:00:00 2025
+-----------------------------------------------------------------------------------------+
| NVIDIA-SMI {driver}              Driver Version: {driver}      CUDA Version: {cuda}     |
|-----------------------------------------+------------------------+----------------------+
| GPU  Name                 Persistence-M | Bus-Id          Disp.A | Volatile Uncorr. ECC |
EOF
"""


def with_metadata(source: Path, dest: Path, meta: dict | bytes, member: str = "bundle.json") -> Path:
    """A copy of the bundle with bundle.json appended (as `sglangc bundle` does to a pixi-pack archive)."""
    copy_bundle(source, dest)
    data = meta if isinstance(meta, bytes) else (json.dumps(meta, indent=2) + "\n").encode()
    with tarfile.open(dest, "a") as tar:
        info = tarfile.TarInfo(member)
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    return dest


def meta(**fields: object) -> dict:
    base = {
        "format": 1,
        "kind": "wheelhouse",
        "environment": "default",
        "python": PY,
        "glibc": "2.28",
        "cuda": 12,
        "sglangc_version": "0.1.0",
    }
    return {**base, **fields}


def container(box: Sandbox, *, glibc: str | None = "2.35", ldd: str | None = None, cuda: str | None = None) -> None:
    """This container as the stand-ins describe it: getconf's glibc (None: getconf knows no GNU_LIBC_VERSION),
    ldd's first line, nvidia-smi's driver CUDA version (None: no nvidia-smi)."""
    real = shutil.which("getconf", path="/usr/bin:/bin") or "false"
    if glibc is None:
        box.tool("getconf", f'[ "$1" != GNU_LIBC_VERSION ] || exit 1\nexec {real} "$@"\n')
    else:
        box.tool("getconf", f'[ "$1" != GNU_LIBC_VERSION ] || {{ echo "glibc {glibc}"; exit 0; }}\nexec {real} "$@"\n')
    if ldd is not None:
        box.tool("ldd", f'[ "$1" = --version ] || exit 1\nprintf "%s\\n" "{ldd}" "Copyright (C) 2022"\n')
    if cuda is not None:
        box.tool("nvidia-smi", NVIDIA_SMI.format(driver="560.35.03", cuda=cuda))


def refused(box: Sandbox, run, before: dict) -> str:
    """Exit 19, one error line, nothing extracted or changed."""
    assert run.rc == 19, run.text
    errors = [line for line in run.err.splitlines() if ": error: " in line]
    assert len(errors) == 1, run.err
    assert "extract:" not in run.out and "preflight:" not in run.out, run.out
    assert box.snapshot() == before
    box.assert_no_junk()
    return errors[0]


@pytest.mark.parametrize("how", ["getconf", "ldd"])
def test_glibc_too_old_is_refused_before_extraction(box: Sandbox, wheelhouse: Path, tmp_path: Path, how: str) -> None:
    bundle = with_metadata(wheelhouse, tmp_path / "bundle.tar", meta(glibc="2.34"))
    if how == "getconf":
        container(box, glibc="2.31")
    else:  # no GNU_LIBC_VERSION from getconf (not glibc's getconf): ldd --version's first line
        container(box, glibc=None, ldd="ldd (Ubuntu GLIBC 2.31-0ubuntu9.16) 2.31")
    box.fake_previous()
    before = box.snapshot()
    line = refused(box, box.run(bundle), before)
    assert "the bundle needs glibc 2.34" in line and "this container has glibc 2.31" in line, line
    assert "--glibc 2.31" in line  # what to do


def test_bundle_json_with_dot_slash(box: Sandbox, wheels: list[Path], tmp_path: Path) -> None:
    """A tar made with `tar -C dir -cf … .` names its members ./x: bundle.json is read all the same."""
    plain = bundlekit.wheelhouse_tar(tmp_path / "plain.tar", wheels, dot_slash=True)
    bundle = with_metadata(plain, tmp_path / "bundle.tar", meta(glibc="2.34"), member="./bundle.json")
    container(box, glibc="2.31")
    line = refused(box, box.run(bundle), box.snapshot())
    assert "the bundle needs glibc 2.34" in line


def test_driver_cuda_too_old(box: Sandbox, wheelhouse: Path, tmp_path: Path) -> None:
    bundle = with_metadata(wheelhouse, tmp_path / "bundle.tar", meta(cuda=13))
    container(box, cuda="12.6")
    before = box.snapshot()
    line = refused(box, box.run(bundle, AUTO_INFER_SGLANG_VERIFY_CUDA="1"), before)
    assert "CUDA 13 builds" in line and "supports CUDA 12.6 (nvidia-smi)" in line and ">= 580" in line, line

    # Where CUDA is not checked (AUTO_INFER_SGLANG_VERIFY_CUDA=0, as in a build stage), only a warning.
    done = box.run(bundle)
    assert done.rc == 0, done.text
    assert "warning: the bundle's wheels are CUDA 13 builds" in done.err and "installing anyway" in done.err
    assert box.current() == f"{ENV}.1"


def test_python_mismatch(box: Sandbox, wheelhouse: Path, tmp_path: Path) -> None:
    other = "3.9" if PY != "3.9" else "3.10"
    bundle = with_metadata(wheelhouse, tmp_path / "bundle.tar", meta(python=other))
    container(box)
    before = box.snapshot()
    line = refused(box, box.run(bundle), before)
    assert f"wheels are for Python {other}" in line and f"is Python {PY}" in line, line
    assert "AUTO_INFER_SGLANG_PYTHON" in line


def test_everything_matching_installs(box: Sandbox, wheelhouse: Path, tmp_path: Path) -> None:
    # bundle.json exactly as sglangc bundle writes it, from wheel names: glibc 2.28, CUDA 12.
    names = ["torch-2.9.1+cu129-cp312-cp312-manylinux_2_28_x86_64.whl", "sglang-0.5.10.post1-py3-none-any.whl"]
    bundle = with_metadata(wheelhouse, tmp_path / "bundle.tar", bundle_metadata("wheelhouse", ENV, PY, names))
    container(box, glibc="2.35", cuda="12.6")
    done = box.run(bundle, FAKE_TORCH_CUDA="1", AUTO_INFER_SGLANG_VERIFY_CUDA="1")
    assert done.rc == 0, done.text
    assert f"fits this container (glibc 2.35, driver CUDA 12.6 for CUDA 12 wheels, Python {PY})" in done.out
    assert "warning" not in done.err, done.err
    assert box.current() == f"{ENV}.1"


def test_equal_glibc_and_no_nvidia_smi(box: Sandbox, wheelhouse: Path, tmp_path: Path) -> None:
    bundle = with_metadata(wheelhouse, tmp_path / "bundle.tar", meta(glibc="2.34", cuda=13))
    container(box, glibc="2.34")
    done = box.run(bundle)
    assert done.rc == 0, done.text
    assert "glibc 2.34, CUDA 13 wheels (no nvidia-smi: driver not checked)" in done.out


def test_without_bundle_json_installs_with_a_warning(box: Sandbox, wheelhouse: Path, tmp_path: Path) -> None:
    bundle = copy_bundle(wheelhouse, tmp_path / "bundle.tar")  # as an older sglangc bundle made it
    container(box, glibc="2.17", cuda="11.8")  # nothing to compare with: not refused
    done = box.run(bundle)
    assert done.rc == 0, done.text
    assert "has no bundle.json" in done.err and "not checked" in done.err
    assert "target not checked (no bundle.json)" in done.out
    assert box.current() == f"{ENV}.1"


def test_pixi_pack_checks_glibc_not_the_python(box: Sandbox, wheels: list[Path], tmp_path: Path) -> None:
    """A pixi-pack bundle brings its own conda Python: only glibc and the driver are compared."""
    box.link_fake("pixi-unpack")
    pack = bundlekit.pixi_pack_tar(tmp_path / "pack.tar", wheels)
    bundle = with_metadata(pack, tmp_path / "bundle.tar", meta(kind="pixi-pack", python="3.9", glibc="2.34", cuda=None))
    container(box, glibc="2.31")
    line = refused(box, box.run(bundle), box.snapshot())
    assert "glibc 2.34" in line
    container(box, glibc="2.39")
    done = box.run(bundle)
    assert done.rc == 0, done.text
    assert "fits this container (glibc 2.39)" in done.out
