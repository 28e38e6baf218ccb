// The header on every page: navigation, service states, CPU/RAM/disk, ports, restarts, theme.
import { auth, get, post } from "./api.js";
import { h, replace } from "./dom.js";
import { bytes, percent } from "./format.js";
import { t } from "./i18n.js";
import { every } from "./poller.js";
import { button, dialog, isAbort, toast } from "./ui.js";
import { toggleTheme } from "./theme.js";

const NAV = ["overview", "users", "live", "events", "settings"];
const SERVICES = ["ui", "xray", "nextjs"];
const REFRESH_MS = 10000;
let headerSignal = null;

export function setActive(name) {
  for (const link of document.querySelectorAll(".nav a")) {
    if (link.dataset.page === name) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
}

function serviceDot(name, info) {
  const state = info ? (info.active ? "up" : info.state === "not-found" || info.installed === false ? "none" : "down") : "unknown";
  const label = info?.state || t("status.unknown");
  return h(
    "span",
    { class: ["pill", `pill-${state}`], title: `${t(`service.${name}`)}: ${label}`, dataset: { service: name, state } },
    h("span", { class: "dot", "aria-hidden": "true" }),
    h("span", { class: "pill-name" }, t(`service.${name}`)),
    h("span", { class: "visually-hidden" }, `: ${label}`),
  );
}

/** A percent from the shapes psutil figures come in: a number, {percent}, or {path: {percent}}. */
export function percentOf(value) {
  if (typeof value === "number") return value;
  if (!value || typeof value !== "object") return null;
  if (typeof value.percent === "number") return value.percent;
  const inner = Object.values(value).find((v) => v && typeof v.percent === "number");
  return inner ? inner.percent : null;
}

function meter(name, value, detail = "") {
  const level = value === null ? "unknown" : value >= 90 ? "high" : value >= 70 ? "mid" : "low";
  return h(
    "span",
    { class: ["meter", `meter-${level}`], dataset: { resource: name }, title: detail || null },
    h("span", { class: "meter-name" }, t(`resource.${name}`)),
    h("span", { class: "meter-value" }, percent(value)),
  );
}

function restartMenu() {
  const menu = h("details", { class: "menu" });
  const choose = async (target) => {
    menu.open = false;
    const name = t(`service.${target}`);
    const done = await dialog({
      title: t("restart.title", { name }),
      body: t(`restart.warn_${target}`),
      confirm: t("restart.confirm", { name }),
      danger: true,
      action: () => post("/api/system/restart", { target }),
    });
    if (done) toast(t("restart.done", { name }));
  };
  replace(
    menu,
    h("summary", { class: "btn" }, t("restart.menu")),
    h(
      "div",
      { class: "menu-list" },
      ...SERVICES.map((target) => button(t(`service.${target}`), () => choose(target), { dataset: { target } })),
    ),
  );
  menu.addEventListener("keydown", (event) => {
    if (event.key === "Escape") menu.open = false;
  });
  return menu;
}

async function refresh(status, resources, ports, signal) {
  const [st, res, po] = await Promise.allSettled([
    get("/api/system/status", null, signal),
    get("/api/system/resources", null, signal),
    get("/api/ports/status", null, signal),
  ]);
  if ([st, res, po].some((r) => r.status === "rejected" && isAbort(r.reason))) return;
  const states = st.status === "fulfilled" ? st.value : {};
  replace(status, ...SERVICES.map((name) => serviceDot(name, states[name])));
  const r = res.status === "fulfilled" ? res.value : {};
  const used = (part) => (part && part.total ? `${bytes(part.used)} / ${bytes(part.total)}` : "");
  const load = Array.isArray(r.cpu?.load_avg) ? `${t("resource.load")}: ${r.cpu.load_avg.join(" ")}` : "";
  replace(
    resources,
    meter("cpu", percentOf(r.cpu), load),
    meter("ram", percentOf(r.memory), used(r.memory)),
    meter("disk", percentOf(r.disk), used(r.disk)),
  );
  const list = po.status === "fulfilled" ? po.value.ports || [] : [];
  replace(
    ports,
    ...list.map((p) =>
      h(
        "span",
        { class: ["port", p.status === "running" ? "port-up" : "port-down"], title: p.service || "", dataset: { port: p.port } },
        String(p.port),
      ),
    ),
  );
}

export function renderHeader(el, { onSignOut }) {
  headerSignal?.abort();
  const controller = new AbortController();
  headerSignal = controller;
  const status = h("div", { class: "services", "aria-label": t("header.services") });
  const resources = h("div", { class: "resources", "aria-label": t("header.resources") });
  const ports = h("div", { class: "ports", "aria-label": t("header.ports") });
  const themeButton = button("◐", () => toggleTheme(), { kind: "ghost", "aria-label": t("theme.toggle"), title: t("theme.toggle"), dataset: { action: "theme" } });
  const signOut = button(t("signout"), async () => {
    controller.abort();
    if (auth.csrf) await post("/api/auth/logout").catch(() => null);
    onSignOut();
  }, { kind: "ghost", dataset: { action: "signout" } });
  replace(
    el,
    h(
      "div",
      { class: "header-top" },
      h("a", { class: "brand", href: "#/overview" }, "xray-report"),
      h(
        "nav",
        { class: "nav", "aria-label": t("nav.label") },
        ...NAV.map((name) => h("a", { href: `#/${name}`, dataset: { page: name } }, t(`nav.${name}`))),
      ),
      h("div", { class: "header-tools" }, restartMenu(), themeButton, signOut),
    ),
    h("div", { class: "header-status" }, status, resources, ports),
  );
  const load = () => refresh(status, resources, ports, controller.signal);
  load();
  every(REFRESH_MS, load, controller.signal);
}
