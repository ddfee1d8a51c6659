"""Read a config file and decode its TOML. Every failure becomes a finding, never a traceback."""

from __future__ import annotations

import dataclasses
import os
import re
import stat
import sys
import typing as t
from pathlib import Path

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python 3.10 only
    import tomli as tomllib

from sglangc.errors import ConfigError, Finding, show

MAX_BYTES = 1024 * 1024
MAX_DEPTH = 32
# A key of more than MAX_DEPTH dotted parts where a key may stand (line start, table header, inline table),
# found before the parser sees it. Each part starts with a character no other part can, so the search is linear.
_KEY_PART = r"""(?:[A-Za-z0-9_-]+|"(?:[^"\\\n]|\\.)*"|'[^'\n]*')"""
_LONG_DOTTED_KEY = re.compile(rf"(?:^|[{{,\[])[ \t]*(?:{_KEY_PART}[ \t]*\.[ \t]*){{{MAX_DEPTH},}}", re.MULTILINE)


@dataclasses.dataclass(frozen=True)
class SourceDoc:
    """A decoded config: the file name it is reported under, its raw bytes and its TOML data."""

    config: str
    raw: bytes
    data: dict[str, t.Any]


STDIN = "<stdin>"  # what a config read from `-` is called in findings


def load(path: str | Path) -> SourceDoc:
    """The config at `path`; `-` reads it from standard input."""
    if str(path) == "-":
        config, raw = STDIN, _read_stdin()
    else:
        config = str(path)
        raw = _read(Path(path), config)
    return SourceDoc(config=config, raw=raw, data=parse(raw, config))


def parse(raw: bytes, config: str) -> dict[str, t.Any]:
    def fail(message: str, line: int = 0, col: int = 0) -> t.NoReturn:
        raise ConfigError([Finding(config, "", message, line=line, col=col)])

    if len(raw) > MAX_BYTES:
        fail(f"file is {len(raw):,} bytes; a config may be at most {MAX_BYTES:,} bytes")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        line_start = raw.rfind(b"\n", 0, e.start) + 1
        fail(
            f"not valid UTF-8 (byte {e.start}: {raw[e.start : e.start + 1]!r}); save the file as UTF-8",
            line=raw.count(b"\n", 0, e.start) + 1,
            col=len(raw[line_start : e.start].decode("utf-8", "replace")) + 1,
        )
    if text.startswith("\ufeff"):
        fail("starts with a byte order mark (BOM); save the file as UTF-8 without BOM", line=1, col=1)
    if "\0" in text:  # TOML would say "invalid statement"; say what is wrong
        at = text.index("\0")
        fail(
            "contains a NUL character: not a text file",
            line=text.count("\n", 0, at) + 1,
            col=at - text.rfind("\n", 0, at),
        )
    if not text.strip():
        fail("file is empty; a config needs at least `version = 1` and one [instances.<name>] table")
    deep = _LONG_DOTTED_KEY.search(text)
    if deep:  # the TOML parser's time and memory grow with the square of a dotted key's length
        at = deep.start()
        fail(
            f"nested too deeply: a dotted key of more than {MAX_DEPTH} parts; a config may nest at most {MAX_DEPTH} levels",
            line=text.count("\n", 0, at) + 1,
            col=at - text.rfind("\n", 0, at),
        )
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        line, col = _position(e, text)
        fail(_toml_message(e), line=line or 1, col=col or 1)
    except RecursionError:
        fail(f"nested too deeply; a config may nest at most {MAX_DEPTH} levels")
    if _depth(data) > MAX_DEPTH:
        fail(f"nested too deeply; a config may nest at most {MAX_DEPTH} levels")
    return data


def _read(path: Path, config: str) -> bytes:
    """The file's bytes. Only a regular file is read: it is opened without blocking (a FIFO would wait for a
    writer forever) and checked with fstat before a byte is read."""

    def fail(message: str) -> t.NoReturn:
        raise ConfigError([Finding(config, "", message)])

    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC)
    except FileNotFoundError:
        fail("no such file")
    except PermissionError:
        fail("permission denied")
    except OSError as e:
        fail(f"cannot read: {e.strerror or e}")
    try:
        mode = os.fstat(fd).st_mode
        if stat.S_ISDIR(mode):
            fail("is a directory, not a config file")
        if not stat.S_ISREG(mode):
            fail("is not a regular file (a FIFO, socket or device); a config is read from a file")
        chunks, size = [], 0
        while size <= MAX_BYTES:
            chunk = os.read(fd, MAX_BYTES + 1 - size)
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
    except OSError as e:
        fail(f"cannot read: {e.strerror or e}")
    finally:
        os.close(fd)
    if size > MAX_BYTES:
        fail(f"file is larger than {MAX_BYTES:,} bytes; a config may be at most {MAX_BYTES:,} bytes")
    return b"".join(chunks)


def read_sglang_config(path: Path, where: str, config: str) -> tuple[dict[str, t.Any], list[Finding]]:
    """SGLang's own YAML config of one instance (`sglang_config`): its usable entries (flag name → value) and a
    finding at `where` for each problem. A file that cannot be read or parsed raises ConfigError; a `null` value is
    refused (SGLang's --config would pass the string "None")."""

    def fail(message: str) -> t.NoReturn:
        raise ConfigError([Finding(config, where, f"{show(str(path))}: {message}")])

    try:
        raw = _read(path, config)
    except ConfigError as e:
        fail(e.findings[0].message)
    import yaml

    class NoAliases(yaml.SafeLoader):  # an alias can expand a small file into a huge value (a "YAML bomb")
        def compose_node(self, parent: t.Any, index: t.Any) -> t.Any:
            if self.check_event(yaml.AliasEvent):
                raise yaml.YAMLError("aliases (*name) are not supported; write the value out")
            return super().compose_node(parent, index)

    try:
        data = yaml.load(raw.decode("utf-8"), Loader=NoAliases)
    except UnicodeDecodeError:
        fail("not valid UTF-8")
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        at = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        fail(f"YAML syntax error{at}: {getattr(e, 'problem', None) or e}")
    except RecursionError:
        fail(f"nested too deeply; at most {MAX_DEPTH} levels")
    if not isinstance(data, dict):
        fail("must hold a mapping of SGLang flag names to values (as SGLang's --config file does)")
    entries, problems = {}, []
    for key, value in data.items():
        if not isinstance(key, str):
            problems.append(f"key {show(key)} is not a flag name")
        elif value is None:
            problems.append(f'{key}: null would reach SGLang as the string "None"; leave the key out')
        elif isinstance(value, (dict, list)) and _depth(value) > MAX_DEPTH:
            problems.append(f"{key}: nested too deeply")
        elif not _plain(value):
            problems.append(f"{key}: only strings, numbers, booleans, lists and mappings can become flags")
        else:
            entries[key] = value
    return entries, [Finding(config, where, f"{show(str(path))}: {p}") for p in problems]


def _plain(value: t.Any) -> bool:
    if isinstance(value, dict):
        return all(isinstance(k, str) and _plain(v) for k, v in value.items())
    if isinstance(value, list):
        return all(_plain(v) for v in value)
    return isinstance(value, (str, int, float, bool))


def _read_stdin() -> bytes:
    data = sys.stdin.buffer.read(MAX_BYTES + 1)
    if len(data) > MAX_BYTES:
        raise ConfigError(
            [Finding(STDIN, "", f"more than {MAX_BYTES:,} bytes; a config may be at most {MAX_BYTES:,} bytes")]
        )
    return data


def _position(e: Exception, text: str) -> tuple[int, int]:
    line, col = getattr(e, "lineno", 0), getattr(e, "colno", 0)
    if line:
        return line, col
    # tomllib before 3.14 keeps the position only in the message: "... (at line 3, column 7)"
    msg = str(e)
    if "(at line " in msg:
        tail = msg.rsplit("(at line ", 1)[1].rstrip(")")
        left, _, right = tail.partition(", column ")
        if left.isdigit() and right.isdigit():
            return int(left), int(right)
    if "(at end of document)" in msg:
        return text.count("\n") + 1, len(text.rsplit("\n", 1)[-1]) + 1
    return 1, 1


def _toml_message(e: Exception) -> str:
    msg = getattr(e, "msg", None) or str(e)
    for tail in (" (at end of document)",):
        msg = msg.replace(tail, "")
    if " (at line " in msg:
        msg = msg.rsplit(" (at line ", 1)[0]
    return f"TOML syntax error: {msg[:1].lower()}{msg[1:]}"


def _depth(data: t.Any) -> int:
    """How deeply tables and arrays nest (iterative: a hostile file cannot exhaust the stack)."""
    deepest, stack = 1, [(data, 1)]
    while stack:
        value, depth = stack.pop()
        if depth > MAX_DEPTH:
            break
        children = value.values() if isinstance(value, dict) else value
        if children:
            deepest = max(deepest, depth + 1)
        stack.extend((child, depth + 1) for child in children if isinstance(child, (dict, list)))
    return deepest


_BARE = r"[A-Za-z0-9_-]+"


def locate(raw: bytes, key: str) -> tuple[int, int]:
    """Where a dotted key path (`instances.a.server_args.tp`) is written in a config: (line, column) of its last
    part that can be found, (0, 0) when none can. Best effort, for editors: table headers, dotted keys and inline
    tables with bare or quoted keys; array indexes are skipped."""
    parts = [p for p in re.split(r"\[\d+\]", key) if p]
    names = [n for part in parts for n in part.split(".") if n]
    if not names or not all(re.fullmatch(_BARE, n) for n in names):
        return 0, 0
    lines = raw.decode("utf-8", "replace").split("\n")
    headers = [
        (i, [h.strip().strip("\"'") for h in m[1].split(".")])
        for i, line in enumerate(lines)
        if (m := re.match(r"\s*\[+([^\]]+)\]", line))
    ]
    start, depth = 0, 0
    for i, header in headers:
        if len(header) > depth and names[: len(header)] == header:
            start, depth = i, len(header)
    end = (
        next((i for i, _ in headers if i > start), len(lines)) if depth else (headers[0][0] if headers else len(lines))
    )
    found = (start + 1, 1) if depth else (0, 0)
    line, col = start + (1 if depth else 0), 0
    for name in names[depth:]:
        pattern = re.compile(rf"(?:^|[{{,.\s])[\"']?({re.escape(name)})[\"']?\s*[=.]")
        for i in range(line, end):
            m = pattern.search(lines[i], col if i == line else 0)
            if m:
                line, col = i, m.end(1)
                found = (i + 1, m.start(1) + 1)
                break
        else:
            break
    return found
