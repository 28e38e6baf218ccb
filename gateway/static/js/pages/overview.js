// Overview: usage over 7/30/90 days, or for one date (daily, or cumulative over a window).
import { get } from "../api.js";
import { barList, lineChart } from "../chart.js";
import { h, replace } from "../dom.js";
import { bytes, day, number } from "../format.js";
import { t } from "../i18n.js";
import { dataTable, fill, panel, segmented, stat, stats } from "../ui.js";

const RANGES = [7, 30, 90];

function trafficOf(row) {
  if (!row) return null;
  if (typeof row.total === "number") return row.total;
  if (typeof row.traffic === "number") return row.traffic;
  if (row.traffic && typeof row.traffic === "object") return trafficOf(row.traffic);
  if (typeof row.uplink === "number" || typeof row.downlink === "number") return (row.uplink || 0) + (row.downlink || 0);
  return null;
}

function connsOf(row) {
  return row?.conns ?? row?.connections ?? null;
}

/** A day as the server names it ("2026-12-04", server-local): midnight of that day here. */
function dayStart(text) {
  const m = /^(\d{4})-(\d{2})-(\d{2})$/.exec(text || "");
  return m ? new Date(+m[1], +m[2] - 1, +m[3]).getTime() : Date.parse(text);
}

/** The dashboard answer in one shape, whatever names its lists carry. */
export function normalize(data) {
  const totals = data.totals || data.total || {};
  const series = data.series || data.daily || [];
  const users = data.users || data.per_user || [];
  const domains = data.top_domains || data.domains || [];
  return {
    traffic: trafficOf(totals),
    uplink: totals.uplink ?? null,
    downlink: totals.downlink ?? null,
    conns: connsOf(totals),
    online: data.online ?? totals.online ?? null,
    offline: data.offline ?? totals.offline ?? null,
    series: series.map((p) => ({ x: dayStart(p.date || p.day || p.time), traffic: trafficOf(p) || 0, conns: connsOf(p) || 0 })),
    users: users.map((u) => ({ ...u, traffic: trafficOf(u), conns: connsOf(u) })),
    domains: domains.map((d) => ({ label: d.domain || d.name, value: connsOf(d) ?? d.value ?? 0 })),
  };
}

function dashboard(data) {
  const d = normalize(data);
  const xFormat = (x) => day(x);
  return [
    stats(
      stat(t("overview.traffic"), bytes(d.traffic), d.uplink !== null ? `↑ ${bytes(d.uplink)} · ↓ ${bytes(d.downlink)}` : ""),
      stat(t("overview.conns"), number(d.conns)),
      stat(t("overview.online"), number(d.online)),
      stat(t("overview.offline"), number(d.offline)),
    ),
    h(
      "div",
      { class: "grid-2" },
      panel(t("overview.traffic_chart"), lineChart({ series: [{ name: t("overview.traffic"), cls: "s1", points: d.series.map((p) => ({ x: p.x, y: p.traffic })) }], yFormat: bytes, xFormat, label: t("overview.traffic_chart") })),
      panel(t("overview.conns_chart"), lineChart({ series: [{ name: t("overview.conns"), cls: "s2", points: d.series.map((p) => ({ x: p.x, y: p.conns })) }], yFormat: number, xFormat, label: t("overview.conns_chart") })),
    ),
    h(
      "div",
      { class: "grid-2" },
      panel(
        t("overview.top_users"),
        dataTable({
          label: t("overview.top_users"),
          rows: d.users,
          sortKey: "traffic",
          desc: true,
          columns: [
            { key: "email", label: t("users.email") },
            { key: "alias", label: t("users.alias") },
            { key: "traffic", label: t("users.traffic"), cell: (u) => bytes(u.traffic), cls: "num" },
            { key: "conns", label: t("users.conns"), cell: (u) => number(u.conns), cls: "num" },
          ],
        }),
      ),
      panel(t("overview.top_domains"), barList(d.domains.slice(0, 15), number)),
    ),
  ];
}

export function render(main, { signal }) {
  const view = { days: 7, date: "", mode: "daily", window: 7 };
  const body = h("div");
  const dateSelect = h("select", { id: "ov-date", name: "date" }, h("option", { value: "" }, t("overview.pick_date")));
  const windowInput = h("input", { id: "ov-window", type: "number", min: 1, max: 366, value: view.window, inputmode: "numeric" });
  const modeSwitch = segmented(t("overview.mode"), [["daily", t("overview.daily")], ["cumulative", t("overview.cumulative")]], view.mode, (m) => {
    view.mode = m;
    load();
  });
  const rangeSwitch = segmented(t("overview.range"), RANGES.map((n) => [n, t("overview.days", { n })]), view.days, (n) => {
    view.days = n;
    view.date = "";
    dateSelect.value = "";
    load();
  });

  function load() {
    const byDate = Boolean(view.date);
    modeSwitch.hidden = !byDate;
    windowInput.closest(".field").hidden = !byDate || view.mode !== "cumulative";
    fill(body, async () => {
      if (!byDate) return dashboard(await get("/api/usage/dashboard", { days: view.days }, signal));
      const query = { mode: view.mode, window_days: view.window };
      return dashboard(await get(`/api/usage/dashboard/${encodeURIComponent(view.date)}`, query, signal));
    });
  }

  dateSelect.addEventListener("change", () => {
    view.date = dateSelect.value;
    load();
  });
  windowInput.addEventListener("change", () => {
    view.window = Math.min(366, Math.max(1, Number(windowInput.value) || 7));
    load();
  });
  const windowField = h("div", { class: "field field-inline" }, h("label", { for: "ov-window" }, t("overview.window")), windowInput);
  main.append(
    h("h1", null, t("nav.overview")),
    panel(
      null,
      h(
        "div",
        { class: "toolbar" },
        rangeSwitch,
        h("div", { class: "field field-inline" }, h("label", { for: "ov-date" }, t("overview.or_date")), dateSelect),
        modeSwitch,
        windowField,
      ),
    ),
    body,
  );
  get("/api/usage/dates", null, signal)
    .then(({ dates }) => dateSelect.append(...dates.map((d) => h("option", { value: d }, d))))
    .catch(() => {
      dateSelect.disabled = true;
    });
  load();
}
