"""A report's blocks (``mlplab.analysis.blocks``) rendered twice: to Markdown, figures linked,
and to one self-contained HTML file, figures embedded as base64 PNG and maths as MathML (no
script, no font download)."""

from __future__ import annotations

import base64
import html
import re
from pathlib import Path

from latex2mathml.converter import convert

from mlplab.analysis.blocks import Block
from mlplab.analysis.fmt import markdown_table, pretty


def to_markdown(blocks: list[Block], folder: Path) -> str:
    out = []
    for b in blocks:
        if b.kind in ("h1", "h2", "h3"):
            out.append("#" * int(b.kind[1]) + " " + b.body)
        elif b.kind == "p":
            out.append(b.body)
        elif b.kind == "list":
            out.append("\n".join(f"- {x}" for x in b.body))
        elif b.kind == "table":
            out.append(markdown_table(pretty(b.body)))
        elif b.kind == "figure":
            rel = Path(b.body).relative_to(folder) if Path(b.body).is_relative_to(folder) else Path(b.body)
            out.append(
                f"![{Path(b.body).stem}]({rel.as_posix()})\n\n{b.caption} ([SVG]({rel.with_suffix('.svg').as_posix()}))"
            )
        elif b.kind == "code":
            out.append(f"```\n{b.body}\n```")
    return "\n\n".join(out) + "\n"


def _maths(tex: str) -> str:
    """LaTeX to inline MathML (self-contained HTML: no script, no font download)."""
    return convert(tex)


def _inline(text: str) -> str:
    """Escape, then $maths$ to MathML, `code`, **bold** and *italic* to HTML."""
    parts = re.split(r"\$([^$]+)\$", text)  # odd items are maths
    out = []
    for i, part in enumerate(parts):
        if i % 2:
            out.append(_maths(part))
            continue
        s = html.escape(part)
        s = re.sub(r"`([^`]+)`", r"<code>\1</code>", s)
        s = re.sub(r"\*\*([^*]+)\*\*", r"<strong>\1</strong>", s)
        out.append(re.sub(r"(?<![\w*])\*([^*\s][^*]*)\*(?![\w*])", r"<em>\1</em>", s))
    return "".join(out)


CSS = (
    "body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 30px;"
    "line-height:1.45;color:#222}\n"
    "table{border-collapse:collapse;font-size:0.82em;margin:0.8em 0}"
    "td,th{border:1px solid #ccc;padding:3px 6px;vertical-align:top;text-align:left}\n"
    "th{background:#f3f3f3}code,pre{background:#f6f6f6;font-size:0.9em}"
    "pre{padding:0.6em;overflow-x:auto;white-space:pre-wrap}\n"
    "figure{margin:1.2em 0}img{max-width:100%;height:auto}"
    "figcaption{font-size:0.9em;color:#444}math{font-size:1.05em}\n"
    "@media print{body{max-width:none;margin:0;padding:0;font-size:10pt}"
    "figure,table,pre{break-inside:avoid;page-break-inside:avoid}\n"
    "tr,img{break-inside:avoid;page-break-inside:avoid}h1,h2,h3{break-after:avoid;page-break-after:avoid}\n"
    "figcaption{break-before:avoid;page-break-before:avoid}a{color:inherit;text-decoration:none}}"
)


def to_html(blocks: list[Block]) -> str:
    out = []
    for b in blocks:
        if b.kind in ("h1", "h2", "h3"):
            out.append(f"<{b.kind}>{_inline(b.body)}</{b.kind}>")
        elif b.kind == "p":
            out.append(f"<p>{_inline(b.body)}</p>")
        elif b.kind == "list":
            out.append("<ul>" + "".join(f"<li>{_inline(x)}</li>" for x in b.body) + "</ul>")
        elif b.kind == "table":
            d = pretty(b.body)
            head = "".join(f"<th>{html.escape(str(c))}</th>" for c in d.columns)
            rows = "".join(
                "<tr>" + "".join(f"<td>{html.escape(v)}</td>" for v in r) + "</tr>" for r in d.itertuples(index=False)
            )
            out.append(f"<table><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>")
        elif b.kind == "figure":
            data = base64.b64encode(Path(b.body).read_bytes()).decode("ascii")
            img = f'<img alt="{html.escape(Path(b.body).stem)}" src="data:image/png;base64,{data}">'
            out.append(f"<figure>{img}<figcaption>{_inline(b.caption)}</figcaption></figure>")
        elif b.kind == "code":
            out.append(f"<pre><code>{html.escape(b.body)}</code></pre>")
    title = html.escape(blocks[0].body if blocks else "mlplab report")
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{title}</title><style>{CSS}</style></head>\n<body>\n" + "\n".join(out) + "\n</body></html>\n"
    )
