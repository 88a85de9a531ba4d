"""The README's code blocks, as the tests that run them read them."""
from __future__ import annotations

import re
from pathlib import Path

README = Path(__file__).resolve().parents[2] / "README.md"


def blocks(section: str, language: str) -> list[str]:
    """The ```language blocks of the README section whose heading is `section` (up to the next heading
    of the same or a higher level)."""
    text = README.read_text()
    head = re.search(rf"^(#+) {re.escape(section)}\n", text, re.M)
    assert head, f"the README has no section '{section}'"
    level = len(head.group(1))
    rest = text[head.end():]
    end = re.search(rf"^#{{1,{level}}} ", rest, re.M)
    body = rest[:end.start()] if end else rest
    return re.findall(rf"^ *```{language}\n(.*?)^ *```$", body, re.M | re.S)
