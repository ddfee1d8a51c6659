"""Host side of the offline install: build the SGLang environment bundle the container installs.

Two kinds (README, "Building the bundle on the host"):
- `pixi-pack` (default): `pixi lock` the Pixi template (on a temporary copy, so the template never gets a
  `.pixi/`), then `pixi-pack` one environment for linux-64 with a persistent `--use-cache`.
- `wheelhouse`: `pip download` of the environment's pinned PyPI set for Linux x86-64 with the target's glibc
  (`wheel_platforms`) into `wheels/`, a `requirements.txt` of `name==version` lines, packed as one uncompressed
  tar with a deterministic order.

Either kind carries `bundle.json` at the archive's root (`bundle_metadata`: kind, environment, Python, the highest
glibc a wheel needs, the CUDA major of its wheels, sglangc's version); the installer's preflight compares it with
the container. A wheelhouse has it first; a pixi-pack archive gets it appended as its last member (pixi-unpack
reads only pixi-pack.json, environment.yml, channel/ and pypi/, and the installer's re-lock route only the last
three).

Either way FILE appears atomically (temporary name in its directory, then rename) next to `FILE.sha256` in the
format `sha256sum -c` reads. `build()` is the one entry point; progress goes to the `log` callable, failures are
`SglangcError`s whose `exit_code` the CLI exits with.
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import hashlib
import io
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
import typing as t
from pathlib import Path

from sglangc.errors import SglangcError, UsageError
from sglangc.pixitemplate import PLATFORM, Environment, Template, packaged_template

KINDS = ("pixi-pack", "wheelhouse")
DEFAULT_RETRIES = 2
TAIL_LINES = 15
RETRY_DELAY_SECONDS = 2.0  # first retry waits this long, each later one twice as long (at most 30 s)
REQUIRED = ("sglang", "supervisor", "pyyaml")  # every bundle brings these besides SGLang

# The container's glibc the wheels must run with: the CUDA 12.x images on Ubuntu 22.04 that infer-dev is built on
# have 2.35 (Ubuntu 20.04: 2.31, 24.04: 2.39). manylinux_2_17 (manylinux2014) is the oldest tag of current wheels.
DEFAULT_GLIBC = "2.35"
MIN_GLIBC = (2, 17)
_LEGACY_MANYLINUX = {"manylinux2014": (2, 17), "manylinux2010": (2, 12), "manylinux1": (2, 5)}
DEFAULT_PYTHON = "3.12"
BUNDLE_JSON = "bundle.json"

HOW_TO_GET = {
    "pixi": "install it from https://pixi.sh (curl -fsSL https://pixi.sh/install.sh | bash)",
    "pixi-pack": "install it with `pixi global install pixi-pack pixi-unpack`, or take the static binaries "
    "from https://github.com/Quantco/pixi-pack/releases",
}

# Tar member metadata of a wheelhouse: fixed, so equal inputs give equal bytes (and no 1970 warnings from tar).
_TAR_MTIME = 1577836800  # 2020-01-01T00:00:00Z


def wheel_platforms(glibc: str | tuple[int, int]) -> tuple[str, ...]:
    """pip `--platform` tags of a Linux x86-64 machine with this glibc (`"2.35"` or `(2, 35)`), most preferred
    first: manylinux_2_N for N from its minor down to 17 (pip does not expand one manylinux tag to the older
    ones), the legacy aliases manylinux2014 (2.17), manylinux2010 (2.12), manylinux1 (2.5), then linux_x86_64
    (download.pytorch.org tagged torch that way before 2.6). A malformed glibc or one below 2.17 is a UsageError.
    """
    major, minor = _glibc(glibc)
    return (
        *(f"manylinux_{major}_{n}_x86_64" for n in range(minor, MIN_GLIBC[1] - 1, -1)),
        *(f"{alias}_x86_64" for alias in _LEGACY_MANYLINUX),
        "linux_x86_64",
    )


def required_glibc(wheel_filename: str) -> tuple[int, int] | None:
    """The glibc a wheel needs, from its platform tag(s): `...-manylinux_2_28_x86_64.whl` -> (2, 28), the legacy
    aliases as their PEP 600 equivalents; with several tags (`manylinux_2_17_x86_64.manylinux2014_x86_64`) the
    lowest, since any one of them suffices. None when no tag names a glibc (`any`, `linux_x86_64`)."""
    tags = wheel_filename.removesuffix(".whl").split("-")[-1].split(".")
    needs: list[tuple[int, int]] = []
    for tag in tags:
        if found := re.fullmatch(r"manylinux_(\d+)_(\d+)_\w+", tag):
            needs.append((int(found[1]), int(found[2])))
        elif (legacy := tag.split("_", 1)[0]) in _LEGACY_MANYLINUX:
            needs.append(_LEGACY_MANYLINUX[legacy])
        elif tag == "any" or tag.startswith("linux_"):
            return None
    return min(needs, default=None)


def cuda_major(wheel_filenames: t.Iterable[str]) -> int | None:
    """The CUDA major the wheels were built for, when their names tell; what the driver must support. Asked in
    this order, the first that answers decides: torch's `+cuNNN` local version (download.pytorch.org: cu129 ->
    12); the CUDA runtime torch brings (`nvidia-cuda-runtime-cu12`, or `nvidia-cuda-runtime` 13.0.96 -> 13);
    else the highest of any `nvidia-*-cuNN` package and the major of cuda-python / cuda-bindings. (A CUDA 12
    torch may well come with an `nvidia-*-cu13` library some other package asks for: torch is what needs the
    driver.)"""
    torch: list[int] = []
    runtime: list[int] = []
    other: list[int] = []
    for filename in wheel_filenames:
        name, version = _wheel_name_version(filename)
        major = version.split(".")[0]
        if name == "torch" and (local := re.search(r"\+cu(\d{2,})", version)):
            torch.append(int(local[1][:-1]))
        if suffix := re.fullmatch(r"nvidia-.+-cu(\d+)", name):
            (runtime if name.startswith("nvidia-cuda-runtime-") else other).append(int(suffix[1]))
        elif name == "nvidia-cuda-runtime" and major.isdigit():
            runtime.append(int(major))
        elif name in ("cuda-python", "cuda-bindings") and major.isdigit():
            other.append(int(major))
    return max(torch or runtime or other, default=None)


def bundle_metadata(kind: str, environment: str, python: str | None, wheel_filenames: t.Sequence[str]) -> bytes:
    """`bundle.json` (format 1): what the bundle needs of the container, for the installer's preflight."""
    from sglangc import __version__

    glibc = max(filter(None, map(required_glibc, wheel_filenames)), default=None)
    data = {
        "format": 1,
        "kind": kind,
        "environment": environment,
        "python": python,
        "glibc": f"{glibc[0]}.{glibc[1]}" if glibc else None,
        "cuda": cuda_major(wheel_filenames),
        "sglangc_version": __version__,
    }
    return (json.dumps(data, indent=2) + "\n").encode()


def _glibc(value: str | tuple[int, int]) -> tuple[int, int]:
    if isinstance(value, tuple):
        major, minor = value
    else:
        found = re.fullmatch(r"\s*(\d+)\.(\d+)\s*", str(value))
        if not found:
            raise UsageError(
                f"--glibc {value!r}: not a glibc version (MAJOR.MINOR, e.g. {DEFAULT_GLIBC}; "
                "`getconf GNU_LIBC_VERSION` in the container prints it)"
            )
        major, minor = int(found[1]), int(found[2])
    if major != MIN_GLIBC[0] or minor < MIN_GLIBC[1]:
        raise UsageError(
            f"--glibc {major}.{minor}: sglangc bundles for glibc 2.17 or newer (manylinux_2_17 is the "
            "oldest tag of the wheels SGLang needs)"
        )
    return major, minor


WHEEL_PLATFORMS = wheel_platforms(DEFAULT_GLIBC)


class BundleError(SglangcError):
    """Building the bundle failed (a tool failed or is missing, or the result lacks something)."""


class ToolMissing(BundleError):
    def __init__(self, tool: str) -> None:
        super().__init__(f"{tool} not found on PATH: {HOW_TO_GET[tool]}")


class ToolFailed(BundleError):
    def __init__(self, label: str, returncode: int, attempts: int, tail: t.Sequence[str]) -> None:
        tries = f" after {attempts} attempts" if attempts > 1 else ""
        head = f"{label} failed (exit {returncode}){tries}"
        if not tail:
            super().__init__(f"{head}; it printed nothing")
            return
        lines = "\n".join(f"  | {line}" for line in tail)
        super().__init__(f"{head}; its last {len(tail)} lines:\n{lines}")


@dataclasses.dataclass(frozen=True)
class BundleRequest:
    """What to build. None means the documented default (see `build`)."""

    kind: str = "pixi-pack"
    template: Path | None = None  # a directory holding pixi.toml; None: the template shipped with sglangc
    environment: str = "default"
    output: Path | None = None  # None: ./sglang-offline-bundle-<environment>.tar
    cache_dir: Path | None = None  # None: $XDG_CACHE_HOME/sglangc or ~/.cache/sglangc
    rattler_config: Path | None = None  # pixi-pack only: mirrors, S3, concurrency
    retries: int = DEFAULT_RETRIES
    find_links: tuple[str, ...] = ()  # wheelhouse only
    index_url: str | None = None  # wheelhouse only
    no_index: bool = False  # wheelhouse only
    glibc: str = DEFAULT_GLIBC  # the container's: which manylinux tags a wheel may have
    only: tuple[str, ...] = ()  # wheelhouse only: just these packages of the environment, without dependencies
    verbose: bool = False  # copy the tools' own output to the log


@dataclasses.dataclass(frozen=True)
class BuiltBundle:
    """What was built."""

    path: Path
    size: int
    sha256: str
    kind: str
    environment: str

    def summary(self) -> str:
        return (
            f"{self.path}  {_human(self.size)} ({self.size} bytes)  sha256 {self.sha256}  "
            f"kind {self.kind}  environment {self.environment}"
        )


Log = t.Callable[[str], None]


def default_cache_dir() -> Path:
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "sglangc"


def default_output(environment: str) -> Path:
    return Path(f"sglang-offline-bundle-{environment}.tar")


def build(request: BundleRequest, log: Log) -> BuiltBundle:
    """Build the bundle `request` asks for; return where it is, its size and sha256."""
    if request.kind not in KINDS:
        raise UsageError(f"unknown bundle kind {request.kind!r}: use one of {', '.join(KINDS)}")
    if request.retries < 0:
        raise UsageError("--retries must be 0 or more")
    wheel_options = [
        o
        for o, given in (
            ("--find-links", request.find_links),
            ("--index-url", request.index_url),
            ("--no-index", request.no_index),
        )
        if given
    ]
    if request.kind == "pixi-pack" and wheel_options:
        raise UsageError(
            f"{', '.join(wheel_options)}: only with --kind wheelhouse (pixi-pack reads the "
            "channels and indexes of the template; mirrors go in --rattler-config)"
        )
    if request.kind == "wheelhouse" and request.rattler_config is not None:
        raise UsageError(
            "--rattler-config: only with --kind pixi-pack (for a wheelhouse use --index-url, --find-links)"
        )
    if request.no_index and not request.find_links:
        raise UsageError("--no-index needs --find-links DIR: pip has nowhere else to take wheels from")
    if request.only and request.kind != "wheelhouse":
        raise UsageError("--only: only with --kind wheelhouse (pixi-pack packs a whole locked environment)")
    _glibc(request.glibc)

    template = Template.load(request.template)
    env = template.environment(request.environment)
    output = Path(os.path.abspath(request.output or default_output(request.environment)))
    if output.is_dir():
        raise UsageError(f"--output {output}: is a directory; give a file name")
    cache = Path(os.path.abspath(request.cache_dir or default_cache_dir()))

    runner = _Runner(log=log, verbose=request.verbose, retries=request.retries)
    partial = output.with_name(f".{output.name}.partial-{os.getpid()}")
    started = time.monotonic()
    try:
        output.parent.mkdir(parents=True, exist_ok=True)
        (cache / "tmp").mkdir(parents=True, exist_ok=True)
        with _exclusive(
            cache / "locks" / (hashlib.sha256(str(output).encode()).hexdigest()[:16] + ".lock"),
            lambda: log(f"waiting for another sglangc bundle writing {output}"),
        ):
            work = Path(tempfile.mkdtemp(prefix="bundle-", dir=cache / "tmp"))
            try:
                if request.kind == "pixi-pack":
                    digest, names = _pixi_pack(request, template, env, cache, work, partial, runner, log)
                else:
                    digest, names = _wheelhouse(request, template, env, cache, work, partial, runner, log)
                if not request.only:  # a partial wheelhouse was asked for
                    _require_contents(names, request.kind)
                size = partial.stat().st_size
                _publish(partial, output, digest)
            finally:
                partial.unlink(missing_ok=True)
                shutil.rmtree(work, ignore_errors=True)
    except OSError as e:  # disk full, permissions, a read-only output directory: the user's to fix, not a bug
        where = f"{e.filename}: " if e.filename else ""
        raise BundleError(f"{where}{e.strerror or e}") from None
    log(f"wrote {output} and {output.name}.sha256 in {time.monotonic() - started:.1f} s")
    return BuiltBundle(path=output, size=size, sha256=digest, kind=request.kind, environment=request.environment)


@contextlib.contextmanager
def _exclusive(path: Path, on_wait: t.Callable[[], None]) -> t.Iterator[None]:
    """An flock on `path`: a second bundle of the same FILE waits instead of interleaving FILE and FILE.sha256."""
    import fcntl

    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            on_wait()
            fcntl.flock(handle, fcntl.LOCK_EX)
        yield


def _copy_template(template: Template, dest: Path) -> None:
    """The template's files into `dest`, never its `.pixi/` (pixi's own state: environments, caches)."""
    if template.directory is not None:
        shutil.copytree(template.directory, dest, ignore=shutil.ignore_patterns(".pixi"), symlinks=True)
        return

    def copy(node: t.Any, to: Path) -> None:
        to.mkdir(parents=True, exist_ok=True)
        for child in node.iterdir():
            if child.name in (".pixi", "__pycache__"):
                continue
            if child.is_dir():
                copy(child, to / child.name)
            else:
                (to / child.name).write_bytes(child.read_bytes())

    copy(packaged_template(), dest)


# --- pixi-pack ------------------------------------------------------------------------------------------------


def _pixi_pack(
    request: BundleRequest,
    template: Template,
    env: Environment,
    cache: Path,
    work: Path,
    partial: Path,
    runner: _Runner,
    log: Log,
) -> tuple[str, list[str]]:
    pixi = _which("pixi")
    pixi_pack = _which("pixi-pack")
    project = work / "project"
    _copy_template(template, project)
    manifest = project / "pixi.toml"
    lock = project / "pixi.lock"
    log(f"working on a copy of {template.where} in {project}")
    # Mirrors and the like: --rattler-config, else the template's own .pixi/config.toml; pixi reads it from
    # <workspace>/.pixi/config.toml, pixi-pack from --config.
    local_config = template.directory / ".pixi" / "config.toml" if template.directory is not None else None
    config = request.rattler_config or (local_config if local_config and local_config.is_file() else None)
    if config is not None:
        (project / ".pixi").mkdir(exist_ok=True)
        shutil.copyfile(config, project / ".pixi" / "config.toml")

    # The packaged template ships without a lock (pixi is not available where sglangc is built): keep the one
    # made here in the cache, keyed by the manifest's bytes, so the next bundle need not solve again.
    saved = cache / "pixi-lock" / hashlib.sha256(template.text.encode()).hexdigest()[:16] / "pixi.lock"
    if template.directory is None and not lock.exists() and saved.is_file():
        shutil.copyfile(saved, lock)
        log(f"using the pixi.lock cached at {saved}")

    fresh = False
    if lock.exists():
        check = runner.run(
            [pixi, "lock", "--check", "--manifest-path", str(manifest)],
            label="pixi lock --check",
            cwd=project,
            retry=False,
        )
        fresh = check == 0
        log("pixi.lock is up to date" if fresh else "pixi.lock is stale (pixi lock --check failed): locking again")
    else:
        log("no pixi.lock: locking (pixi lock)")
    if not fresh:
        runner.run([pixi, "lock", "--manifest-path", str(manifest)], label="pixi lock", cwd=project)
        if not lock.is_file():
            raise BundleError("pixi lock succeeded but wrote no pixi.lock")
        if template.directory is not None:
            try:
                _atomic_copy(lock, template.directory / "pixi.lock")
                log(f"wrote the new lock to {template.directory / 'pixi.lock'}")
            except OSError as e:
                log(
                    f"warning: could not write the new lock to {template.directory / 'pixi.lock'} "
                    f"({e.strerror or e}); bundling with it anyway"
                )
        else:
            log(
                f"the packaged template is not modified; the new lock is cached at {saved} "
                "(with --template DIR it is written beside the template)"
            )
    if template.directory is None:
        _atomic_copy(lock, saved)

    argv = [pixi_pack, "--environment", env.name, "--platform", PLATFORM, "--use-cache", str(cache / "pixi-pack")]
    if config is not None:
        argv += ["--config", str(Path(os.path.abspath(config)))]
    argv += ["--output-file", str(partial), str(manifest)]
    log(f"packing environment {env.name!r} for {PLATFORM} (pixi-pack, cache {cache / 'pixi-pack'})")
    runner.run(argv, label="pixi-pack", cwd=project, before_attempt=lambda: partial.unlink(missing_ok=True))
    if not partial.is_file():
        raise BundleError(f"pixi-pack succeeded but wrote no {partial}")
    log("checking the archive, adding bundle.json and hashing it")
    members = _list_tar(partial)
    missing = [m for m in ("pixi-pack.json", "environment.yml") if m not in members]
    if missing:
        raise BundleError(f"pixi-pack wrote an archive without {', '.join(missing)}: not a pixi-pack archive")
    if BUNDLE_JSON in members:
        raise BundleError(f"pixi-pack wrote an archive that already holds {BUNDLE_JSON}")
    conda = [Path(m).name for m in members if m.startswith("channel/") and m.endswith((".conda", ".tar.bz2"))]
    wheels = [Path(m).name for m in members if m.startswith("pypi/") and m.endswith(".whl")]
    _check_glibc(wheels, request.glibc)
    pythons = [_conda_version(c) for c in conda if _conda_name(c) == "python"]
    python = _python_version(pythons[0]) if pythons else _python_version(env.conda.get("python"))
    _append_member(partial, BUNDLE_JSON, bundle_metadata("pixi-pack", env.name, python, wheels))
    digest, _ = _scan_tar(partial)
    return digest, [*map(_conda_name, conda), *(_wheel_name_version(w)[0] for w in wheels)]


def _conda_name(member: str) -> str:
    base = Path(member).name.removesuffix(".conda").removesuffix(".tar.bz2")
    return _normalise(base.rsplit("-", 2)[0])


def _conda_version(member: str) -> str:
    parts = Path(member).name.removesuffix(".conda").removesuffix(".tar.bz2").rsplit("-", 2)
    return parts[1] if len(parts) == 3 else ""


def _append_member(path: Path, name: str, data: bytes) -> None:
    """One more file at the end of the (uncompressed) tar at `path`, with the fixed member metadata."""
    with tarfile.open(path, "a") as tar:
        tar.addfile(_tar_info(name, tarfile.REGTYPE, len(data)), io.BytesIO(data))


# --- wheelhouse -----------------------------------------------------------------------------------------------


def _wheelhouse(
    request: BundleRequest,
    template: Template,
    env: Environment,
    cache: Path,
    work: Path,
    partial: Path,
    runner: _Runner,
    log: Log,
) -> tuple[str, list[str]]:
    requirements, extra_indexes = _pip_requirements(template, env, request.only)
    python_version = _python_version(env.conda.get("python"))
    options = env.pypi_options
    argv = [
        sys.executable,
        "-m",
        "pip",
        "download",
        "--disable-pip-version-check",
        "--no-input",
        "--progress-bar",
        "off",
        "--dest",
        str(work / "wheels"),
        "--only-binary=:all:",
        "--python-version",
        python_version,
        "--implementation",
        "cp",
        "--cache-dir",
        str(cache / "pip"),
    ]
    for platform in wheel_platforms(request.glibc):
        argv += ["--platform", platform]
    if request.only:
        argv.append("--no-deps")
    if request.no_index:
        argv.append("--no-index")
    else:
        index_url = request.index_url or options.get("index-url")
        if index_url:
            argv += ["--index-url", index_url]
        for url in _unique([*options.get("extra-index-urls", []), *extra_indexes]):
            argv += ["--extra-index-url", url]
    links = list(request.find_links)
    for entry in options.get("find-links", []):
        if "url" in entry:
            links.append(entry["url"])
        elif "path" in entry and template.directory is not None:
            links.append(str((template.directory / entry["path"]).resolve()))
    for link in _unique(links):
        argv += ["--find-links", os.path.abspath(link) if "://" not in link else link]
    argv += requirements
    if not _pip_available():
        raise BundleError(f"pip is not available for {sys.executable}: install pip into sglangc's environment")
    log(
        f"downloading the wheels of environment {env.name!r} for Linux x86-64 with glibc {request.glibc}, "
        f"CPython {python_version} (pip download{' --no-deps' if request.only else ''}: {' '.join(requirements)})"
    )
    runner.run(argv, label="pip download", cwd=work)

    wheels = sorted((work / "wheels").iterdir(), key=lambda p: p.name)
    not_wheels = [p.name for p in wheels if p.suffix != ".whl"]
    if not_wheels:
        raise BundleError(f"pip download brought files that are not wheels: {', '.join(not_wheels)}")
    pins: dict[str, str] = {}
    for wheel in wheels:
        name, version = _wheel_name_version(wheel.name)
        if pins.get(name, version) != version:
            raise BundleError(f"pip download brought two versions of {name}: {pins[name]} and {version}")
        pins[name] = version
    _check_glibc([w.name for w in wheels], request.glibc)
    text = "".join(f"{name}=={pins[name]}\n" for name in sorted(pins))
    metadata = bundle_metadata("wheelhouse", env.name, python_version, [w.name for w in wheels])
    log(f"packing {len(wheels)} wheels, requirements.txt and {BUNDLE_JSON}")
    digest = _write_wheelhouse(partial, text.encode(), wheels, metadata)
    return digest, list(pins)


def _check_glibc(wheel_filenames: t.Iterable[str], glibc: str) -> None:
    """Every wheel runs with the target's glibc (pip picked by the tags we gave it; find-links and pixi's own
    choice are checked here as well)."""
    target = _glibc(glibc)
    for filename in sorted(wheel_filenames):
        need = required_glibc(filename)
        if need is not None and need > target:
            name, version = _wheel_name_version(filename)
            raise BundleError(
                f"{name} {version} needs glibc {need[0]}.{need[1]} ({filename}), the target has "
                f"{target[0]}.{target[1]}: pin an older {name}, or bundle for a newer container "
                f"with --glibc {need[0]}.{need[1]}"
            )


def _pip_requirements(template: Template, env: Environment, only: t.Sequence[str] = ()) -> tuple[list[str], list[str]]:
    """pip requirement strings of the environment's PyPI set (plus the conda packages a wheelhouse must carry as
    wheels), and the extra indexes its per-package `index` entries name; with `only`, just those packages."""
    requirements: dict[str, str] = {}
    indexes: list[str] = []
    wanted = {_normalise(n) for n in only}
    known = {_normalise(n) for n in (*env.pypi, *REQUIRED)}
    unknown = sorted(wanted - known)
    if unknown:
        raise UsageError(
            f"--only {', '.join(unknown)}: not a PyPI dependency of environment {env.name!r} "
            f"(it has {', '.join(sorted(known))})"
        )
    for name, spec in env.pypi.items():
        key = _normalise(name)
        if wanted and key not in wanted:
            continue
        if isinstance(spec, str):
            requirements[key] = name + _pep440(spec)
            continue
        if not isinstance(spec, dict):
            raise UsageError(f"{template.where}: pypi-dependencies.{name}: not a string or a table")
        if "git" in spec:
            raise UsageError(f"{template.where}: pypi-dependencies.{name}: a git source cannot go into a wheelhouse")
        extras = f"[{','.join(spec['extras'])}]" if spec.get("extras") else ""
        if "url" in spec:
            requirements[key] = f"{name}{extras} @ {spec['url']}"
        elif "path" in spec:
            base = template.directory or Path.cwd()
            requirements[key] = f"{name}{extras} @ {(base / spec['path']).resolve().as_uri()}"
        else:
            requirements[key] = f"{name}{extras}{_pep440(spec.get('version', '*'))}"
        if spec.get("index"):
            indexes.append(spec["index"])
    for name in REQUIRED:  # supervisor and pyyaml are conda packages in the template: take them as wheels here
        if name not in requirements and (not wanted or name in wanted):
            spec = env.conda.get(name, "*")
            spec = spec.get("version", "*") if isinstance(spec, dict) else spec
            requirements[name] = name + _pep440(str(spec).split(" ")[0])
    return [requirements[k] for k in sorted(requirements)], indexes


def _pep440(spec: str) -> str:
    """A pixi version string as a pip specifier: `*` -> nothing, `1.2.*` -> `==1.2.*`, `>=1` stays."""
    spec = spec.strip()
    if spec in ("", "*"):
        return ""
    return f"=={spec}" if spec[0].isdigit() else spec


def _python_version(spec: t.Any) -> str:
    """`3.12.*` / `==3.12` / `3.12.4` -> `3.12`; anything else (a range, none) -> DEFAULT_PYTHON."""
    spec = spec.get("version", "") if isinstance(spec, dict) else str(spec or "")
    found = re.fullmatch(r"\s*(?:==)?(\d+)\.(\d+)(?:\.\*|\.\d+\S*)?\s*", spec)
    return f"{found[1]}.{found[2]}" if found else DEFAULT_PYTHON


def _pip_available() -> bool:
    import importlib.util

    return importlib.util.find_spec("pip") is not None


def _tar_info(name: str, kind: bytes, size: int = 0, mode: int = 0o644) -> tarfile.TarInfo:
    member = tarfile.TarInfo(name)
    member.type, member.size, member.mode, member.mtime = kind, size, mode, _TAR_MTIME
    member.uid = member.gid = 0
    member.uname = member.gname = ""
    return member


def _write_wheelhouse(path: Path, requirements: bytes, wheels: list[Path], metadata: bytes) -> str:
    """bundle.json, requirements.txt, wheels/, wheels/<sorted> as one uncompressed tar; the sha256 computed while
    writing."""
    info = _tar_info
    with open(path, "wb") as raw:
        out = _HashingWriter(raw)
        with tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT) as tar:  # type: ignore[call-overload]
            tar.addfile(info(BUNDLE_JSON, tarfile.REGTYPE, len(metadata)), io.BytesIO(metadata))
            tar.addfile(info("requirements.txt", tarfile.REGTYPE, len(requirements)), io.BytesIO(requirements))
            tar.addfile(info("wheels", tarfile.DIRTYPE, mode=0o755))
            for wheel in wheels:
                with open(wheel, "rb") as f:
                    tar.addfile(info(f"wheels/{wheel.name}", tarfile.REGTYPE, wheel.stat().st_size), f)
        raw.flush()
        os.fsync(raw.fileno())
    return out.sha256.hexdigest()


# --- shared pieces --------------------------------------------------------------------------------------------


class _Runner:
    """Runs a tool with its output merged, kept (last lines) for the error, and copied to the log if verbose."""

    def __init__(self, log: Log, verbose: bool, retries: int) -> None:
        self.log, self.verbose, self.retries = log, verbose, retries

    def run(
        self,
        argv: list[str],
        *,
        label: str,
        cwd: Path,
        retry: bool = True,
        before_attempt: t.Callable[[], None] | None = None,
    ) -> int:
        """Run `argv`; with `retry`, up to `retries` more times and raise ToolFailed at the end; without, return
        the exit code."""
        attempts = self.retries + 1 if retry else 1
        for attempt in range(1, attempts + 1):
            if before_attempt:
                before_attempt()
            started = time.monotonic()
            code, tail = self._once(argv, cwd)
            if code == 0 or not retry:
                if code == 0:
                    self.log(f"{label}: done in {time.monotonic() - started:.1f} s")
                return code
            if attempt < attempts:
                delay = min(RETRY_DELAY_SECONDS * 2 ** (attempt - 1), 30.0)
                last = f": {tail[-1]}" if tail else ""
                self.log(
                    f"{label} failed (exit {code}{last}); retrying in {delay:g} s (attempt {attempt + 1} of {attempts})"
                )
                time.sleep(delay)
        raise ToolFailed(label, code, attempts, tail)

    def _once(self, argv: list[str], cwd: Path) -> tuple[int, list[str]]:
        tail: collections.deque[str] = collections.deque(maxlen=TAIL_LINES)
        try:
            proc = subprocess.Popen(
                argv,
                cwd=cwd,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
                errors="replace",
                bufsize=1,
            )
        except OSError as e:
            raise BundleError(f"cannot run {argv[0]}: {e.strerror or e}") from None
        assert proc.stdout is not None
        with proc.stdout:
            for line in proc.stdout:
                line = line.rstrip("\r\n")
                if line.strip():
                    tail.append(line)
                if self.verbose:
                    self.log(f"  | {line}")
        return proc.wait(), list(tail)


class _HashingWriter:
    def __init__(self, raw: t.BinaryIO) -> None:
        self.raw, self.sha256 = raw, hashlib.sha256()

    def write(self, data: bytes) -> int:
        self.sha256.update(data)
        return self.raw.write(data)


class _HashingReader:
    def __init__(self, raw: t.BinaryIO) -> None:
        self.raw, self.sha256 = raw, hashlib.sha256()

    def read(self, size: int = -1) -> bytes:
        data = self.raw.read(size)
        self.sha256.update(data)
        return data


def _list_tar(path: Path) -> list[str]:
    """Member names of an uncompressed tar (headers only: the data is seeked over)."""
    try:
        with tarfile.open(path, "r:") as tar:
            return [m.name.removeprefix("./") for m in tar]
    except tarfile.TarError as e:
        raise BundleError(f"{path.name}: not a readable tar archive: {e}") from None


def _scan_tar(path: Path) -> tuple[str, list[str]]:
    """sha256 of the file and its member names, in one sequential read."""
    with open(path, "rb") as raw:
        reader = _HashingReader(raw)
        try:
            with tarfile.open(fileobj=reader, mode="r|") as tar:  # type: ignore[call-overload]
                names = [m.name.removeprefix("./") for m in tar]
        except tarfile.TarError as e:
            raise BundleError(f"{path.name}: not a readable tar archive: {e}") from None
        while reader.read(1 << 20):
            pass
    return reader.sha256.hexdigest(), names


def _require_contents(names: t.Iterable[str], kind: str) -> None:
    have = {_normalise(n) for n in names}
    missing = [n for n in REQUIRED if n not in have]
    if missing:
        raise BundleError(
            f"the {kind} bundle lacks {', '.join(missing)}: add them to the template's environment "
            "(the container runs SGLang under supervisord and reads its --config YAML with PyYAML)"
        )


def _publish(partial: Path, output: Path, digest: str) -> None:
    """FILE.sha256 and FILE into place (each renamed over the old one)."""
    checksum = output.with_name(output.name + ".sha256")
    staged = checksum.with_name(f".{checksum.name}.partial-{os.getpid()}")
    try:
        staged.write_text(f"{digest}  {output.name}\n", encoding="utf-8")
        os.replace(partial, output)
        os.replace(staged, checksum)
    finally:
        staged.unlink(missing_ok=True)


def _atomic_copy(source: Path, dest: Path) -> None:
    dest.parent.mkdir(parents=True, exist_ok=True)
    staged = dest.with_name(f".{dest.name}.partial-{os.getpid()}")
    try:
        shutil.copyfile(source, staged)
        os.replace(staged, dest)
    finally:
        staged.unlink(missing_ok=True)


def _which(tool: str) -> str:
    found = shutil.which(tool)
    if not found:
        raise ToolMissing(tool)
    return found


def _wheel_name_version(filename: str) -> tuple[str, str]:
    """`PyYAML-6.0.2-cp312-...whl` -> (`pyyaml`, `6.0.2`)."""
    parts = filename.removesuffix(".whl").split("-")
    if len(parts) < 5:
        raise BundleError(f"{filename}: not a wheel file name (name-version-python-abi-platform.whl)")
    return _normalise(parts[0]), parts[1]


def _normalise(name: str) -> str:
    """PEP 503 name normalisation (conda names normalised the same way for comparison)."""
    return re.sub(r"[-_.]+", "-", name).lower()


def _unique(items: t.Iterable[str]) -> list[str]:
    return list(dict.fromkeys(items))


def _human(size: int) -> str:
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")
