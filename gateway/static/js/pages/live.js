// Live: who is online now and what moves, refreshed on its own without piling up requests.
import { get } from "../api.js";
import { barList, lineChart } from "../chart.js";
import { h, replace } from "../dom.js";
import { ago, bytes, number, time } from "../format.js";
import { t } from "../i18n.js";
import { every } from "../poller.js";
import { dataTable, failure, isAbort, panel, segmented, stat, stats } from "../ui.js";

const NOW_MS = 5000;
const SERIES_MS = 15000;
const PERIODS = [
  [3600, "1h", 60],
  [6 * 3600, "6h", 300],
  [24 * 3600, "24h", 900],
];

function nowView(now) {
  const total = now.total || {};
  const users = (now.users || []).map((u) => ({ ...u, traffic: (u.uplink || 0) + (u.downlink || 0) }));
  return [
    now.stats_ok === false ? h("p", { class: "notice" }, t("live.stats_down")) : null,
    stats(
      stat(t("live.online"), number(total.users_online), t("live.window", { n: number(Math.round((now.window_seconds || 300) / 60)) })),
      stat(t("live.conns"), number(total.conns)),
      stat(t("live.uplink"), bytes(total.uplink)),
      stat(t("live.downlink"), bytes(total.downlink)),
      stat(t("live.rejected"), number(total.rejected || 0), t("live.rejected_hint")),
    ),
    dataTable({
      label: t("live.online_users"),
      rows: users,
      sortKey: "conns",
      desc: true,
      empty: t("live.nobody"),
      columns: [
        { key: "email", label: t("users.email") },
        { key: "alias", label: t("users.alias") },
        { key: "conns", label: t("users.conns"), cell: (u) => number(u.conns), cls: "num" },
        { key: "traffic", label: t("users.traffic"), cell: (u) => bytes(u.traffic), cls: "num" },
        { key: "ips", label: t("live.ips"), value: (u) => (Array.isArray(u.ips) ? u.ips.length : u.ips), cell: (u) => (Array.isArray(u.ips) ? u.ips.join(", ") : number(u.ips)) },
        { key: "top_domains", label: t("live.domains"), sortable: false, cell: (u) => (u.top_domains || []).slice(0, 3).map((d) => (typeof d === "string" ? d : d.domain)).join(", ") || "—" },
        { key: "last_seen", label: t("users.last_seen"), cell: (u) => ago(u.last_seen) },
      ],
    }),
  ];
}

/** [{time, value}] → points with Date x values (time as ISO text or Unix seconds). */
export function points(series) {
  return (series || []).map((p) => ({ x: typeof p.time === "number" ? p.time * 1000 : Date.parse(p.time), y: p.value || 0 }));
}

export function render(main, { signal }) {
  const view = { metric: "traffic", period: PERIODS[0] };
  const nowBox = h("div", { class: "live-now" });
  const seriesBox = h("div");
  const usersBox = h("div");
  const domainsBox = h("div");
  const updated = h("span", { class: "muted updated", role: "status" });

  async function show(box, work) {
    try {
      replace(box, ...[].concat(await work()));
    } catch (err) {
      if (!isAbort(err)) replace(box, failure(err));
    }
  }

  async function loadNow() {
    await show(nowBox, async () => nowView(await get("/api/live/now", null, signal)));
    updated.textContent = t("live.updated", { time: time(new Date()) });
  }

  async function loadSeries() {
    const [period, , granularity] = view.period;
    const format = view.metric === "traffic" ? bytes : number;
    const query = { metric: view.metric, period };
    await Promise.all([
      show(seriesBox, async () => {
        const { series } = await get("/api/live/series", { ...query, granularity, scope: "global" }, signal);
        const name = t(`live.metric_${view.metric}`);
        return lineChart({ series: [{ name, cls: "s1", points: points(series) }], yFormat: format, xFormat: (x) => time(x), label: name });
      }),
      show(usersBox, async () => {
        const { top } = await get("/api/live/top", { ...query, by: "users", limit: 10 }, signal);
        return barList(top.map((r) => ({ label: r.user, value: r.value })), format);
      }),
      show(domainsBox, async () => {
        const { top } = await get("/api/live/top", { ...query, by: "domains", limit: 10 }, signal);
        return barList(top.map((r) => ({ label: r.domain, value: r.value })), number);
      }),
    ]);
  }

  const controls = h(
    "div",
    { class: "toolbar" },
    segmented(t("live.metric"), [["traffic", t("live.metric_traffic")], ["conns", t("live.metric_conns")]], view.metric, (m) => {
      view.metric = m;
      loadSeries();
    }),
    segmented(t("live.period"), PERIODS.map(([p, label]) => [p, label]), view.period[0], (p) => {
      view.period = PERIODS.find(([q]) => q === p);
      loadSeries();
    }),
  );
  main.append(
    h("div", { class: "page-head" }, h("h1", null, t("nav.live")), updated),
    panel(t("live.now"), nowBox),
    panel(t("live.series"), controls, seriesBox),
    h("div", { class: "grid-2" }, panel(t("live.top_users"), usersBox), panel(t("live.top_domains"), domainsBox)),
  );
  loadNow();
  loadSeries();
  every(NOW_MS, loadNow, signal);
  every(SERIES_MS, loadSeries, signal);
}
