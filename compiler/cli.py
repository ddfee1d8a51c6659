"""Command line: parse options, call one function, print findings, map outcomes to exit codes.

Heavy modules (jsonschema, networkx, jinja2) are imported inside the commands that need them, so
`sglangc --help` and `sglangc schema` start fast.
"""

from __future__ import annotations

import sys
import typing as t

import click

from sglangc import __version__

OUTCOME_OK, OUTCOME_FINDINGS = 0, 1  # usage errors exit 2 through click
EXIT_UNEXPECTED = 70  # an exception escaped: a bug in sglangc (GeneratedOutputError exits 3)


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="sglangc")
def cli() -> None:
    """Compile a TOML description of SGLang servers into bash and supervisord artifacts."""


NODE_RANK = click.option(
    "--node-rank",
    type=click.IntRange(0, 63),
    default=0,
    show_default=True,
    metavar="K",
    help="For instances with nnodes > 1: the part of node K (0 is the head, which also runs every "
    "single-node instance). See docs/multi-node.md.",
)


@cli.command()
@click.argument("configs", nargs=-1, required=True, type=click.Path(dir_okay=True, path_type=str))
@click.option("--strict", is_flag=True, help="Treat warnings as findings (exit 1).")
@click.option("-q", "--quiet", is_flag=True, help="Print nothing on success.")
@NODE_RANK
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["text", "json"]),
    default="text",
    show_default=True,
    help="text: findings on stderr; json: one document with every finding on stdout (docs/check-json.md).",
)
def check(configs: tuple[str, ...], strict: bool, quiet: bool, node_rank: int, fmt: str) -> None:
    """Check CONFIG files (`-`: standard input): TOML syntax, schema, GPUs, ports, dependencies and SGLang flags.

    Findings go to stderr, one per line; exit 0 when every config is valid, 1 otherwise.
    """
    from sglangc.pipeline import check as run_check

    if fmt == "json":
        from sglangc.report import check_json

        results = [run_check(config, node_rank) for config in configs]
        sys.stdout.buffer.write(check_json(results, strict).encode("utf-8", "backslashreplace"))
        failed = any(r.errors or (strict and r.findings) for r in results)
        sys.exit(OUTCOME_FINDINGS if failed else OUTCOME_OK)
    failed = False
    for config in configs:
        result = run_check(config, node_rank)
        _print_findings(result.findings)
        refused = bool(result.errors) or (strict and bool(result.findings))
        failed |= refused
        if result.plan is not None and not refused and not quiet:
            from sglangc.report import summary  # only here: `check -q` does without it

            _echo(summary(result.plan))
    sys.exit(OUTCOME_FINDINGS if failed else OUTCOME_OK)


@cli.command()
@click.argument("config", type=click.Path(dir_okay=True, path_type=str))
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["text", "json"]),
    default="text",
    show_default=True,
    help="text: a table for people; json: the documented, stable format (docs/plan-json.md).",
)
@NODE_RANK
def plan(config: str, fmt: str, node_rank: int) -> None:
    """Show the resolved plan of CONFIG: GPUs, host:port, start wave and the exact SGLang argv of each instance."""
    from sglangc.pipeline import check as run_check
    from sglangc.report import plan_json, plan_text

    result = run_check(config, node_rank)
    _print_findings(result.findings)
    if result.plan is None:
        sys.exit(OUTCOME_FINDINGS)
    if fmt == "json":  # JSON escapes control characters itself; a file name that is not UTF-8 becomes \udcNN
        sys.stdout.buffer.write(plan_json(result.plan).encode("utf-8", "backslashreplace"))
    else:
        _echo(plan_text(result.plan))


@cli.command("compile")
@click.argument("config", type=click.Path(dir_okay=True, path_type=str))
@click.option(
    "-o",
    "--output",
    "out_dir",
    default="/soft/app/sglang",
    show_default=True,
    metavar="DIR",
    help="Directory to write the artifacts into (created if missing; other files in it are left alone).",
)
@click.option(
    "--check", "check_only", is_flag=True, help="Write nothing; list what would change, exit 1 if anything would."
)
@NODE_RANK
@click.option(
    "--target",
    type=click.Choice(["bash", "k8s-lws"]),
    default="bash",
    show_default=True,
    help="bash: this node's scripts and supervisord.conf; k8s-lws: Kubernetes YAML under DIR/k8s/ "
    "(one LeaderWorkerSet and Service per instance, every node; --node-rank does not apply).",
)
def compile_command(config: str, out_dir: str, check_only: bool, node_rank: int, target: str) -> None:
    """Write the runtime artifacts of CONFIG: launch scripts, runner, supervisord.conf, entry hook, manifest."""
    from sglangc.errors import SglangcError
    from sglangc.pipeline import compile_config
    from sglangc.render import manifest_revisions
    from sglangc.report import compile_summary, reload_summary

    try:
        result = compile_config(config, out_dir, check_only=check_only, node_rank=node_rank, emit=target)
    except SglangcError as e:
        _echo(f"sglangc: {e}", err=True)
        sys.exit(e.exit_code)
    _print_findings(result.checked.findings)
    if result.checked.plan is None:
        sys.exit(OUTCOME_FINDINGS)
    for line in result.skipped_checks:
        _echo(f"sglangc: warning: {line}", err=True)
    changes = result.changes
    for relpath in changes.kept:
        _echo(
            f"sglangc: note: left {result.out_dir / relpath} alone: the previous compile wrote it, but it has "
            "changed since",
            err=True,
        )
    if check_only:
        for relpath in changes.written:
            _echo(f"would write {result.out_dir / relpath}")
        for relpath in changes.removed:
            _echo(f"would remove {result.out_dir / relpath}")
        if not changes.any:
            _echo(f"{result.out_dir}: up to date")
        sys.exit(OUTCOME_FINDINGS if changes.any else OUTCOME_OK)
    _echo(compile_summary(result.checked.plan, result.out_dir, changes))
    reload = reload_summary(
        changes.previous_revisions, manifest_revisions(result.artifacts), result.out_dir / "check-and-run-sglang.sh"
    )
    if reload:
        _echo(reload)


@cli.command()
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["json", "markdown"]),
    default="json",
    show_default=True,
    help="json: the JSON Schema; markdown: the config reference (docs/config-reference.md).",
)
@click.option(
    "-o", "--output", type=click.Path(dir_okay=False, path_type=str), metavar="FILE", help="Write to FILE, not stdout."
)
def schema(fmt: str, output: str | None) -> None:
    """Print the JSON Schema of the TOML format (for editors and other tools)."""
    from sglangc.validate import schema_text

    if fmt == "markdown":
        from sglangc.schemadoc import markdown

        text = markdown(schema_text())
    else:
        text = schema_text()
    if output:
        _write_text(output, text)
    else:
        click.echo(text, nl=False)


@cli.command()
@click.option("--gpus", type=click.IntRange(1, 1024), metavar="N", help="GPUs the container has (one server on all).")
@click.option("--model", "model", metavar="PATH", help="The model directory (or hub id).  [default: a placeholder]")
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, path_type=str),
    metavar="FILE",
    help="Write the config to FILE (refused if it exists) and the JSON Schema beside it, for editors.",
)
def init(gpus: int | None, model: str | None, output: str | None) -> None:
    """Write a commented starter config that passes `sglangc check` (stdout without -o)."""
    from pathlib import Path

    from sglangc.starter import SCHEMA_NAME, installed_schema, starter
    from sglangc.validate import schema_text

    if output is None:
        click.echo(starter(gpus, model, installed_schema()), nl=False)
        return
    target = Path(output)
    if target.exists():
        _echo(f"sglangc: {output}: already exists; choose another file or remove it", err=True)
        sys.exit(2)
    _write_text(str(target.parent / SCHEMA_NAME), schema_text())
    _write_text(output, starter(gpus, model, f"./{SCHEMA_NAME}"))
    _echo(f"wrote {output} (and {target.parent / SCHEMA_NAME}); next: sglangc check {output}")


def _write_text(path: str, text: str) -> None:
    try:
        with open(path, "w", encoding="utf-8", newline="\n") as f:
            f.write(text)
    except OSError as e:
        _echo(f"sglangc: {path}: cannot write: {e.strerror or e}", err=True)
        sys.exit(2)


@cli.command()
@click.option(
    "--kind",
    type=click.Choice(["pixi-pack", "wheelhouse"]),
    default="pixi-pack",
    show_default=True,
    help="pixi-pack: pixi lock + pixi-pack (conda Python, supervisor, pyyaml; PyPI wheels). "
    "wheelhouse: pip download of the PyPI set into wheels/ + requirements.txt.",
)
@click.option(
    "--template",
    type=click.Path(exists=True, file_okay=False, path_type=str),
    metavar="DIR",
    help="Pixi template directory holding pixi.toml (default: the one shipped with sglangc). It is "
    "never modified, except that a newly made pixi.lock is copied back into it.",
)
@click.option(
    "-e",
    "--environment",
    default="default",
    show_default=True,
    metavar="ENV",
    help="Environment of the template to bundle.",
)
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, path_type=str),
    metavar="FILE",
    help="Bundle to write; FILE.sha256 is written beside it.  [default: ./sglang-offline-bundle-ENV.tar]",
)
@click.option(
    "--cache-dir",
    type=click.Path(file_okay=False, path_type=str),
    metavar="DIR",
    help="Persistent cache (pixi-pack --use-cache, pip's cache, the packaged template's lock), so "
    "rebuilds are fast.  [default: $XDG_CACHE_HOME/sglangc or ~/.cache/sglangc]",
)
@click.option(
    "--rattler-config",
    type=click.Path(exists=True, dir_okay=False, path_type=str),
    metavar="FILE",
    help="pixi-pack only: rattler/pixi config TOML ([mirrors], [s3-options], [concurrency]), used by "
    "pixi lock and pixi-pack.",
)
@click.option(
    "--retries",
    type=click.IntRange(0, 10),
    default=2,
    show_default=True,
    metavar="N",
    help="Run a failing pixi lock / pixi-pack / pip download up to N more times (2 s, 4 s, … apart).",
)
@click.option(
    "--find-links", multiple=True, metavar="DIR|URL", help="wheelhouse only: also take wheels from here (repeatable)."
)
@click.option("--index-url", metavar="URL", help="wheelhouse only: PyPI index (mirror) instead of the default.")
@click.option("--no-index", is_flag=True, help="wheelhouse only: no index at all, only --find-links (air-gapped).")
@click.option(
    "--glibc",
    default="2.35",
    show_default=True,
    metavar="X.Y",
    help="The container's glibc (`getconf GNU_LIBC_VERSION` in it): a wheelhouse takes wheels tagged "
    "manylinux_2_17 up to manylinux_X_Y, and a wheel of either kind that needs more is an error. "
    "2.35 is Ubuntu 22.04's, the base of the CUDA 12.x images infer-dev is built on (20.04: 2.31, "
    "24.04: 2.39); the `latest` environment needs 2.34 or newer.",
)
@click.option(
    "--only",
    multiple=True,
    metavar="NAME",
    help="wheelhouse only: just this PyPI package of the environment, without its dependencies (pip "
    "--no-deps; repeatable). A partial wheelhouse, to check that pins download for the target or "
    "to refresh a few wheels; the installer cannot install it on its own.",
)
@click.option("-v", "--verbose", is_flag=True, help="Show the tools' own output as they run.")
def bundle(
    kind: str,
    template: str | None,
    environment: str,
    output: str | None,
    cache_dir: str | None,
    rattler_config: str | None,
    retries: int,
    find_links: tuple[str, ...],
    index_url: str | None,
    no_index: bool,
    glibc: str,
    only: tuple[str, ...],
    verbose: bool,
) -> None:
    """Build the offline SGLang environment bundle (host side) and FILE.sha256.

    Progress goes to stderr; the last line on stdout names the file, its size and sha256, kind and environment.
    Exit 0 built, 1 a tool is missing or failed, 2 usage.
    """
    from pathlib import Path

    from sglangc.bundle import BundleRequest, build
    from sglangc.errors import SglangcError

    def path(value: str | None) -> Path | None:
        return Path(value) if value else None

    request = BundleRequest(
        kind=kind,
        template=path(template),
        environment=environment,
        output=path(output),
        cache_dir=path(cache_dir),
        rattler_config=path(rattler_config),
        retries=retries,
        find_links=find_links,
        index_url=index_url,
        no_index=no_index,
        glibc=glibc,
        only=only,
        verbose=verbose,
    )
    try:
        result = build(request, log=lambda line: _echo(f"sglangc: {line}", err=True))
    except SglangcError as e:
        _echo(f"sglangc: {e}", err=True)
        sys.exit(e.exit_code)
    _echo(result.summary())


def _echo(text: str, *, err: bool = False) -> None:
    """One message for a terminal: control characters and undecodable file-name bytes escaped."""
    from sglangc.errors import printable

    click.echo(printable(text), err=err)


def _print_findings(findings: t.Iterable[object]) -> None:
    for finding in findings:
        _echo(str(finding), err=True)


def main() -> None:
    try:
        cli.main(prog_name="sglangc")
    except SystemExit:
        raise
    except Exception as e:  # a traceback is a bug in sglangc; say so in one line
        _echo(f"sglangc: internal error (please report it): {type(e).__name__}: {e}", err=True)
        sys.exit(EXIT_UNEXPECTED)
