"""``make test-browser``: the blog and remedies reports opened in a real, headless Chromium.

Opt-in and not part of ``make test`` (it installs Debian's ``chromium`` as root when missing, and
builds the studies' results when they are missing: ``make blog``, ``make remedies``). Playwright
for Python drives the system's browser (no browser is downloaded). For each report, from
``file://``, with the network off:

1. no request leaves the file (every request the page makes is recorded; only the file itself is
   allowed), and the console shows no error;
2. every chart is drawn, with marks (the SVG of each chart has mark elements);
3. setting the filter ``depth = 16`` changes the number of drawn marks of every chart whose rows
   have a depth, to exactly the number drawn from those rows filtered beforehand, and leaves the
   other charts as they were; "show all" brings every chart back;
4. printed to PDF on A4, the summary and the verdict map come first: the map's static image
   ends within the first page (the page laid out at A4's printable width);
5. with JavaScript off, every figure shows its static image;
6. saves screenshots of the first screen and of one filtered chart, and the PDF, under
   ``results/<study>/browser/``.

Exit code 0 when all of it holds; a check that fails says which, in one line.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from mlplab.analysis.charts import pack, unpack

REPO = Path(__file__).resolve().parents[2]
STUDIES = ("blog", "remedies")
CHROMIUM = ("chromium", "chromium-browser")
A4_PRINTABLE_PX = (round((210 - 24) / 25.4 * 96), round((297 - 24) / 25.4 * 96))  # 12 mm margins (report.css)
FILTER = ("f_depth", 16)

# marks drawn in a chart: the items of its data marks (not of axes, legends or titles)
COUNT_MARKS = """(root) => root.querySelectorAll('svg g.role-mark > *').length"""


def step(msg: str) -> None:
    print(f"test-browser: {msg}", flush=True)


def fail(msg: str) -> None:
    print(f"test-browser: FAILED: {msg}", file=sys.stderr, flush=True)
    sys.exit(1)


def browser() -> str:
    found = next((shutil.which(c) for c in CHROMIUM if shutil.which(c)), None)
    if found:
        return found
    step("installing chromium from Debian's packages")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for cmd in (["apt-get", "update"], ["apt-get", "install", "-y", "-q", "chromium"]):
        try:
            subprocess.run(cmd, check=True, capture_output=True, env=env)
        except (OSError, subprocess.CalledProcessError) as e:
            fail(f"no chromium, and `{' '.join(cmd)}` failed ({e}): install Debian's chromium as root, then rerun")
    return shutil.which("chromium")


def report_of(study: str) -> Path:
    folder = REPO / "results" / study
    if not (folder / "runs").is_dir():
        step(f"results/{study} is missing: make {study}")
        subprocess.run(["make", study], cwd=REPO, check=True)
    step(f"building the report of results/{study}")
    py = REPO / ".venv" / "bin" / "python"
    subprocess.run([str(py), "-m", "mlplab.analysis", "report", str(folder)], cwd=REPO, check=True)
    return folder / "report.html"


def filtered(spec: dict, name: str, value) -> dict:
    """The spec with its rows filtered beforehand (in the packed form the page carries)."""
    out = json.loads(json.dumps(spec))
    axis = name.removeprefix("f_")
    for key, packed in out.get("datasets", {}).items():
        rows = unpack(packed)
        if axis in rows:
            rows = rows[(rows[axis] == value) | rows[axis].isna()]  # rows without that axis stay (charts.spec)
        out["datasets"][key] = pack(rows.to_dict("records"))
    return out


def check(page, html: Path, shots: Path) -> None:
    requests, errors = [], []
    page.on("request", lambda r: requests.append(r.url))
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(html.as_uri())
    page.wait_for_function("document.documentElement.dataset.charts === 'drawn'", timeout=180_000)
    outside = [u for u in requests if u != html.as_uri() and not u.startswith("data:")]
    if outside:
        fail(f"{html}: requests left the file: {outside[:3]}")
    if errors:
        fail(f"{html}: console errors: {errors[:3]}")
    figures = page.query_selector_all("figure.chart")
    failed = [i for i, f in enumerate(figures) if "drawn" not in (f.get_attribute("class") or "")]
    if failed or not figures:
        fail(f"{html}: charts not drawn: {failed} of {len(figures)}")
    before = [f.evaluate(COUNT_MARKS) for f in figures]
    if min(before) == 0:
        fail(f"{html}: a chart has no marks: {before}")
    step(f"{len(figures)} charts drawn, marks {before}; no request, no console error")
    page.screenshot(path=str(shots / "first_screen.png"))

    name, value = FILTER
    specs = page.evaluate(
        "() => [...document.querySelectorAll('figure.chart script')].map((s) => JSON.parse(s.textContent))"
    )
    page.select_option(f"#filters select[data-param={name}]", json.dumps(value))
    page.wait_for_timeout(1500)
    after = [f.evaluate(COUNT_MARKS) for f in figures]
    for i, spec in enumerate(specs):
        has = any(p["name"] == name for p in spec.get("params", []))
        if not has:
            if after[i] != before[i]:
                fail(f"{html}: chart {i} has no {name} but its marks changed: {before[i]} -> {after[i]}")
            continue
        want = page.evaluate(
            """async (spec) => {
                const sets = spec.datasets || {};
                for (const k of Object.keys(sets)) sets[k] = window.mlplabUnpack(sets[k]);
                const el = document.createElement('div'); document.body.appendChild(el);
                await vegaEmbed(el, spec, {actions: false, renderer: 'svg'});
                const n = el.querySelectorAll('svg g.role-mark > *').length; el.remove(); return n; }""",
            filtered(spec, name, value),
        )
        if after[i] != want:
            fail(f"{html}: chart {i}: {name} = {value} drew {after[i]} marks, its filtered rows draw {want}")
    changed = [i for i in range(len(specs)) if after[i] != before[i]]
    if not changed:
        fail(f"{html}: the filter {name} = {value} changed no chart")
    step(f"{name} = {value}: marks {after}, as the filtered rows predict ({len(changed)} charts changed)")
    figures[changed[0]].screenshot(path=str(shots / f"filtered_{name.removeprefix('f_')}_{value}.png"))
    page.click("#reset-filters")
    page.wait_for_timeout(1500)
    if [f.evaluate(COUNT_MARKS) for f in figures] != before:
        fail(f"{html}: 'show all' did not bring every chart back")

    page.set_viewport_size({"width": A4_PRINTABLE_PX[0], "height": A4_PRINTABLE_PX[1]})
    page.emulate_media(media="print")
    bottom = page.evaluate(
        """() => { const r = document.querySelector('figure.chart img.static').getBoundingClientRect();
                   return r.height > 0 ? r.bottom + window.scrollY : -1; }"""
    )
    page.pdf(path=str(shots / "report.pdf"), format="A4", print_background=True)
    if not 0 < bottom <= A4_PRINTABLE_PX[1]:
        fail(f"{html}: in print, the verdict map does not end on page 1 (its bottom at {bottom} px)")
    step(f"printed: the verdict map ends at {bottom:.0f} px of {A4_PRINTABLE_PX[1]} on page 1")


def check_without_javascript(page, html: Path, shots: Path) -> None:
    page.goto(html.as_uri())
    heights = page.evaluate(
        "() => [...document.querySelectorAll('figure.chart')].map((f) => f.querySelector('img.static')"
        " ? f.querySelector('img.static').getBoundingClientRect().height : 0)"
    )
    if not heights or min(heights) <= 0:
        fail(f"{html}: without JavaScript a figure shows no static image: {heights}")
    page.screenshot(path=str(shots / "without_javascript.png"))
    step(f"without JavaScript: {len(heights)} static figures shown")


def main() -> int:
    from playwright.sync_api import sync_playwright

    exe = browser()
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=exe, args=["--no-sandbox"])
        try:
            for study in STUDIES:
                html = report_of(study)
                shots = html.parent / "browser"
                shots.mkdir(exist_ok=True)
                context = b.new_context(viewport={"width": 1280, "height": 900}, offline=True)
                check(context.new_page(), html, shots)
                context.close()
                context = b.new_context(
                    viewport={"width": 1280, "height": 900}, offline=True, java_script_enabled=False
                )
                check_without_javascript(context.new_page(), html, shots)
                context.close()
                step(f"{study}: ok; screenshots and PDF in {shots.relative_to(REPO)}")
        finally:
            b.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
