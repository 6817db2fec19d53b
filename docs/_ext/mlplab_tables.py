"""Sphinx directives that render the tables which restate the code, from the code, at build time.

    ```{mlplab-fields}          every RunSpec field: config key, runs column and type, default,
    ```                         allowed values, meaning (mlplab.spec.FIELDS)
    ```{mlplab-keys}            the keys of the command line that are not run fields (mlplab.config)
    ```{mlplab-columns} steps   a results table's columns, types and meanings (mlplab.results)
    ```{mlplab-groups}          conf/'s config groups, their options and what each sets
    ```{mlplab-sweeps}          conf/sweep/: each sweep file, what it sweeps, its first sentence
    ```{mlplab-make}            the Makefile's targets and their ## comments (what make help prints)

    .. mlplab-automodules::     (inside {eval-rst}) autodoc of every module of mlplab, a section each

and a hook that reads the docstrings as the plain text they are written in: indented blocks
(equations, tables) are kept as preformatted text and |x| is an absolute value, not a
reStructuredText substitution.

A new field, column, option, sweep or target appears in the documentation with no edit of it.
"""

from __future__ import annotations

import pkgutil
import re
from pathlib import Path

import yaml
from docutils import nodes
from docutils.statemachine import StringList
from sphinx.util.docutils import SphinxDirective
from sphinx.util.nodes import nested_parse_with_titles

ROOT = Path(__file__).resolve().parents[2]
CONF = ROOT / "conf"


# -- docutils tables -----------------------------------------------------------------------------
def inline(text: str) -> list[nodes.Node]:
    """Text with `code` spans as docutils inline nodes."""
    out: list[nodes.Node] = []
    for i, part in enumerate(re.split(r"`([^`]*)`", text)):
        if part:
            out.append(nodes.literal(part, part) if i % 2 else nodes.Text(part))
    return out


def cell(value) -> nodes.entry:
    entry = nodes.entry()
    para = nodes.paragraph()
    para.extend(inline(value) if isinstance(value, str) else value)
    entry += para
    return entry


def table(header: list[str], rows: list[list], widths: list[int]) -> nodes.table:
    """A docutils table: header cells and rows of cells (text with `code`, or inline nodes)."""
    tbl = nodes.table(classes=["mlplab-generated"])
    group = nodes.tgroup(cols=len(header))
    tbl += group
    for w in widths:
        group += nodes.colspec(colwidth=w)
    head = nodes.thead()
    group += head
    body = nodes.tbody()
    group += body
    for target, cells in [(head, header)] + [(body, r) for r in rows]:
        row = nodes.row()
        row.extend(cell(c) for c in cells)
        target += row
    return tbl


def code(text) -> str:
    return f"`{text}`"


def yaml_value(v) -> str:
    """A value as YAML spells it on the command line: null, true, 0.5."""
    return yaml.safe_dump(v, default_flow_style=True).strip().removesuffix("...").strip()


# -- the run's fields and the command line's keys --------------------------------------------------
class Fields(SphinxDirective):
    """Every RunSpec field, in declaration order."""

    def run(self):
        import mlplab.spec as spec

        self.env.note_dependency(spec.__file__)
        rows = []
        for f in spec.FIELDS:
            m = f.metadata
            key = code(m["key"]) + ("" if m["config"] else " (filled in from the data)")
            column = [nodes.literal(f.name, f.name), nodes.Text(f" {spec.COLUMN_TYPES[f.name]}")]
            doc = m["doc"] or (f"an option of the `{m['key']}` config group" if m["group"] else "")
            rows.append([key, column, code(yaml_value(f.default)), m["check"].allowed(), doc])
        return [table(["config key", "runs column", "default", "allowed", "meaning"], rows, [14, 14, 8, 22, 32])]


class Keys(SphinxDirective):
    """The primary config's keys that steer the command line rather than a run."""

    def run(self):
        import mlplab.config as config

        self.env.note_dependency(config.__file__)
        rows = [[code(name), code(yaml_value(default)), doc] for name, _, default, doc in config.CLI_KEYS]
        return [table(["key", "default", "meaning"], rows, [14, 10, 50])]


# -- the results tables ------------------------------------------------------------------------
def arrow_type(t) -> str:
    """A column's type as readers see it: a dictionary of strings is a category."""
    import pyarrow as pa

    if pa.types.is_dictionary(t):
        return "category"
    return {"double": "float64", "float": "float32", "halffloat": "float16"}.get(str(t), str(t))


class Columns(SphinxDirective):
    """A results table's columns. In ``runs`` the config columns (one per RunSpec field) are one
    row that points at the fields' table."""

    required_arguments = 1

    def run(self):
        import mlplab.results as res

        self.env.note_dependency(res.__file__)
        name = self.arguments[0]
        if name not in res.SCHEMAS:
            raise self.error(f"no results table {name!r}; the tables are {sorted(res.SCHEMAS)}")
        rows, config = [], []
        for field in res.SCHEMAS[name]:
            if name == "runs" and field.name in res.CONFIG_TYPES:
                if not config:
                    rows.append(config)
                config.append(field.name)
                continue
            if field.name not in res.COLUMN_DOCS:
                raise self.error(f"column {field.name!r} of {name} has no entry in mlplab.results.COLUMN_DOCS")
            rows.append([code(field.name), arrow_type(field.type), res.COLUMN_DOCS[field.name]])
        if config:
            names = ", ".join(code(c) for c in config)
            meaning = (
                "the run's config, one column per field of `RunSpec` (see the fields' table for their types);"
                " `batch_size`, `log_every` and `eval_every` resolved to numbers; for a data set of fixed"
                " shape (`digits`, `mnist`, `file`) the data's real `n_samples`, `n_features`, `n_classes`"
            )
            rows[rows.index(config)] = [names, "as declared", meaning]
        return [table(["column", "type", "meaning"], rows, [18, 10, 50])]


# -- conf/ ----------------------------------------------------------------------------------------
def comment(path: Path) -> str:
    """The comment lines at the top of a YAML file (without ``# @package``), as one paragraph."""
    lines = []
    for line in path.read_text().splitlines():
        if not line.startswith("#"):
            break
        text = line.lstrip("#").strip()
        if not text.startswith("@package"):
            lines.append(text)
    return " ".join(lines).strip()


def first_sentence(text: str) -> str:
    """Up to the first full stop that ends a sentence (not "et al.")."""
    match = re.search(r"(?<![ .]al)(?<=[a-z0-9)\]`])\.(\s+[A-Z(]|\s*$)", text)
    return text[: match.start() + 1] if match else text


def flat(d: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(flat(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def sets(group: str, data: dict, text: str = "") -> list[str]:
    """What an option file sets, as KEY=VALUE overrides (``text``: the file, whose first line may
    put it at the root, ``# @package _global_``, where its group's own keys sit under the group's
    name; an option listed in its own defaults, ``- sgd``, is the base it starts from)."""
    out = []
    for entry in data.pop("defaults", None) or []:
        for k, v in entry.items() if isinstance(entry, dict) else []:
            out.append(f"{k.removeprefix('override ').lstrip('/')}={v}")
    if "hydra" in data:
        return out
    at_root = text.startswith("# @package _global_")
    if at_root and group not in ("remedy", "sweep"):
        data = {**{f"{group}.{k}": v for k, v in (data.pop(group, None) or {}).items()}, **data}
        data.pop(f"{group}.name", None)
        prefix = ""
    else:
        data.pop("name", None)
        prefix = "" if group in ("remedy", "sweep") else f"{group}."
    out += [f"{prefix}{k}={yaml_value(v)}" for k, v in flat(data).items()]
    return out


def defaults() -> dict[str, str]:
    """The option config.yaml chooses for each group."""
    chosen = {}
    for entry in yaml.safe_load((CONF / "config.yaml").read_text())["defaults"]:
        if isinstance(entry, dict):
            for k, v in entry.items():
                chosen[k] = v
    return chosen


def registries() -> dict[str, dict]:
    """Each config group that chooses a RunSpec field, and the registry of its options (the field's
    check lists them: ``ACTIVATIONS``, ``INITS``, ...)."""
    import mlplab.spec as spec

    return {
        f.metadata["key"]: f.metadata["check"].choices
        for f in spec.FIELDS
        if f.metadata["group"] and isinstance(getattr(f.metadata["check"], "choices", None), dict)
    }


def docstring(obj) -> str:
    """The first sentence of an object's docstring, ``code`` as `code`."""
    text = (getattr(obj, "__doc__", None) or "").strip().split("\n\n")[0]
    return first_sentence(" ".join(line.strip() for line in text.splitlines()).replace("``", "`"))


class Groups(SphinxDirective):
    """Each config group of conf/ (but sweep), each option, the default in bold, what it sets, and
    what it is: the option file's comment, or else the docstring of what it names in the code."""

    def run(self):
        chosen, code_of = defaults(), registries()
        self.env.note_dependency(str(CONF / "config.yaml"))
        rows = []
        for group in sorted(p.name for p in CONF.iterdir() if p.is_dir() and p.name != "sweep"):
            for i, path in enumerate(sorted((CONF / group).glob("*.yaml"))):
                self.env.note_dependency(str(path))
                option = nodes.literal(f"{group}={path.stem}", f"{group}={path.stem}")
                name = [nodes.strong("", "", option)] if chosen.get(group) == path.stem else [option]
                text = path.read_text()
                values = ", ".join(code(s) for s in sets(group, yaml.safe_load(text) or {}, text))
                about = comment(path) or docstring(code_of.get(group, {}).get(path.stem))
                rows.append([code(group) if i == 0 else "", name, values, about])
        return [table(["group", "option", "sets", "what it is"], rows, [8, 18, 24, 36])]


class Sweeps(SphinxDirective):
    """Each sweep file of conf/sweep/: its first sentence and what it sweeps (hydra.sweeper.params)."""

    def run(self):
        rows = []
        for path in sorted((CONF / "sweep").glob("*.yaml")):
            self.env.note_dependency(str(path))
            data = yaml.safe_load(path.read_text()) or {}
            params = ((data.get("hydra") or {}).get("sweeper") or {}).get("params") or {}
            grid = "; ".join(f"`{k}` {', '.join(str(v).split(','))}" for k, v in params.items())
            about = first_sentence(comment(path))
            rows.append([code(f"sweep={path.stem}"), f"{about} Sweeps {grid}." if grid else about])
        return [table(["sweep", "what it is, and what it sweeps"], rows, [16, 60])]


# -- the Makefile ---------------------------------------------------------------------------------
def make_targets() -> list[tuple[str, str]]:
    """(target, its ## comment), as ``make help`` lists them."""
    text = (ROOT / "Makefile").read_text()
    return re.findall(r"^([a-zA-Z_-]+):.*?## (.*)$", text, flags=re.M)


class Make(SphinxDirective):
    def run(self):
        self.env.note_dependency(str(ROOT / "Makefile"))
        rows = [[code(f"make {t}"), doc] for t, doc in make_targets()]
        return [table(["target", "what it does"], rows, [14, 60])]


# -- the API reference ----------------------------------------------------------------------------
def modules() -> list[str]:
    """Every module of the mlplab package (but ``__main__``), packages before their modules."""
    import mlplab

    found = pkgutil.walk_packages(mlplab.__path__, "mlplab.")
    return ["mlplab"] + sorted(m.name for m in found if not m.name.endswith("__main__"))


class AutoModules(SphinxDirective):
    """A section per module of mlplab, with autodoc's documentation of its members: a new module
    is documented with no edit of the pages. Use inside ``{eval-rst}``."""

    option_spec = {"under": str}

    def run(self):
        under = self.options.get("under", "mlplab")
        lines = []
        for name in modules():
            if name != under and not name.startswith(under + "."):
                continue
            if under == "mlplab" and name.startswith("mlplab.analysis"):
                continue
            lines += [name, "-" * len(name), "", f".. automodule:: {name}"]
            lines += ["   :members:", "   :ignore-module-all:", ""]
        node = nodes.section()
        node.document = self.state.document
        nested_parse_with_titles(self.state, StringList(lines, source="mlplab-automodules"), node)
        return node.children


_LITERAL = re.compile(r"(``.*?``)")


def _escape_bars(line: str) -> str:
    """|x| outside ``code`` is an absolute value: escape it from reStructuredText's substitutions."""
    parts = _LITERAL.split(line)
    return "".join(p if i % 2 else p.replace("|", "\\|") for i, p in enumerate(parts))


def _list_item(line: str) -> bool:
    return bool(re.match(r"(\*|-|\d+\.) ", line))


def plain_docstring(app, what, name, obj, options, lines: list[str]) -> None:
    """Docstrings are plain text: each indented block (an equation, a table, a layout) is shown as
    written, a literal block, but a list item's continuation lines, the rows of a table and blocks
    already marked ``::``."""
    out: list[str] = []
    table = False
    i = 0
    while i < len(lines):
        line = lines[i]
        if re.fullmatch(r"=+( +=+)+\s*", line):  # a simple table's border: the last is followed by a blank
            table = not table or (i + 1 < len(lines) and bool(lines[i + 1].strip()))
        if line.startswith(" ") and line.strip() and not table:
            before = next((x for x in reversed(out) if x.strip()), "")
            block = []
            while i < len(lines) and (not lines[i].strip() or lines[i].startswith(" ")):
                block.append(lines[i])
                i += 1
            while block and not block[-1].strip():
                block.pop()
            if before.rstrip().endswith("::"):
                out += ["", *block, ""]
            elif _list_item(before) and out and out[-1].strip():
                out += [*(_escape_bars(x) for x in block), ""]
            else:
                out += ["", "::", "", *block, ""]
            continue
        out.append(_escape_bars(line))
        i += 1
    lines[:] = out


def setup(app):
    app.connect("autodoc-process-docstring", plain_docstring)
    app.add_directive("mlplab-automodules", AutoModules)
    for name, directive in [
        ("mlplab-fields", Fields),
        ("mlplab-keys", Keys),
        ("mlplab-columns", Columns),
        ("mlplab-groups", Groups),
        ("mlplab-sweeps", Sweeps),
        ("mlplab-make", Make),
    ]:
        app.add_directive(name, directive)
    return {"version": "1", "parallel_read_safe": True, "parallel_write_safe": True}
