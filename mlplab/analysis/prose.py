"""A study's prose: Markdown next to its code, in named pieces with named placeholders.

A prose file (``<study package>/prose.md``) is plain Markdown cut into pieces by comments::

    <!-- ran -->
    {n} runs of {remedies}: each against
    its plain twin.

A piece's lines are joined with single spaces (Markdown's soft line breaks; blank lines
skipped), or, in a list piece (lines starting with a dash and a space), into one item per dash;
a list of ``key: text`` items is also a mapping (``mapping``). ``{name}`` placeholders are filled
by ``str.format_map`` with the numbers the study's Python computes (literal braces are
doubled); a piece asked for without values is returned as written.
"""

from __future__ import annotations

import re
from importlib import resources

MARKER = re.compile(r"^<!-- ([\w.-]+) -->$", re.MULTILINE)


class Prose:
    """The pieces of one prose file, by name."""

    def __init__(self, text: str):
        parts = MARKER.split(text)
        self.pieces = {name: body.strip() for name, body in zip(parts[1::2], parts[2::2])}

    @classmethod
    def of(cls, package: str, filename: str = "prose.md") -> Prose:
        """The prose file ``filename`` of the package ``package`` (shipped as package data)."""
        return cls(resources.files(package).joinpath(filename).read_text(encoding="utf-8"))

    def __call__(self, name: str, **values) -> str:
        """The piece ``name`` as one paragraph, its placeholders filled with ``values``."""
        text = " ".join(line.strip() for line in self.pieces[name].splitlines() if line.strip())
        return text.format_map(values) if values else text

    def items(self, name: str, **values) -> list[str]:
        """The list piece ``name``: one string per list item (a line starting with a dash), placeholders filled."""
        items: list[str] = []
        for line in self.pieces[name].splitlines():
            line = line.strip()
            if line.startswith("- "):
                items.append(line[2:])
            elif line:
                items[-1] += " " + line
        return [i.format_map(values) for i in items] if values else items

    def mapping(self, name: str, **values) -> dict[str, str]:
        """The list piece ``name`` of ``- key: text`` items as {key: text}, placeholders filled."""
        return dict(item.split(": ", 1) for item in self.items(name, **values))
