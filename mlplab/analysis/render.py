"""A report's blocks (``mlplab.analysis.blocks``) rendered twice: to Markdown, figures linked,
and to one self-contained HTML file that makes no network request.

The HTML embeds everything once: the static figures as base64 PNG, the maths as MathML, the
style (``assets/report.css``), the Vega, Vega-Lite and vega-embed JavaScript (vl-convert's
bundle) and the page's own script (``assets/report.js``: draws the charts, runs the filter bar,
sorts and searches the tables). Without JavaScript, and in print, the static figures show.
"""

from __future__ import annotations

import base64
import functools
import html
import json
import re
from importlib.resources import files
from pathlib import Path

import pandas as pd
from latex2mathml.converter import convert

from mlplab.analysis.blocks import Block, walk
from mlplab.analysis.charts import AXES, FOLDER, embedded_rows, param, values_of
from mlplab.analysis.fmt import markdown_table, pretty


def _rel(path: Path, folder: Path) -> str:
    p = Path(path)
    return (p.relative_to(folder) if p.is_relative_to(folder) else p).as_posix()


def _md_figure(png: Path, caption: str, folder: Path) -> str:
    rel = _rel(png, folder)
    svg = Path(rel).with_suffix(".svg").as_posix()
    return f"![{Path(png).stem}]({rel})\n\n{caption} ([SVG]({svg}))"


def to_markdown(blocks: list[Block], folder: Path) -> str:
    out = []
    for b in blocks:
        if b.kind in ("h1", "h2", "h3", "h4"):
            out.append("#" * int(b.kind[1]) + " " + b.body)
        elif b.kind in ("p", "summary"):
            out.append(b.body)
        elif b.kind == "list":
            out.append("\n".join(f"- {x}" for x in b.body))
        elif b.kind == "table":
            out.append(markdown_table(pretty(b.body)))
        elif b.kind == "figure":
            out.append(_md_figure(b.body, b.caption, folder))
        elif b.kind == "chart":
            out += [_md_figure(png, b.caption, folder) for png in b.files] or [b.caption]
        elif b.kind == "details":
            out.append(f"**{b.caption}**\n\n" + to_markdown(b.body, folder).rstrip("\n"))
        elif b.kind == "datatable":
            links = ", ".join(f"[{Path(f).name}]({_rel(f, folder)})" for f in b.files)
            out.append(f"{b.caption} ({len(b.body)} rows: {links})")
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


def _asset(name: str) -> str:
    return files("mlplab.analysis").joinpath("assets", name).read_text(encoding="utf-8")


@functools.cache
def vega_bundle() -> str:
    """Vega, Vega-Lite and vega-embed as one script (``window.vegaEmbed``), from vl-convert."""
    import vl_convert

    return vl_convert.javascript_bundle()


def _script_json(obj) -> str:
    """JSON safe inside <script>: no '</' can close the element."""
    return json.dumps(obj, ensure_ascii=False, allow_nan=False).replace("</", "<\\/")


def _png(path: Path, alt: str, cls: str = "") -> str:
    data = base64.b64encode(Path(path).read_bytes()).decode("ascii")
    klass = f' class="{cls}"' if cls else ""
    return f'<img{klass} alt="{html.escape(alt)}" src="data:image/png;base64,{data}">'


def _table(df: pd.DataFrame, cls: str = "") -> str:
    d = pretty(df)
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in d.columns)
    rows = "".join(
        "<tr>" + "".join(f"<td>{html.escape(v)}</td>" for v in r) + "</tr>" for r in d.itertuples(index=False)
    )
    klass = f' class="{cls}"' if cls else ""
    return f"<table{klass}><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>"


def filter_values(blocks: list[Block]) -> dict[str, list]:
    """Each axis some chart of the page can be filtered on, with its values over every chart
    (axes with one value are left out: nothing to choose)."""
    rows = [embedded_rows(b.body) for b in walk(blocks) if b.kind == "chart"]
    out = {}
    for axis in AXES:
        vals = [v for r in rows if axis in r for v in values_of(r, axis)]
        uniq = sorted(set(vals), key=lambda v: (isinstance(v, str), v))
        if len(uniq) > 1:
            out[axis] = uniq
    return out


def _filters(values: dict[str, list]) -> str:
    if not values:
        return ""
    parts = []
    for axis, vals in values.items():
        opts = '<option value="null">all</option>' + "".join(
            f'<option value="{html.escape(json.dumps(v))}">{html.escape(str(v))}</option>' for v in vals
        )
        name = "results folder" if axis == FOLDER else axis
        parts.append(f'<label>{html.escape(name)} <select data-param="{param(axis)}">{opts}</select></label>')
    return (
        '<nav id="filters" aria-label="filters"><span>Show only:</span> '
        + " ".join(parts)
        + ' <button type="button" id="reset-filters">show all</button></nav>'
    )


class _Html:
    """Renders blocks to HTML, numbering the charts it meets (each spec's script id)."""

    def __init__(self, blocks: list[Block]):
        self.blocks = blocks
        self.n = 0

    def render(self, blocks: list[Block]) -> list[str]:
        out = []
        for b in blocks:
            if b.kind in ("h1", "h2", "h3", "h4"):
                out.append(f"<{b.kind}>{_inline(b.body)}</{b.kind}>")
            elif b.kind == "p":
                out.append(f"<p>{_inline(b.body)}</p>")
            elif b.kind == "summary":
                out.append(f'<p class="summary">{_inline(b.body)}</p>')
            elif b.kind == "list":
                out.append("<ul>" + "".join(f"<li>{_inline(x)}</li>" for x in b.body) + "</ul>")
            elif b.kind == "table":
                out.append(_table(b.body))
            elif b.kind == "figure":
                img = _png(b.body, Path(b.body).stem)
                out.append(f"<figure>{img}<figcaption>{_inline(b.caption)}</figcaption></figure>")
            elif b.kind == "chart":
                out.append(self.chart(b))
            elif b.kind == "filters":
                out.append(_filters(filter_values(self.blocks)))
            elif b.kind == "details":
                inner = "\n".join(self.render(b.body))
                out.append(f"<details><summary>{_inline(b.caption)}</summary>\n{inner}\n</details>")
            elif b.kind == "datatable":
                links = ", ".join(
                    f'<a href="{html.escape(Path(f).name)}" download>{html.escape(Path(f).name)}</a>' for f in b.files
                )
                out.append(
                    f'<div class="datatable"><p>{_inline(b.caption)} {len(b.body)} rows; every digit in {links} '
                    f'beside this page. <input type="search" placeholder="filter rows" aria-label="filter rows">'
                    f' <span class="shown"></span></p>{_table(b.body, "sortable")}</div>'
                )
            elif b.kind == "code":
                out.append(f"<pre><code>{html.escape(b.body)}</code></pre>")
        return out

    def chart(self, b: Block) -> str:
        self.n += 1
        sid = f"spec-{self.n}"
        static = "".join(_png(p, Path(p).stem, "static") for p in b.files)
        note = b.body.get("description", "")
        caption = _inline(b.caption) + (f' <span class="note">{_inline(note)}</span>' if note else "")
        return (
            f'<figure class="chart"><div class="vega" data-spec="{sid}"></div>'
            f'<script type="application/json" id="{sid}">{_script_json(b.body)}</script>'
            f"{static}<figcaption>{caption}</figcaption></figure>"
        )


def to_html(blocks: list[Block]) -> str:
    body = "\n".join(_Html(blocks).render(blocks))
    title = html.escape(blocks[0].body if blocks else "mlplab report")
    has_charts = any(b.kind == "chart" for b in walk(blocks))
    scripts = (
        f"<script>{vega_bundle()}</script>\n<script>{_asset('report.js')}</script>\n"
        if has_charts or any(b.kind == "datatable" for b in walk(blocks))
        else ""
    )
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{title}</title><style>{_asset('report.css')}</style></head>\n<body>\n"
        + body
        + "\n"
        + scripts
        + "</body></html>\n"
    )
