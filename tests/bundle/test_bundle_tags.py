"""Wheel tags for the target's glibc, what a wheel needs, and the bundle.json every bundle carries."""

from __future__ import annotations

import json
import re
import shutil

import pytest

import sglangc
from sglangc.bundle import (
    DEFAULT_GLIBC,
    BundleError,
    _check_glibc,
    bundle_metadata,
    cuda_major,
    required_glibc,
    wheel_platforms,
)
from sglangc.cli import bundle as bundle_command
from sglangc.errors import UsageError

from .conftest import Host, members, read_member

LEGACY = ("manylinux2014_x86_64", "manylinux2010_x86_64", "manylinux1_x86_64", "linux_x86_64")


def test_wheel_platforms_of_glibc_2_35() -> None:
    tags = wheel_platforms("2.35")
    assert tags == (*(f"manylinux_2_{n}_x86_64" for n in range(35, 16, -1)), *LEGACY)
    assert "manylinux_2_34_x86_64" in tags  # sglang 0.5.23 ships only these
    assert "manylinux_2_18_x86_64" in tags  # nvidia-nccl-cu13 2.30.7
    assert wheel_platforms((2, 35)) == tags and wheel_platforms(" 2.35 ") == tags


def test_wheel_platforms_at_the_floor_and_the_default() -> None:
    assert wheel_platforms("2.17") == ("manylinux_2_17_x86_64", *LEGACY)
    assert wheel_platforms("2.31")[0] == "manylinux_2_31_x86_64" and "manylinux_2_34_x86_64" not in wheel_platforms(
        "2.31"
    )
    assert DEFAULT_GLIBC == "2.35"
    assert wheel_platforms(DEFAULT_GLIBC) == sglangc.bundle.WHEEL_PLATFORMS
    default = next(p for p in bundle_command.params if p.name == "glibc").default
    assert default == DEFAULT_GLIBC  # the CLI states it literally (no import of bundle.py for --help)


@pytest.mark.parametrize("bad", ["2.16", "2.5", "3.0", "1.40", "2", "2.x", "", "2.35.1", "v2.35"])
def test_wheel_platforms_refuses_a_bad_glibc(bad: str) -> None:
    with pytest.raises(UsageError, match=r"--glibc"):
        wheel_platforms(bad)


@pytest.mark.parametrize(
    ("filename", "needs"),
    [
        ("sglang-0.5.23-cp312-cp312-manylinux_2_34_x86_64.whl", (2, 34)),
        ("torch-2.9.1+cu129-cp312-cp312-manylinux_2_28_x86_64.whl", (2, 28)),
        ("nvidia_nccl_cu13-2.30.7-py3-none-manylinux_2_18_x86_64.whl", (2, 18)),
        ("numpy-2.1.0-cp312-cp312-manylinux_2_17_x86_64.manylinux2014_x86_64.whl", (2, 17)),
        ("cuda_bindings-12.9.4-cp312-cp312-manylinux_2_24_x86_64.manylinux_2_28_x86_64.whl", (2, 24)),
        ("nvidia_nvjitlink_cu12-12.8.93-py3-none-manylinux2010_x86_64.manylinux_2_12_x86_64.whl", (2, 12)),
        ("old-1.0-cp312-cp312-manylinux1_x86_64.whl", (2, 5)),
        ("sglang_kernel-0.4.1-cp310-abi3-manylinux2014_x86_64.whl", (2, 17)),
        ("sglang-0.5.10.post1-py3-none-any.whl", None),
        ("torch-2.5.1+cu124-cp312-cp312-linux_x86_64.whl", None),
        ("pyyaml-6.0.2-cp312-cp312-musllinux_1_1_x86_64.whl", None),
    ],
)
def test_required_glibc(filename: str, needs: tuple[int, int] | None) -> None:
    assert required_glibc(filename) == needs


def test_every_tag_given_is_one_the_target_runs() -> None:
    for tag in wheel_platforms("2.35"):
        needs = required_glibc(f"x-1.0-cp312-cp312-{tag}.whl")
        assert needs is None or needs <= (2, 35), tag
    assert required_glibc("x-1.0-cp312-cp312-manylinux_2_36_x86_64.whl") > (2, 35)


@pytest.mark.parametrize(
    ("names", "major"),
    [
        (["torch-2.9.1+cu129-cp312-cp312-manylinux_2_28_x86_64.whl"], 12),
        (["torch-2.14.1+cu130-cp312-cp312-manylinux_2_28_x86_64.whl"], 13),
        (["torch-2.7.1+cu118-cp312-cp312-manylinux_2_28_x86_64.whl"], 11),
        (
            [
                "torch-2.14.1-cp312-cp312-manylinux_2_28_x86_64.whl",
                "nvidia_nccl_cu13-2.30.7-py3-none-manylinux_2_18_x86_64.whl",
                "nvidia_cuda_runtime-13.0.96-py3-none-manylinux2014_x86_64.manylinux_2_17_x86_64.whl",
            ],
            13,
        ),
        # PyPI's CUDA 12 torch with a CUDA 13 library another package pulled in: torch's runtime decides.
        (
            [
                "torch-2.9.1-cp312-cp312-manylinux_2_28_x86_64.whl",
                "nvidia_cuda_runtime_cu12-12.8.90-py3-none-manylinux2014_x86_64.manylinux_2_17_x86_64.whl",
                "nvidia_cutlass_dsl_libs_cu13-4.8.1-cp312-cp312-manylinux_2_28_x86_64.whl",
            ],
            12,
        ),
        (["nvidia_cublas_cu12-12.8.4.1-py3-none-manylinux_2_27_x86_64.whl"], 12),
        (["cuda_python-12.9.0-py3-none-any.whl", "sglang-0.5.10.post1-py3-none-any.whl"], 12),
        (["torch-2.9.1+cpu-cp312-cp312-manylinux_2_28_x86_64.whl", "sglang-0.5.10.post1-py3-none-any.whl"], None),
        ([], None),
    ],
)
def test_cuda_major(names: list[str], major: int | None) -> None:
    assert cuda_major(names) == major


def test_bundle_metadata() -> None:
    names = [
        "sglang-0.5.23-cp312-cp312-manylinux_2_34_x86_64.whl",
        "nvidia_nccl_cu13-2.30.7-py3-none-manylinux_2_18_x86_64.whl",
        "pyyaml-6.0.2-cp312-cp312-manylinux_2_17_x86_64.manylinux2014_x86_64.whl",
    ]
    text = bundle_metadata("wheelhouse", "latest", "3.12", names).decode()
    assert json.loads(text) == {
        "format": 1,
        "kind": "wheelhouse",
        "environment": "latest",
        "python": "3.12",
        "glibc": "2.34",
        "cuda": 13,
        "sglangc_version": sglangc.__version__,
    }
    # One field a line: what the installer's bash reads.
    assert re.search(r'^  "glibc": "2\.34",$', text, re.M) and re.search(r'^  "cuda": 13,$', text, re.M)
    pure = json.loads(bundle_metadata("pixi-pack", "default", None, ["a-1-py3-none-any.whl"]))
    assert pure["glibc"] is None and pure["cuda"] is None and pure["python"] is None


def test_a_wheel_needing_more_than_the_target_is_an_error() -> None:
    _check_glibc(["sglang-0.5.23-cp312-cp312-manylinux_2_34_x86_64.whl"], "2.34")
    with pytest.raises(BundleError) as caught:
        _check_glibc(["a-1-py3-none-any.whl", "sglang-0.5.23-cp312-cp312-manylinux_2_34_x86_64.whl"], "2.31")
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith("sglang 0.5.23 needs glibc 2.34") and "the target has 2.31" in message


def test_glibc_option_is_checked_first(host: Host) -> None:
    for bad in ("2.16", "two"):
        result = host.bundle("--kind", "wheelhouse", "--glibc", bad, "-o", str(host.tmp / "x.tar"))
        assert result.exit_code == 2, result.stderr
        assert "--glibc" in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert host.runs() == [] and not list(host.tmp.glob("*.tar"))


def test_only_is_for_wheelhouses_and_names_a_dependency(host: Host) -> None:
    result = host.bundle("--only", "sglang")
    assert result.exit_code == 2 and "--only: only with --kind wheelhouse" in result.stderr
    result = host.bundle("--kind", "wheelhouse", "--only", "sglang", "--only", "vllm")
    assert result.exit_code == 2 and "--only vllm: not a PyPI dependency of environment 'default'" in result.stderr


def test_pixi_pack_bundle_carries_bundle_json_last(host: Host) -> None:
    result = host.bundle()
    assert result.exit_code == 0, result.stderr
    out = host.tmp / "sglang-offline-bundle-default.tar"
    names = members(out)
    assert names[:2] == ["pixi-pack.json", "environment.yml"] and names[-1] == "bundle.json"
    meta = json.loads(read_member(out, "bundle.json"))
    assert meta["format"] == 1 and meta["kind"] == "pixi-pack" and meta["environment"] == "default"
    assert meta["python"] == "3.12" and meta["sglangc_version"] == sglangc.__version__
    assert meta["glibc"] is None  # the stand-in's wheels are all py3-none-any
    assert meta["cuda"] == 12  # cuda-python 12.9.0 / cuda-bindings 12.9.4, as the template pins


def test_pixi_pack_wheel_needing_a_newer_glibc(host: Host) -> None:
    """pixi chooses wheels by its own system-requirements: a wheel beyond --glibc fails the bundle, by name."""
    (host.wheels / "sglang-0.5.10.post1-py3-none-any.whl").rename(
        host.wheels / "sglang-0.5.10.post1-cp312-cp312-manylinux_2_34_x86_64.whl"
    )
    out = host.tmp / "b.tar"
    result = host.bundle("--glibc", "2.31", "-o", str(out))
    assert result.exit_code == 1
    assert "sglang 0.5.10.post1 needs glibc 2.34" in result.stderr and "--glibc 2.34" in result.stderr
    assert not out.exists()
    shutil.rmtree(host.tmp / "cache" / "pixi-pack", ignore_errors=True)
    result = host.bundle("--glibc", "2.35", "-o", str(out))
    assert result.exit_code == 0, result.stderr
    assert json.loads(read_member(out, "bundle.json"))["glibc"] == "2.34"
