"""Sphinx configuration of mlplab's documentation site: `make docs` builds it offline into docs/site/.

Markdown pages (MyST), the API from the docstrings (autodoc), the furo theme; the tables that
restate the code are generated from it at build time (docs/_ext/mlplab_tables.py).
"""

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE / "_ext"))

import mlplab  # noqa: E402

project = "mlplab"
author = "the mlplab authors"
copyright = "mlplab's authors"  # noqa: A001
version = release = mlplab.__version__

extensions = ["myst_parser", "sphinx.ext.autodoc", "mlplab_tables"]
source_suffix = {".md": "markdown"}
exclude_patterns = ["site", "_build", "README.md", ".*"]
root_doc = "index"

# MyST: ::: fences, headings as link targets (page.md#a-heading); no maths extension: MathJax would
# come from a CDN, and the site builds and reads offline (the maths is Unicode, as in the code)
myst_enable_extensions = ["colon_fence", "deflist"]
myst_heading_anchors = 3

# autodoc: members in the order of the source, signatures without the type hints' noise
autodoc_member_order = "bysource"
autodoc_typehints = "description"
autodoc_default_options = {"members": True, "show-inheritance": False}

html_theme = "furo"
html_title = f"mlplab {release}"
html_static_path: list[str] = []
html_last_updated_fmt = None
html_show_sourcelink = False
# offline: no web fonts, no search index fetched from anywhere (furo bundles its assets)
html_theme_options = {"navigation_with_keys": True}

nitpicky = False
suppress_warnings: list[str] = []
