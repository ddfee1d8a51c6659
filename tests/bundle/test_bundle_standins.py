"""The pixi / pixi-pack stand-ins follow the documented command lines and archive layout (no network).

Includes the container's re-lock route: channels patched to the pack's ./channel, find-links to its ./pypi,
`pixi lock --offline`, `pixi install --frozen -e ENV --manifest-path P`.
"""

from __future__ import annotations

import json
import os
import subprocess
from importlib import resources
from pathlib import Path

from .conftest import FAKES, Host, extract, make_wheel, members, read_member

TEMPLATE = (resources.files("sglangc.emit_templates") / "pixi" / "pixi.toml").read_text("utf-8")


def run(*argv: str, cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(FAKES / argv[0]), *argv[1:]], cwd=cwd, capture_output=True, text=True, env={**os.environ, **env}
    )


def project(host: Host, text: str = TEMPLATE) -> Path:
    directory = host.tmp / "project"
    directory.mkdir(exist_ok=True)
    (directory / "pixi.toml").write_text(text)
    return directory


def test_versions(host: Host) -> None:
    assert run("pixi", "--version", cwd=host.tmp).stdout == "pixi 0.77.0\n"
    assert run("pixi-pack", "--version", cwd=host.tmp).stdout == "pixi-pack 0.7.10\n"
    unsupported = run("pixi", "run", "verify", cwd=host.tmp)
    assert unsupported.returncode == 2 and "invalid choice: 'run'" in unsupported.stderr
    assert run("pixi-pack", "--create-executable", cwd=host.tmp).returncode == 2


def test_lock_check_and_staleness(host: Host) -> None:
    p = project(host)
    missing = run("pixi", "lock", "--check", "--manifest-path", str(p / "pixi.toml"), cwd=host.tmp)
    assert missing.returncode == 1 and not (p / "pixi.lock").exists()
    assert run("pixi", "lock", cwd=p).returncode == 0
    lock = json.loads((p / "pixi.lock").read_text())
    assert sorted(lock["environments"]) == ["default", "latest"]
    assert run("pixi", "lock", "--check", "-m", str(p), cwd=host.tmp).returncode == 0
    again = run("pixi", "lock", cwd=p)
    assert "already up-to-date" in again.stderr
    (p / "pixi.toml").write_text(TEMPLATE + "\n# edited\n")
    stale = run("pixi", "lock", "--check", cwd=p)
    assert stale.returncode == 1 and "not up-to-date" in stale.stderr
    assert run("pixi", "install", "--locked", cwd=p).returncode == 1


def test_pack_layout(host: Host) -> None:
    p = project(host)
    assert run("pixi", "lock", cwd=p).returncode == 0
    done = run(
        "pixi-pack",
        "-e",
        "default",
        "-p",
        "linux-64",
        "-o",
        str(host.tmp / "env.tar"),
        "--use-cache",
        str(host.tmp / "c"),
        str(p / "pixi.toml"),
        cwd=host.tmp,
    )
    assert done.returncode == 0, done.stderr
    names = members(host.tmp / "env.tar")
    assert names[:2] == ["pixi-pack.json", "environment.yml"]
    assert read_member(host.tmp / "env.tar", "pixi-pack.json") == (
        b'{"version":"1","pixi-pack-version":"0.7.10","platform":"linux-64"}'
    )
    yml = read_member(host.tmp / "env.tar", "environment.yml").decode()
    assert yml.startswith("channels:\n- ./channel\n- nodefaults\ndependencies:\n")
    assert "- pip:\n  - --no-index\n  - --find-links ./pypi\n" in yml and "  - sglang==0.5.10.post1\n" in yml
    repodata = json.loads(read_member(host.tmp / "env.tar", "channel/noarch/repodata.json"))
    assert sorted(r["name"] for r in repodata["packages.conda"].values()) == ["pip", "supervisor"]
    assert {"channel/linux-64/repodata.json", "pypi/sglang-0.5.10.post1-py3-none-any.whl"} <= set(names)
    assert (host.tmp / "c" / "CACHEDIR.TAG").is_file() and (host.tmp / "c" / "pypi").is_dir()
    assert "downloading" in done.stderr
    again = run("pixi-pack", "-o", str(host.tmp / "env2.tar"), "--use-cache", str(host.tmp / "c"), str(p), cwd=host.tmp)
    assert "downloading" not in again.stderr and "cache hit: noarch/supervisor-" in again.stderr
    assert (host.tmp / "env2.tar").read_bytes() == (host.tmp / "env.tar").read_bytes()
    nolock = run("pixi-pack", str(host.tmp), cwd=host.tmp)
    assert nolock.returncode == 1 and "could not read lockfile" in nolock.stderr


def test_relock_route_offline_install(host: Host) -> None:
    make_wheel(host.wheels, "supervisor-standin-extra", "1.0")  # any other wheel there rides along
    p = project(host)
    assert run("pixi", "lock", cwd=p).returncode == 0
    assert run("pixi-pack", "-o", str(host.tmp / "env.tar"), cwd=p).returncode == 0

    target = extract(host.tmp / "env.tar", host.tmp / "target")
    text = TEMPLATE.replace('channels = ["conda-forge"]', 'channels = ["./channel"]')
    text = text.replace("[pypi-options]\n", '[pypi-options]\nfind-links = [{ path = "./pypi" }]\n')
    (target / "pixi.toml").write_text(text)
    offline = {"PIXI_STANDIN_WHEELS": ""}
    both = run("pixi", "lock", "--offline", "--manifest-path", str(target / "pixi.toml"), cwd=host.tmp, **offline)
    assert both.returncode == 1 and "torch==2.14.1" in both.stderr  # pixi locks every environment
    text = text[: text.index("[feature.latest.")] + '[environments]\ndefault = ["cu12"]\n'
    (target / "pixi.toml").write_text(text)
    locked = run("pixi", "lock", "--offline", "--manifest-path", str(target / "pixi.toml"), cwd=host.tmp, **offline)
    assert locked.returncode == 0, locked.stderr
    lock = json.loads((target / "pixi.lock").read_text())
    conda = [e["conda"] for e in lock["environments"]["default"]["packages"]["linux-64"] if "conda" in e]
    assert conda and all(c.startswith(str(target.resolve()) + "/channel/") for c in conda)  # absolute, as pixi
    pypi = [e["pypi"] for e in lock["environments"]["default"]["packages"]["linux-64"] if "pypi" in e]
    assert pypi and all(x.startswith("./pypi/") for x in pypi)

    installed = run(
        "pixi",
        "install",
        "--frozen",
        "-e",
        "default",
        "--manifest-path",
        str(target / "pixi.toml"),
        cwd=host.tmp,
        **offline,
    )
    assert installed.returncode == 0, installed.stderr
    prefix = target / ".pixi" / "envs" / "default"
    out = subprocess.run(
        [
            str(prefix / "bin" / "python"),
            "-c",
            "import sglang, torch, supervisor_standin_extra; "
            "print(sglang.__version__, torch.__version__, torch.cuda.is_available())",
        ],
        capture_output=True,
        text=True,
    )
    assert out.stdout.split() == ["0.5.10.post1", "2.9.1", "False"], out.stderr
    assert sorted(f.name for f in (prefix / "conda-meta").iterdir()) == [
        "pip-1.0.0-standin_0.json",
        "pixi",
        "python-3.12.0-standin_0.json",
        "pyyaml-1.0.0-standin_0.json",
        "supervisor-1.0.0-standin_0.json",
    ]

    (target / "channel" / "noarch" / "pip-1.0.0-standin_0.conda").unlink()  # a moved or broken channel
    broken = run("pixi", "install", "--frozen", "-e", "default", "-m", str(target), cwd=host.tmp, **offline)
    assert broken.returncode == 1 and "No such file or directory" in broken.stderr
    assert (prefix / "bin" / "python").exists()  # the old environment is untouched by a failed check


def test_offline_refuses_remote_channels(host: Host) -> None:
    p = project(host)
    done = run("pixi", "lock", "--offline", cwd=p)
    assert done.returncode == 1 and "offline" in done.stderr and not (p / "pixi.lock").exists()


def test_failure_injection_counts(host: Host) -> None:
    p = project(host)
    env = {"PIXI_STANDIN_FAIL": "lock", "PIXI_STANDIN_FAIL_TIMES": "1"}
    first = run("pixi", "lock", cwd=p, **env)
    assert first.returncode == 1
    assert first.stderr.splitlines()[-1] == "Error: stand-in failure injected (PIXI_STANDIN_FAIL=lock)"
    assert len(first.stderr.splitlines()) == 20
    assert run("pixi", "lock", cwd=p, **env).returncode == 0
    assert [r["argv"] for r in host.runs()] == [["lock"], ["lock"]]
