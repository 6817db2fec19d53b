// mlplab's report: draws each chart from its embedded Vega-Lite spec (no request leaves the page),
// runs the filter bar over every chart at once, and sorts and searches the tables of cases.
(function () {
  "use strict";
  const charts = []; // {view, params: Set of the filter parameters the chart has, figure}
  window.mlplabCharts = charts;

  // the report packs each data set into columns (mlplab.analysis.charts.pack): rows again
  function unpack(packed) {
    const names = Object.keys(packed.columns);
    const rows = new Array(packed.n);
    for (let i = 0; i < packed.n; i++) {
      const row = {};
      for (const name of names) {
        const col = packed.columns[name];
        row[name] = col.levels ? (col.codes[i] >= 0 ? col.levels[col.codes[i]] : null) : col.values[i];
      }
      rows[i] = row;
    }
    return rows;
  }

  window.mlplabUnpack = unpack;

  async function draw() {
    for (const el of document.querySelectorAll("div.vega")) {
      const figure = el.closest("figure");
      const spec = JSON.parse(document.getElementById(el.dataset.spec).textContent);
      for (const name of Object.keys(spec.datasets || {})) spec.datasets[name] = unpack(spec.datasets[name]);
      const params = new Set((spec.params || []).map((p) => p.name).filter((n) => n.startsWith("f_")));
      try {
        const result = await vegaEmbed(el, spec, { actions: false, renderer: "svg" });
        charts.push({ view: result.view, params: params, figure: figure });
        figure.classList.add("drawn");
      } catch (err) {
        figure.classList.add("failed");
        console.error("chart " + el.dataset.spec + ": " + err);
      }
    }
    document.documentElement.dataset.charts = "drawn";
  }

  async function setFilter(name, value) {
    await Promise.all(
      charts.filter((c) => c.params.has(name)).map((c) => c.view.signal(name, value).runAsync())
    );
  }
  window.mlplabFilter = setFilter;

  function filters() {
    const selects = document.querySelectorAll("#filters select");
    for (const sel of selects) {
      sel.addEventListener("change", () => setFilter(sel.dataset.param, JSON.parse(sel.value)));
    }
    const reset = document.getElementById("reset-filters");
    if (reset) {
      reset.addEventListener("click", async () => {
        for (const sel of selects) {
          sel.value = "null";
          await setFilter(sel.dataset.param, null);
        }
      });
    }
  }

  function cellValue(td) {
    const t = td.textContent.trim();
    const x = Number(t);
    return t !== "" && !Number.isNaN(x) ? x : t.toLowerCase();
  }

  function tables() {
    for (const box of document.querySelectorAll("div.datatable")) {
      const table = box.querySelector("table");
      const body = table.tBodies[0];
      const shown = box.querySelector(".shown");
      const search = box.querySelector("input[type=search]");
      const count = () => {
        const n = [...body.rows].filter((r) => !r.hidden).length;
        shown.textContent = n + " shown";
      };
      table.querySelectorAll("th").forEach((th, i) => {
        th.addEventListener("click", () => {
          const up = th.getAttribute("aria-sort") !== "ascending";
          table.querySelectorAll("th").forEach((h) => h.removeAttribute("aria-sort"));
          th.setAttribute("aria-sort", up ? "ascending" : "descending");
          const rows = [...body.rows];
          rows.sort((a, b) => {
            const x = cellValue(a.cells[i]), y = cellValue(b.cells[i]);
            const c = typeof x === typeof y ? (x < y ? -1 : x > y ? 1 : 0) : typeof x === "number" ? -1 : 1;
            return up ? c : -c;
          });
          rows.forEach((r) => body.appendChild(r));
        });
      });
      search.addEventListener("input", () => {
        const words = search.value.toLowerCase().split(/\s+/).filter(Boolean);
        for (const r of body.rows) {
          const text = r.textContent.toLowerCase();
          r.hidden = !words.every((w) => text.includes(w));
        }
        count();
      });
      count();
    }
  }

  document.documentElement.classList.add("js");
  filters();
  tables();
  draw();
})();
