"""The commands README.md shows, as the tests that run them read them."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"


def bash_blocks(path: Path = README) -> list[list[str]]:
    """The command lines of every ```bash block, comments stripped."""
    blocks = re.findall(r"```bash\n(.*?)```", path.read_text(), flags=re.S)
    return [[re.sub(r"\s+#.*$", "", line).strip() for line in block.splitlines() if line.strip()] for block in blocks]


def commands() -> list[str]:
    return [line for block in bash_blocks() for line in block]


def section(title: str) -> list[str]:
    """Command lines of the bash blocks under the README heading `title`."""
    text = README.read_text()
    start = text.index(title)
    end = text.find("\n## ", start + 1)
    part = text[start:end if end > 0 else None]
    return [re.sub(r"\s+#.*$", "", line).strip()
            for block in re.findall(r"```bash\n(.*?)```", part, flags=re.S) for line in block.splitlines() if line.strip()]
