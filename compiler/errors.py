"""One exception tree and the finding value every check produces."""

from __future__ import annotations

import dataclasses
import typing as t

Severity = t.Literal["error", "warning"]


@dataclasses.dataclass(frozen=True, order=True)
class Finding:
    """One problem in a config: where it is and what to do about it.

    `key` is the dotted key path (`instances.a.tp_size`), empty for the file as a whole.
    `line`/`col` are set only for TOML syntax errors.
    """

    config: str
    key: str
    message: str
    severity: Severity = "error"
    line: int = 0
    col: int = 0

    def __str__(self) -> str:
        if self.line:
            return f"{self.config}:{self.line}:{self.col}: {self.message}"
        where = f"{self.key}: " if self.key else ""
        tag = "warning: " if self.severity == "warning" else ""
        return f"{self.config}: {tag}{where}{self.message}"


MAX_FINDINGS = 100  # a config with more errors is checked no further: bounded time whatever the input


def sort_findings(findings: t.Iterable[Finding]) -> list[Finding]:
    """Findings in a stable order: by file, then key path, then message. Past MAX_FINDINGS, errors are kept
    before warnings and one last finding says how many more there were."""
    ordered = sorted(set(findings), key=lambda f: (f.config, f.line, f.col, f.key, f.severity, f.message))
    if len(ordered) <= MAX_FINDINGS:
        return ordered
    kept = set(sorted(ordered, key=lambda f: f.severity != "error")[:MAX_FINDINGS])
    errors = any(f.severity == "error" for f in ordered)
    return [f for f in ordered if f in kept] + [
        Finding(
            ordered[0].config,
            "",
            f"too many findings: the first {MAX_FINDINGS} are shown"
            + ("; the check stopped there: fix these, then check again" if errors else ""),
            "error" if errors else "warning",
        )
    ]


class SglangcError(Exception):
    """Root of every error sglangc reports to a user; `exit_code` is what the CLI exits with."""

    exit_code = 1


class ConfigError(SglangcError):
    """A config has findings that are errors (and maybe warnings)."""

    def __init__(self, findings: t.Sequence[Finding]) -> None:
        self.findings = sort_findings(findings)
        super().__init__("\n".join(map(str, self.findings)))


class UsageError(SglangcError):
    """The command line itself is wrong."""

    exit_code = 2


class GeneratedOutputError(SglangcError):
    """Generated output failed its own lint: a bug in sglangc, never the user's fault."""

    exit_code = 3


_BARE_KEY = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-")


def key_path(*parts: str | int) -> str:
    """A dotted TOML key path for a finding: `instances.a.gpu_ids[2]`, `instances."my model"`."""
    out = ""
    for part in parts:
        if isinstance(part, int):
            out += f"[{part}]"
            continue
        key = part if part and set(part) <= _BARE_KEY else show(part, limit=60)
        out += f".{key}" if out else key
    return out


def show(value: object, *, limit: int = 40) -> str:
    """A user value quoted for a one-line message: control and line-breaking characters escaped, long text cut."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if not isinstance(value, str):
        return str(value)
    text = value if len(value) <= limit else value[: limit - 1] + "…"
    out = []
    for c in text:
        if c in '"\\':
            out.append("\\" + c)
        elif 0xDC80 <= ord(c) <= 0xDCFF:  # a byte of a file name that is not UTF-8
            out.append(f"\\x{ord(c) - 0xDC00:02x}")
        elif is_forbidden_char(c):
            out.append(f"\\u{ord(c):04X}")
        else:
            out.append(c)
    return '"' + "".join(out) + '"'


def is_utf8(text: str) -> bool:
    """Whether a str came from valid UTF-8 (a file name that was not holds surrogate escapes)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def printable(text: str) -> str:
    """Text for a terminal: control characters other than newline and tab, and the undecodable bytes of a file
    name, escaped as \\xNN, so that no ESC or BEL from a file name reaches the terminal."""
    out = []
    for c in text:
        o = ord(c)
        if 0xDC80 <= o <= 0xDCFF:  # a byte os.fsdecode could not decode
            out.append(f"\\x{o - 0xDC00:02x}")
        elif c not in "\n\t" and is_forbidden_char(c):
            out.append(f"\\x{o:02x}" if o < 0x100 else f"\\u{o:04X}")
        else:
            out.append(c)
    return "".join(out)


def is_forbidden_char(c: str) -> bool:
    """Characters no config string may hold: Unicode category Cc, U+2028 and U+2029."""
    o = ord(c)
    return o < 0x20 or 0x7F <= o <= 0x9F or o in (0x2028, 0x2029)
