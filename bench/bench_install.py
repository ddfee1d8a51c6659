"""install-sglang-offline.sh on a big bundle: one read for checksum + extraction, and the unchanged re-run.

    python bench/bench_install.py [--size-gb 2] [--dir /var/tmp] [--runs 3] [--keep]

Builds a wheelhouse bundle of at least 2 GB (the tiny sglang/torch test wheels, supervisor and PyYAML, plus an
incompressible random file in wheels/) under a temporary directory, renders the installer for the example
config, and measures with the bundle in the page cache (it was just written; the same state for every figure)
and, where the kernel lets us drop one file's pages (posix_fadvise DONTNEED), with a cold cache:

  * the installer's "extract" step (tee -> tar -x, and through a FIFO -> the SHA-256 hasher: one read), against
    `sha256sum FILE` then `tar -x -f FILE` one after the other (target: <= 0.65 of their sum); also against the
    installer's own hasher then tar, so that the gain of the single pass is shown apart from the faster hasher;
  * the unchanged re-run (target <= 0.2 s), against the time hashing the bundle would take.

Medians of --runs runs. Everything is removed at the end unless --keep. `run()` is what bench/run.py calls.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))  # the shared test support: bundle builders

from support import bundlekit  # noqa: E402

EXAMPLE = ROOT / "model-configs" / "sglang-single-gpu.toml"
GiB = 1 << 30
EXTRACT = re.compile(r": extract: .*\[(\d+\.\d+)s\]")
HASH_TOOL = re.compile(r"hash (\S+) \[")


def render_installer(out: Path) -> Path:
    """The installer for the example config and the runtime it sources, rendered as `sglangc compile` renders them (without its lint pass,
    which tests/install checks; a lint finding in another artifact must not stop a benchmark)."""
    from sglangc.pipeline import check
    from sglangc.render import render

    plan = check(EXAMPLE).plan
    assert plan is not None, "the example config does not check"
    for artifact in render(plan, str(out)):
        if artifact.relpath in ("install-sglang-offline.sh", "pixi/pixi.toml") or artifact.relpath.startswith("lib/"):
            path = out / artifact.relpath
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(artifact.text, encoding="utf-8")
            path.chmod(artifact.mode)
    return out / "install-sglang-offline.sh"


def random_file(path: Path, size: int) -> Path:
    chunk = 64 << 20
    with open(path, "wb") as f:
        left = size
        while left > 0:
            f.write(os.urandom(min(chunk, left)))
            left -= chunk
    return path


def drop_cache(path: Path) -> bool:
    """Evict one file's pages from the page cache (no privileges needed for clean pages)."""
    if not hasattr(os, "posix_fadvise"):
        return False
    os.sync()
    fd = os.open(path, os.O_RDONLY)
    try:
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)
    return True


def timed(argv: list[str], **kw) -> tuple[float, subprocess.CompletedProcess]:
    start = time.perf_counter()
    done = subprocess.run(argv, capture_output=True, text=True, **kw)
    elapsed = time.perf_counter() - start
    if done.returncode:
        raise RuntimeError(f"{argv[:3]} failed ({done.returncode}):\n{done.stdout}{done.stderr}")
    return elapsed, done


class Bench:
    def __init__(self, work: Path, size: int, runs: int) -> None:
        self.work, self.runs = work, runs
        self.installer = render_installer(work / "compiled")
        wheels = [
            bundlekit.fake_sglang_wheel(work / "w"),
            bundlekit.fake_torch_wheel(work / "w"),
            *bundlekit.third_party_wheels(),
        ]
        pad = random_file(work / "padding.bin", size)
        self.bundle = bundlekit.wheelhouse_tar(work / "bundle.tar", wheels, pad_bytes=size, pad_file=pad)
        pad.unlink()
        self.size = self.bundle.stat().st_size
        self.project = work / "project"
        self.env = {
            "PATH": f"{Path(sys.executable).parent}:/usr/local/bin:/usr/bin:/bin",
            "HOME": str(work),
            "LC_ALL": "C.UTF-8",
            "AUTO_INFER_SGLANG_BUNDLE_PATH": str(self.bundle),
            "AUTO_INFER_SGLANG_PIXI_PROJECT_DIR": str(self.project),
            "AUTO_INFER_SGLANG_VERIFY_CUDA": "0",
        }
        self.hasher = "sha256sum"

    def _cold(self, cold: bool) -> None:
        if cold:
            drop_cache(self.bundle)
        else:  # warm: make sure the whole file is cached, whatever ran before
            with open(self.bundle, "rb") as f:
                while f.read(16 << 20):
                    pass

    def sha256sum(self, cold: bool) -> float:
        self._cold(cold)
        return timed(["sha256sum", str(self.bundle)])[0]

    def other_hash(self, cold: bool) -> float:
        self._cold(cold)
        return timed(["openssl", "dgst", "-sha256", "-r", str(self.bundle)])[0]

    def tar_x(self, cold: bool) -> float:
        target = self.work / "untar"
        target.mkdir()
        try:
            self._cold(cold)
            return timed(["tar", "-x", "-f", str(self.bundle), "-C", str(target)])[0]
        finally:
            shutil.rmtree(target)

    def install(self, cold: bool) -> tuple[float, float]:
        """(extract step, whole install) of an install with --force (a new environment each time)."""
        self._cold(cold)
        total, done = timed(["bash", str(self.installer), "--force"], env=self.env)
        found = EXTRACT.search(done.stdout)
        assert found, done.stdout
        tool = HASH_TOOL.search(done.stdout)
        self.hasher = tool.group(1) if tool else self.hasher
        return float(found.group(1)), total

    def rerun(self) -> float:
        elapsed, done = timed(["bash", str(self.installer)], env=self.env)
        assert "already installed" in done.stdout, done.stdout
        return elapsed

    def median(self, fn, *args) -> float:
        return statistics.median(fn(*args) for _ in range(self.runs))


def measure(
    size_gb: float = 2.0, base: str | None = None, runs: int = 3, keep: bool = False, cold: bool = True
) -> dict:
    base_dir = Path(base or ("/var/tmp" if Path("/var/tmp").is_dir() else tempfile.gettempdir()))
    need = int(size_gb * GiB * 5)  # bundle + tar -x copy + staging + environment, with room to spare
    free = shutil.disk_usage(base_dir).free
    if free < need:
        raise SystemExit(f"bench_install: {base_dir} has {free / GiB:.1f} GiB free, needs {need / GiB:.1f} GiB")
    work = Path(tempfile.mkdtemp(prefix="sglangc-bench-install-", dir=base_dir))
    try:
        bench = Bench(work, int(size_gb * GiB), runs)
        results: dict = {"size": bench.size, "dir": str(base_dir)}
        cold_ok = cold and drop_cache(bench.bundle)
        for label, dropped in [("warm", False)] + ([("cold", True)] if cold_ok else []):
            installs = [bench.install(dropped) for _ in range(runs)]
            results[label] = {
                "sha256sum": bench.median(bench.sha256sum, dropped),
                "tar": bench.median(bench.tar_x, dropped),
                "single": statistics.median(i[0] for i in installs),
                "install": statistics.median(i[1] for i in installs),
            }
            if bench.hasher == "openssl" and shutil.which("openssl"):
                results[label]["hasher"] = bench.median(bench.other_hash, dropped)
        results["hash_tool"] = bench.hasher
        bench.rerun()  # the first re-run may still pay for loading bash and stat from disk
        results["rerun"] = statistics.median(bench.rerun() for _ in range(max(runs, 5)))
        return results
    finally:
        if keep:
            print(f"bench_install: kept {work}", file=sys.stderr)
        else:
            shutil.rmtree(work, ignore_errors=True)


def rows(r: dict) -> list[tuple[str, str, str, str]]:
    size = f"{r['size'] / GiB:.2f} GiB"
    out = []
    for label in ("warm", "cold"):
        if label not in r:
            continue
        m = r[label]
        seq = m["sha256sum"] + m["tar"]
        out.append(
            (
                f"install: checksum + extraction in one read, {size} bundle, {label} cache",
                "≤ 0.65 × (sha256sum; tar -x)",
                f"{m['single']:.2f} s vs {m['sha256sum']:.2f} s + {m['tar']:.2f} s = {seq:.2f} s",
                f"{m['single'] / seq:.2f}",
            )
        )
        if "hasher" in m:
            same = m["hasher"] + m["tar"]
            out.append(
                (
                    f"install: the same, against its own hasher ({r['hash_tool']}) then tar -x, {label} cache",
                    "(context)",
                    f"{m['single']:.2f} s vs {m['hasher']:.2f} s + {m['tar']:.2f} s = {same:.2f} s",
                    f"{m['single'] / same:.2f}",
                )
            )
        out.append(
            (f"install: whole first install (wheelhouse, pip), {label} cache", "(context)", f"{m['install']:.2f} s", "")
        )
    hashing = r["warm"]["sha256sum"]
    out.append(
        (
            f"install: unchanged re-run, {size} bundle",
            "≤ 0.2 s",
            f"{r['rerun'] * 1000:.0f} ms",
            f"hashing it would take {hashing:.2f} s (sha256sum, warm); {r['rerun'] / hashing:.3f} of that",
        )
    )
    return out


def run(quick: bool = False) -> list[tuple[str, str, str, str]]:
    """The rows of the table; `quick`: a 16 MiB bundle, one run, warm cache only (the benchmark works; its figures
    mean little)."""
    return rows(measure(1 / 64, runs=1, cold=False) if quick else measure())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-gb", type=float, default=2.0, help="random padding in the bundle (default 2)")
    parser.add_argument("--dir", help="where to build the bundle (default /var/tmp)")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--keep", action="store_true", help="keep the work directory")
    args = parser.parse_args()
    if args.size_gb < 2:
        print("bench_install: note: the targets are defined for a bundle of at least 2 GB", file=sys.stderr)
    result = measure(args.size_gb, args.dir, args.runs, args.keep)
    print(f"bundle {result['size'] / GiB:.2f} GiB in {result['dir']}; installer's hasher: {result['hash_tool']}")
    print("| figure | target | measured | ratio / note |\n|---|---|---|---|")
    for row in rows(result):
        print("| " + " | ".join(row) + " |")


if __name__ == "__main__":
    main()
