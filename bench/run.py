"""Run every benchmark of the project and print one table; `--write` also puts it into docs/benchmarks.md.

    python bench/run.py [--write] [--quick] [--only NAME…]

Each bench_*.py module has `run(quick=False) -> list[(figure, target, measured, ratio)]`. Targets are checked by
reading the table, never by a timed unit test: these machines are noisy, so ratios compare runs of the same
process. `--quick` runs each measurement once or twice, to show the benchmarks work (the suite does that);
`--write` keeps the "## Test suite" section of docs/benchmarks.md, which bench/suite.py writes.
"""

from __future__ import annotations

import argparse
import importlib
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
MODULES = ["bench_check", "bench_compile", "bench_hostile", "bench_runtime", "bench_install", "bench_gateway"]
DOC = ROOT / "docs" / "benchmarks.md"
SUITE = "## Test suite"


def machine() -> str:
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor() or "unknown CPU",
    )
    mem_kb = next(
        (
            int(line.split()[1])
            for line in Path("/proc/meminfo").read_text().splitlines()
            if line.startswith("MemTotal")
        ),
        0,
    )
    load = os.getloadavg()[0]
    return (
        f"{platform.system()} {platform.release()}, {os.cpu_count()} cores ({cpu}), "
        f"{mem_kb / 1024 / 1024:.0f} GiB RAM, Python {platform.python_version()}, load average {load:.2f} at start"
    )


def table(rows: list[tuple[str, str, str, str]]) -> str:
    lines = ["| figure | target | measured | ratio / note |", "|---|---|---|---|"]
    lines += [f"| {a} | {b} | {c} | {d} |" for a, b, c, d in rows]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--write", action="store_true", help="write the table into docs/benchmarks.md")
    parser.add_argument("--only", nargs="*", choices=MODULES, help="run only these benchmark modules")
    parser.add_argument("--quick", action="store_true", help="one or two runs each: the benchmarks work")
    args = parser.parse_args()
    if args.write and args.quick:
        parser.error("--quick figures mean little: they are not written")
    sys.path.insert(0, str(HERE))
    rows: list[tuple[str, str, str, str]] = []
    started = time.time()
    env = machine()
    for name in args.only or MODULES:
        print(f"running {name} …", file=sys.stderr, flush=True)
        rows += importlib.import_module(name).run(quick=args.quick)
    out = table(rows)
    print(out)
    if args.write:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True
        ).stdout.strip()
        DOC.write_text(
            "# Benchmarks\n\n"
            "Produced by `python bench/run.py --write` (every benchmark of the project, one table). Targets are the\n"
            "project's performance goals; ratios compare figures measured in the same run, since these machines are noisy.\n\n"
            f"Machine: {env}.  \nCommit: {commit or 'unknown'}; the run took {time.time() - started:.0f} s.\n\n"
            f"{out}\n" + NOTES + suite_section()
        )


def suite_section(text: str | None = None) -> str:
    """The "## Test suite" section of docs/benchmarks.md (to its end or the next section), with the blank line
    before it; "" when there is none."""
    text = DOC.read_text(encoding="utf-8") if text is None and DOC.exists() else text or ""
    start = text.find(f"\n{SUITE}\n")
    if start < 0:
        return ""
    end = text.find("\n## ", start + 1)
    return "\n" + text[start + 1 : end if end > 0 else None].rstrip("\n") + "\n"


NOTES = """
## Notes
- A valid config's `check` imports neither jsonschema nor networkx: a small exact validator of the schema's
  keywords answers first (jsonschema runs only to word the findings of a config that fails it), and networkx
  (~80 ms, the slowest import) is imported only when instances relate to each other (two enabled instances
  or a `depends_on`). This sandbox sets PYTHONDONTWRITEBYTECODE=1 and the checkout is an editable install, so
  every run compiles sglangc from source (~20 ms more than an installed wheel with its bytecode).
- `compile` pays for its lint gate on every run: bash -n and one shellcheck over the generated scripts and
  supervisor's parser on the conf; the static runtime (`lib/*.sh`) is checked once, in the test suite.
- The gateway's figures compare, in one run and alternating rounds, chat completions through the real smg
  (cache_aware, one stand-in worker behind it) with the same requests sent straight to that stand-in, each of
  8 client threads on one kept-alive connection. The stand-in answers in about a millisecond, so the
  difference is smg's own cost on this (shared, 2-core) machine; the ratios say how much of the machine the
  proxy takes, not what it adds to a real model's response time.
- The hostile configs are those of tests/security/hostile_configs.py, each under the 1 MiB limit.
- "per-instance cost 512 vs 64" divides the in-process check time per instance of the two generated configs:
  1.00 means the time grows linearly with the number of instances.
"""

if __name__ == "__main__":
    main()
