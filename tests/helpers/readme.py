"""The README's code blocks, as the tests that run them read them."""
from __future__ import annotations

import re
from pathlib import Path

README = Path(__file__).resolve().parents[2] / "README.md"


def blocks(section: str, language: str) -> list[str]:
    """The ```language blocks of the README section whose heading is `section` (up to the next heading
    of the same or a higher level)."""
    text = README.read_text()
    # headings outside code blocks only (a shell comment in a block starts with "# " too)
    prose = re.sub(r"^( *```).*?^ *```$", lambda m: re.sub(r"[^\n]", " ", m.group(0)), text, flags=re.M | re.S)
    head = re.search(rf"^(#+) {re.escape(section)}\n", prose, re.M)
    assert head, f"the README has no section '{section}'"
    level = len(head.group(1))
    end = re.compile(rf"^#{{1,{level}}} ", re.M).search(prose, head.end())
    body = text[head.end():end.start() if end else len(text)]
    return re.findall(rf"^ *```{language}\n(.*?)^ *```$", body, re.M | re.S)
