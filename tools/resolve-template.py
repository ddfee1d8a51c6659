#!/usr/bin/env python3
"""Check that every environment of the Pixi template resolves on PyPI, as a wheelhouse bundle would get it.

    python tools/resolve-template.py [-e ENV]... [--glibc 2.35] [--index-url URL] [--template DIR]

For each environment (default: all of them): its `pypi-dependencies` plus supervisor and pyyaml (the requirement
set `sglangc bundle --kind wheelhouse` downloads), resolved by pip without installing or downloading wheels:

    pip install --dry-run --ignore-installed --report R.json --only-binary=:all: --python-version <template's>
        --implementation cp --platform <every tag of sglangc.bundle.wheel_platforms(glibc)> ...
        (and --target DIR, which pip before 24 wants with --platform even for a dry run; nothing is written)

pip runs isolated from this machine's pip configuration (no pip.conf, no PIP_* variables: a local find-links dir
or constraints file cannot change the answer), against --index-url (default PyPI). A per-package index the
machine cannot reach (download.pytorch.org from CI) is left out and the same version resolved from --index-url
instead; that is printed. Any conflict, missing wheel or wheel needing a newer glibc than --glibc fails.

Prints one line per environment (packages, highest glibc and CUDA major of the wheels, duration) and exits 0 when
all resolve, 1 when one does not, 2 on bad usage. Needs network to the index; `sglangc` importable.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

PYPI = "https://pypi.org/simple"

try:
    from sglangc import bundle
    from sglangc.errors import UsageError
    from sglangc.pixitemplate import Template
except ImportError:
    sys.exit("resolve-template.py: sglangc is not importable: pip install -e . (in this checkout) first")


def reachable(url: str, timeout: float = 10.0) -> bool:
    """The index answers an HTTP request at all (a 404 of the index root still proves it is reachable)."""
    try:
        with urllib.request.urlopen(urllib.request.Request(url, method="GET"), timeout=timeout):
            return True
    except urllib.error.HTTPError:
        return True
    except (urllib.error.URLError, OSError, ValueError):
        return False


def pip_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIP_")}
    env.update(PIP_CONFIG_FILE=os.devnull, PIP_DISABLE_PIP_VERSION_CHECK="1", PIP_NO_INPUT="1")
    return env


def resolve(template: Template, name: str, glibc: str, index_url: str, out: Path) -> bool:
    env = template.environment(name)
    requirements, indexes = bundle._pip_requirements(template, env)
    python = bundle._python_version(env.conda.get("python"))
    extra: list[str] = []
    for url in dict.fromkeys([*env.pypi_options.get("extra-index-urls", []), *indexes]):
        if reachable(url):
            extra.append(url)
            continue
        pins = [
            f"{pkg}{bundle._pep440(spec.get('version', '*'))}"
            for pkg, spec in env.pypi.items()
            if isinstance(spec, dict) and spec.get("index") == url
        ]
        print(
            f"{name}: {url} cannot be reached: resolving {', '.join(pins) or 'its packages'} from {index_url} "
            "instead (the same version, PyPI's build)",
            flush=True,
        )
    report = out / f"{name}.json"
    argv = [
        sys.executable,
        "-m",
        "pip",
        "install",
        "--dry-run",
        "--ignore-installed",
        "--quiet",
        "--target",
        str(out / f"{name}-target"),
        "--report",
        str(report),
        "--only-binary=:all:",
        "--python-version",
        python,
        "--implementation",
        "cp",
        "--retries",
        "3",
        "--timeout",
        "60",
        "--index-url",
        index_url,
    ]
    for platform in bundle.wheel_platforms(glibc):
        argv += ["--platform", platform]
    for url in extra:
        argv += ["--extra-index-url", url]
    argv += requirements
    print(f"{name}: resolving {' '.join(requirements)} for CPython {python}, Linux x86-64, glibc {glibc}", flush=True)
    started = time.monotonic()
    done = subprocess.run(argv, env=pip_env(), stdin=subprocess.DEVNULL, capture_output=True, text=True)
    seconds = time.monotonic() - started
    if done.returncode != 0:
        tail = (done.stdout + done.stderr).strip().splitlines()[-25:]
        print(f"{name}: FAILED: pip could not resolve it (exit {done.returncode}, {seconds:.1f} s):", flush=True)
        print("\n".join(f"  | {line}" for line in tail), flush=True)
        return False
    installs = json.loads(report.read_text(encoding="utf-8")).get("install", [])
    files = [item["download_info"]["url"].rsplit("/", 1)[-1].split("#")[0] for item in installs]
    problems = [f for f in files if not f.endswith(".whl")]
    problems += [
        f"{f} needs glibc {'.'.join(map(str, need))}"
        for f in files
        if (need := bundle.required_glibc(f)) and need > bundle._glibc(glibc)
    ]
    if problems:
        print(f"{name}: FAILED: {'; '.join(problems)}", flush=True)
        return False
    needs = max(filter(None, map(bundle.required_glibc, files)), default=None)
    versions = {item["metadata"]["name"].lower(): item["metadata"]["version"] for item in installs}
    shown = ", ".join(
        f"{p} {versions[p]}" for p in ("torch", "sglang", "sglang-kernel", "flashinfer-python") if p in versions
    )
    cuda = bundle.cuda_major(files)
    print(
        f"{name}: ok: {len(files)} wheels ({shown}); highest glibc needed "
        f"{'.'.join(map(str, needs)) if needs else 'none'}, CUDA {cuda if cuda is not None else 'unknown'}; "
        f"{seconds:.1f} s",
        flush=True,
    )
    return True


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="resolve-template.py", description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "-e",
        "--environment",
        action="append",
        default=[],
        metavar="ENV",
        help="an environment of the template (repeatable; default: all)",
    )
    parser.add_argument(
        "--glibc",
        default=bundle.DEFAULT_GLIBC,
        metavar="X.Y",
        help=f"the container's glibc (default {bundle.DEFAULT_GLIBC})",
    )
    parser.add_argument("--index-url", default=PYPI, metavar="URL", help=f"the index (default {PYPI})")
    parser.add_argument(
        "--template",
        type=Path,
        metavar="DIR",
        help="a template directory holding pixi.toml (default: the one shipped with sglangc)",
    )
    parser.add_argument("--report-dir", type=Path, metavar="DIR", help="keep pip's reports (<ENV>.json) here")
    args = parser.parse_args(argv)
    try:
        bundle.wheel_platforms(args.glibc)
        template = Template.load(args.template)
        names = args.environment or template.environments()
        for name in names:
            template.environment(name)
    except UsageError as e:
        print(f"resolve-template.py: {e}", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="resolve-template-") as tmp:
        out = args.report_dir or Path(tmp)
        out.mkdir(parents=True, exist_ok=True)
        results = [resolve(template, name, args.glibc, args.index_url, out) for name in names]
    return 0 if all(results) else 1


if __name__ == "__main__":
    sys.exit(main())
