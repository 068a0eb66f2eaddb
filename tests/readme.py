"""The README's code blocks, found by their language and a line they contain."""

from __future__ import annotations

import re
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"
_BLOCK = re.compile(r"^```(\w+)\n(.*?)^```$", re.MULTILINE | re.DOTALL)


def block(language: str, containing: str, path: Path = README) -> str:
    """The one block of ``language`` that contains ``containing``."""
    found = [
        text
        for lang, text in _BLOCK.findall(path.read_text())
        if lang == language and containing in text
    ]
    assert len(found) == 1, f"{len(found)} {language} blocks in {path.name} contain {containing!r}"
    return found[0]
