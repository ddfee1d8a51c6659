"""The commands README.md shows in its shell code blocks, and which test runs each one.

Every command line is either run, as written (only paths of the container mapped to temporary ones), by the one
test RUN_BY names for it (that test takes its lines from `run_by`, so a new line of the same kind is run too), or
listed in NOT_HERE with the reason it cannot run on this machine. tests/test_readme.py fails on any other line.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"

SETUP = "tests/test_readme.py::test_readme_setup_and_main_job_on_a_fresh_copy"
BUNDLE = "tests/test_readme.py::test_readme_bundle_commands"
MANUAL = "tests/boot/test_boot.py::test_readme_manual_workflow"
WRITING = "tests/test_readme.py::test_readme_writing_a_config"

# A regular expression a README command line matches → the test that runs every line it matches.
RUN_BY: dict[str, str] = {
    r"^python3 -m venv \.venv && \. \.venv/bin/activate && pip install \. && sglangc ": SETUP,
    r"^sglangc bundle (?!.*--kind wheelhouse)": BUNDLE,
    r"^sglangc (init|check|plan) ": WRITING,
    r"^/soft/app/sglang/": MANUAL,
    r"^/hard/volume/workspace/\S+/supervisorctl ": MANUAL,
    r"^curl ": MANUAL,
}

# A README command line that cannot run here → why (and what tests what it relies on).
NOT_HERE: dict[str, str] = {
    "python3 -m venv .venv && . .venv/bin/activate && pip install -q -e '.[test]' && python -m pytest": "the test suite itself: .ci/run runs this line, as written, on a fresh clone "
    "(test_ci_runs_the_readme_test_command checks it is the same line)",
    "docker exec -it infer-dev bash": "no Docker engine here; the pieces of examples/infer-dev are run one by one (tests/test_infer_dev_example.py) "
    "and the commands run inside the container are run by " + MANUAL,
    "sglangc bundle --kind wheelhouse --environment default --output /data/workspace/sglang-offline-bundle.tar": "downloads SGLang, Torch and the CUDA wheels (gigabytes) from PyPI; tests/bundle/test_bundle_wheelhouse.py "
    "runs `sglangc bundle --kind wheelhouse` against local wheels",
}


SHELLS = ("bash", "sh", "shell", "console", "zsh")  # the code blocks that hold commands
OTHERS = ("text", "toml", "yaml", "json")  # the code blocks that hold output or files


def code_blocks(path: Path = README) -> list[tuple[str, str]]:
    """(language, text) of every fenced code block."""
    return re.findall(r"^```(\S*)\n(.*?)^```$", path.read_text(encoding="utf-8"), flags=re.S | re.M)


def bash_blocks(path: Path = README) -> list[list[str]]:
    """The command lines of every shell block, comments stripped."""
    return [
        [re.sub(r"\s+#.*$", "", line).strip() for line in text.splitlines() if line.strip()]
        for language, text in code_blocks(path)
        if language in SHELLS
    ]


def commands() -> list[str]:
    return [line for block in bash_blocks() for line in block]


def runners_of(line: str) -> list[str]:
    return sorted({test for pattern, test in RUN_BY.items() if re.search(pattern, line)})


def run_by(test: str) -> list[str]:
    """The README command lines `test` runs, in README order."""
    lines = [line for line in commands() if test in runners_of(line) and line not in NOT_HERE]
    assert lines, f"README.md shows no command for {test} any more"
    return lines


@dataclasses.dataclass
class FreshSetup:
    """The first README command, run in a copy of the checkout: how it ended, the copy (with the .venv it made,
    where `pip install .` put sglangc as a user gets it) and the directory it compiled into."""

    returncode: int
    stdout: str
    stderr: str
    copy: Path
    out: Path


def setup_on_a_fresh_copy(work: Path) -> None:
    """Copy what git tracks (or would track) into `work`, then run README's set-up + main job line there: a new
    venv, `pip install .` from the index, check, plan and compile of the example; what it printed goes to
    work/result.json. Slow (pip builds sglangc and installs it with its dependencies into an empty venv, as on a
    newcomer's machine): the tests that need it share one run (the `fresh_setup` fixture)."""
    (line,) = run_by(SETUP)
    copy = work / "sglangc"
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split("\0")
    for name in filter(None, listed):
        source = ROOT / name
        if source.is_file() and not source.is_symlink():
            (copy / name).parent.mkdir(parents=True, exist_ok=True)
            (copy / name).write_bytes(source.read_bytes())
            (copy / name).chmod(source.stat().st_mode & 0o777)
    out = work / "artifacts"
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONPATH")}
    done = subprocess.run(
        ["bash", "-c", line.replace("/tmp/sglang-artifacts", str(out))],
        cwd=copy,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    result = {"returncode": done.returncode, "stdout": done.stdout, "stderr": done.stderr}
    (work / "result.json").write_text(json.dumps(result), encoding="utf-8")


def fresh_setup(work: Path) -> FreshSetup:
    """What setup_on_a_fresh_copy(work) left in `work`."""
    result = json.loads((work / "result.json").read_text(encoding="utf-8"))
    return FreshSetup(**result, copy=work / "sglangc", out=work / "artifacts")
