"""`sglangc bundle --kind wheelhouse`: real pip download from a local --find-links dir (--no-index), real offline
install of the result into a real venv. The supervisor and pyyaml wheels come from PyPI once per session."""

from __future__ import annotations

import hashlib
import re
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import Result

from sglangc.bundle import Template, _pip_requirements, _python_version
from support import not_here

from .conftest import PY, X86_64, Host, clean_pip_env, extract, make_wheel, members, read_member, sha256sum_check

TINY = "0.0.1.post7"


def tiny_template(host: Host) -> Path:
    """A template whose `tiny` environment pins the tiny sglang built here, for this interpreter's Python."""
    directory = host.tmp / "tiny-template"
    directory.mkdir()
    (directory / "pixi.toml").write_text(f"""\
[workspace]
name = "tiny"
channels = ["conda-forge"]
platforms = ["linux-64"]

[dependencies]
python = "{PY}.*"
pip = "*"
supervisor = "*"
pyyaml = "*"

[feature.tiny.pypi-dependencies]
sglang = "=={TINY}"

[feature.other.pypi-dependencies]
sglang = "==9.9.9"

[environments]
tiny = ["tiny"]
other = ["other"]
""")
    return directory


@pytest.fixture
def links(host: Host, pypi_wheels: Path) -> Path:
    """A --find-links dir: the tiny sglang plus supervisor, pyyaml (and their dependencies) from PyPI."""
    directory = host.tmp / "links"
    make_wheel(directory, "sglang", TINY, body="SGLANG_IS_TINY = True\n")
    for wheel in pypi_wheels.glob("*.whl"):
        (directory / wheel.name).write_bytes(wheel.read_bytes())
    host.monkeypatch.setenv("PIP_CONFIG_FILE", "/dev/null")  # the machine's own indexes / find-links stay out
    for name in ("PIP_FIND_LINKS", "PIP_INDEX_URL", "PIP_EXTRA_INDEX_URL", "PIP_CONSTRAINT", "PIP_NO_INDEX"):
        host.monkeypatch.delenv(name, raising=False)
    return directory


def wheelhouse(host: Host, links: Path, *args: str, environment: str = "tiny") -> tuple[Result, Path]:
    out = host.tmp / "wh.tar"
    result = host.bundle(
        "--kind",
        "wheelhouse",
        "--template",
        str(host.tmp / "tiny-template"),
        "-e",
        environment,
        "--find-links",
        str(links),
        "--no-index",
        "-o",
        str(out),
        *args,
    )
    return result, out


def test_wheelhouse_layout_and_offline_install(host: Host, links: Path) -> None:
    tiny_template(host)
    result, out = wheelhouse(host, links)
    assert result.exit_code == 0, result.stderr
    assert sha256sum_check(out).returncode == 0
    assert f"sha256 {hashlib.sha256(out.read_bytes()).hexdigest()}" in result.stdout
    assert "kind wheelhouse  environment tiny" in result.stdout

    names = members(out)
    assert names[:3] == ["bundle.json", "requirements.txt", "wheels"]
    wheels = names[3:]
    assert wheels == sorted(wheels) and all(re.fullmatch(r"wheels/[^/]+\.whl", n) for n in wheels)
    lines = read_member(out, "requirements.txt").decode().splitlines()
    assert lines == sorted(lines) and len(lines) == len(wheels)
    assert all(re.fullmatch(r"[a-z0-9]+(-[a-z0-9]+)*==[A-Za-z0-9.+!_]+", line) for line in lines), lines
    pins = dict(line.split("==") for line in lines)
    assert pins["sglang"] == TINY and "supervisor" in pins and "pyyaml" in pins
    with open(out, "rb") as f:
        assert f.read(262)[257:262] == b"ustar"  # a plain tar, not compressed

    if not X86_64:
        not_here("the wheelhouse is for Linux x86-64; this machine cannot install it")
    root = extract(out, host.tmp / "unpacked")
    venv = host.tmp / "venv"
    env = clean_pip_env()
    # A venv without pip of its own: this pip installs into it the bundle's wheels, and nothing else.
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, env=env)
    install = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "--python",
            str(venv / "bin" / "python"),
            "install",
            "--no-index",
            "--find-links",
            "wheels",
            "-r",
            "requirements.txt",
        ],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
    )
    assert install.returncode == 0, install.stdout + install.stderr
    code = "import sglang, yaml, supervisor.supervisord; print(sglang.__version__, sglang.SGLANG_IS_TINY)"
    check = subprocess.run([str(venv / "bin" / "python"), "-c", code], capture_output=True, text=True, env=env)
    assert check.stdout.strip() == f"{TINY} True", check.stderr
    assert (venv / "bin" / "supervisord").exists()


def test_wheelhouse_is_deterministic(host: Host, links: Path) -> None:
    tiny_template(host)
    first, out = wheelhouse(host, links)
    assert first.exit_code == 0, first.stderr
    digest = hashlib.sha256(out.read_bytes()).hexdigest()
    second, out = wheelhouse(host, links)
    assert second.exit_code == 0, second.stderr
    assert hashlib.sha256(out.read_bytes()).hexdigest() == digest


def test_wheelhouse_pip_failure_shows_its_last_lines(host: Host, links: Path) -> None:
    tiny_template(host)
    result, out = wheelhouse(host, links, "--retries", "0", environment="other")
    assert result.exit_code == 1
    assert "sglangc: pip download failed (exit 1); its last" in result.stderr
    assert "sglang==9.9.9" in result.stderr  # pip's own words about what it could not find
    assert not out.exists() and not list(host.tmp.glob(".wh.tar*"))


def test_packaged_template_pip_set() -> None:
    template = Template.load(None)
    default, indexes = _pip_requirements(template, template.environment("default"))
    assert default == [
        "cuda-bindings==12.9.4",
        "cuda-python==12.9.0",
        "flashinfer-python==0.6.7.post3",
        "huggingface-hub",
        "modelscope",
        "pyyaml",
        "sglang==0.5.10.post1",
        "sglang-kernel==0.4.1",
        "smg==1.13.0",
        "supervisor",
        "torch==2.9.1",
    ]
    assert indexes == ["https://download.pytorch.org/whl/cu129"]
    latest, indexes = _pip_requirements(template, template.environment("latest"))
    assert "flashinfer-python[cu13]==0.7.2" in latest and "sglang==0.5.23" in latest and "smg==1.13.0" in latest
    assert {"huggingface-hub", "modelscope"} <= set(latest)  # download-models.sh's clients
    assert indexes == ["https://download.pytorch.org/whl/cu130"]
    assert _python_version(template.environment("default").conda["python"]) == "3.12"


@pytest.mark.parametrize(
    ("spec", "version"),
    [("3.12.*", "3.12"), ("==3.11", "3.11"), ("3.13.1", "3.13"), (">=3.11,<3.13", "3.12"), (None, "3.12")],
)
def test_python_version_of_the_template(spec: str | None, version: str) -> None:
    assert _python_version(spec) == version
