// Small SVG charts of our own: a line chart with a hover read-out, and a list of bars.
// Drawn at the container's real width (redrawn when it changes), so text never scales down.
import { h, replace, s } from "./dom.js";
import { t } from "./i18n.js";

const MARGIN = { top: 12, right: 12, bottom: 26, left: 58 };

function niceMax(value) {
  if (!(value > 0)) return 1;
  const power = 10 ** Math.floor(Math.log10(value));
  const step = [1, 2, 2.5, 5, 10].find((m) => m * power >= value);
  return step * power;
}

/**
 * series: [{name, cls, points: [{x: Date|ms, y: number}]}], all with the same x values.
 * yFormat formats values; xFormat formats the x labels, given as Dates.
 */
export function lineChart({ series, yFormat = String, xFormat = String, label = "", height = 220 }) {
  const box = h("div", { class: "chart", role: "img", "aria-label": label });
  const tip = h("div", { class: "chart-tip", hidden: true });
  const xs = series[0]?.points.map((p) => +p.x) ?? [];
  if (!xs.length) return h("p", { class: "muted" }, t("chart.no_data"));

  function draw(width) {
    const w = Math.max(width, 240);
    const plotW = w - MARGIN.left - MARGIN.right;
    const plotH = height - MARGIN.top - MARGIN.bottom;
    const max = niceMax(Math.max(...series.flatMap((ser) => ser.points.map((p) => p.y || 0))));
    const x0 = xs[0];
    const span = xs[xs.length - 1] - x0 || 1;
    const px = (x) => MARGIN.left + ((x - x0) / span) * plotW;
    const py = (y) => MARGIN.top + plotH - ((y || 0) / max) * plotH;
    const grid = [0, 0.25, 0.5, 0.75, 1].map((f) =>
      s(
        "g",
        { class: "grid" },
        s("line", { x1: MARGIN.left, x2: w - MARGIN.right, y1: py(max * f), y2: py(max * f) }),
        s("text", { x: MARGIN.left - 6, y: py(max * f) + 4, "text-anchor": "end" }, yFormat(max * f)),
      ),
    );
    const ticks = Math.min(xs.length, Math.max(2, Math.floor(plotW / 90)));
    const xLabels = Array.from({ length: ticks }, (_, i) => {
      const x = xs[Math.round((i * (xs.length - 1)) / Math.max(ticks - 1, 1))];
      const anchor = i === 0 ? "start" : i === ticks - 1 ? "end" : "middle";
      return s("text", { class: "axis", x: px(x), y: height - 6, "text-anchor": anchor }, xFormat(new Date(x)));
    });
    const lines = series.map((ser) => {
      const d = ser.points.map((p, i) => `${i ? "L" : "M"}${px(+p.x).toFixed(1)},${py(p.y).toFixed(1)}`).join("");
      const area = `${d}L${px(xs[xs.length - 1]).toFixed(1)},${py(0)}L${px(x0).toFixed(1)},${py(0)}Z`;
      return s("g", { class: ["series", ser.cls] }, s("path", { class: "area", d: area }), s("path", { class: "line", d }));
    });
    const cursor = s("line", { class: "cursor", y1: MARGIN.top, y2: MARGIN.top + plotH, visibility: "hidden" });
    const svg = s("svg", { width: w, height, viewBox: `0 0 ${w} ${height}`, "aria-hidden": "true" }, ...grid, ...lines, ...xLabels, cursor);
    svg.addEventListener("pointermove", (event) => {
      const rect = svg.getBoundingClientRect();
      const ratio = (event.clientX - rect.left - MARGIN.left) / plotW;
      const i = Math.min(xs.length - 1, Math.max(0, Math.round(ratio * (xs.length - 1))));
      cursor.setAttribute("x1", px(xs[i]));
      cursor.setAttribute("x2", px(xs[i]));
      cursor.setAttribute("visibility", "visible");
      replace(
        tip,
        h("strong", null, xFormat(new Date(xs[i]))),
        ...series.map((ser) => h("div", { class: ser.cls }, `${ser.name}: ${yFormat(ser.points[i]?.y ?? 0)}`)),
      );
      tip.hidden = false;
      tip.style.left = `${Math.min(px(xs[i]) + 8, w - 160)}px`;
    });
    svg.addEventListener("pointerleave", () => {
      cursor.setAttribute("visibility", "hidden");
      tip.hidden = true;
    });
    replace(box, svg, tip);
  }

  let drawnWidth = 0;
  new ResizeObserver(([entry]) => {
    const width = Math.floor(entry.contentRect.width);
    if (width && width !== drawnWidth) {
      drawnWidth = width;
      draw(width);
    }
  }).observe(box);
  const legend = series.length > 1
    ? h("div", { class: "legend" }, ...series.map((ser) => h("span", { class: ["key", ser.cls] }, ser.name)))
    : null;
  return h("figure", { class: "figure" }, box, legend);
}

/** items: [{label, value, hint}] drawn as horizontal bars scaled to the largest value. */
export function barList(items, format = String, empty = t("empty")) {
  if (!items.length) return h("p", { class: "muted" }, empty);
  const max = Math.max(...items.map((i) => i.value || 0), 1);
  return h(
    "ol",
    { class: "bars" },
    ...items.map((item) => {
      const fillEl = h("span", { class: "bar-fill" });
      fillEl.style.width = `${Math.max(1, ((item.value || 0) / max) * 100)}%`;
      return h(
        "li",
        { class: "bar" },
        h("span", { class: "bar-label", title: item.hint || item.label }, item.label),
        h("span", { class: "bar-track", "aria-hidden": "true" }, fillEl),
        h("span", { class: "bar-value" }, format(item.value)),
      );
    }),
  );
}
