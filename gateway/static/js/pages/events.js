// Events: the daemon's record of every change, filtered by type, severity, service and hours.
import { get } from "../api.js";
import { h, replace } from "../dom.js";
import { dateTime, number } from "../format.js";
import { t } from "../i18n.js";
import { fill, panel } from "../ui.js";

const HOURS = [1, 6, 24, 72, 168, 720];
const SEVERITIES = ["info", "warning", "error"];

function select(name, options, value) {
  return h(
    "select",
    { name, id: `ev-${name}` },
    ...options.map(([key, text]) => h("option", { value: key, selected: key === value }, text)),
  );
}

function chips(title, counts, filterName, onPick) {
  const entries = Object.entries(counts || {}).sort((a, b) => b[1] - a[1]);
  return h(
    "div",
    { class: "chip-group" },
    h("h3", null, title),
    entries.length
      ? h(
          "div",
          { class: "chips" },
          ...entries.map(([key, count]) =>
            h("button", { type: "button", class: ["chip", filterName === "severity" && `sev-${key}`], onclick: () => onPick(filterName, key) }, `${key} `, h("b", null, number(count))),
          ),
        )
      : h("p", { class: "muted" }, t("empty")),
  );
}

function eventRow(event) {
  const data = event.data && Object.keys(event.data).length ? event.data : null;
  return h(
    "li",
    { class: ["event", `sev-${event.severity}`], dataset: { type: event.type } },
    h(
      "div",
      { class: "event-head" },
      h("span", { class: ["badge", `sev-${event.severity}`] }, t(`severity.${event.severity}`)),
      h("code", { class: "event-type" }, event.type),
      h("span", { class: "muted" }, event.service),
      h("time", { datetime: event.ts, class: "muted event-time" }, dateTime(event.ts)),
    ),
    h("p", { class: "event-message" }, event.message),
    data ? h("details", null, h("summary", null, t("events.data")), h("pre", { class: "code" }, JSON.stringify(data, null, 2))) : null,
  );
}

export function render(main, { signal }) {
  const filters = { hours: "24", severity: "", type: "", service: "" };
  const statsBox = h("div", { class: "event-stats" });
  const listBox = h("div", { class: "event-list" });
  const form = h("form", { class: "filters", role: "search" });

  function controls() {
    replace(
      form,
      h("div", { class: "field" }, h("label", { for: "ev-hours" }, t("events.hours")), select("hours", HOURS.map((n) => [String(n), t("events.last_hours", { n })]), filters.hours)),
      h("div", { class: "field" }, h("label", { for: "ev-severity" }, t("events.severity")), select("severity", [["", t("all")], ...SEVERITIES.map((s) => [s, t(`severity.${s}`)])], filters.severity)),
      h("div", { class: "field" }, h("label", { for: "ev-type" }, t("events.type")), h("input", { id: "ev-type", name: "type", value: filters.type, placeholder: t("all"), list: "ev-types" })),
      h("div", { class: "field" }, h("label", { for: "ev-service" }, t("events.service")), h("input", { id: "ev-service", name: "service", value: filters.service, placeholder: t("all"), list: "ev-services" })),
      h("button", { type: "submit", class: "btn btn-primary" }, t("events.apply")),
      h("button", { type: "reset", class: "btn btn-ghost" }, t("events.clear")),
    );
  }

  function load() {
    const query = { ...filters, limit: 200 };
    fill(listBox, async () => {
      const answer = await get("/api/events", query, signal);
      const shown = answer.events.length;
      return h(
        "div",
        null,
        h("p", { class: "muted", dataset: { total: answer.total } }, t("events.count", { shown: number(shown), total: number(answer.total) })),
        shown ? h("ol", { class: "events" }, ...answer.events.map(eventRow)) : h("p", { class: "muted" }, t("events.none")),
      );
    });
    fill(statsBox, async () => {
      const { stats } = await get("/api/events/stats", { hours: filters.hours }, signal);
      const lists = ["by_type", "by_service"].map((key) =>
        h("datalist", { id: key === "by_type" ? "ev-types" : "ev-services" }, ...Object.keys(stats[key] || {}).map((v) => h("option", { value: v }))),
      );
      return h(
        "div",
        { class: "chip-groups" },
        chips(t("events.by_severity"), stats.by_severity, "severity", pick),
        chips(t("events.by_type"), stats.by_type, "type", pick),
        chips(t("events.by_service"), stats.by_service, "service", pick),
        ...lists,
      );
    });
  }

  function pick(name, value) {
    filters[name] = value;
    controls();
    load();
  }

  form.addEventListener("submit", (event) => {
    event.preventDefault();
    for (const [key, value] of new FormData(form)) filters[key] = String(value).trim();
    load();
  });
  form.addEventListener("reset", (event) => {
    event.preventDefault();
    Object.assign(filters, { hours: "24", severity: "", type: "", service: "" });
    controls();
    load();
  });
  controls();
  main.append(h("h1", null, t("nav.events")), panel(null, form), panel(t("events.stats"), statsBox), panel(t("events.list"), listBox));
  load();
}
