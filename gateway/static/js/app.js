// The console's entry point: sign-in, the header, the banner, and a hash router over the pages.
import { auth, bus, get } from "./api.js";
import { replace } from "./dom.js";
import { renderHeader, setActive } from "./header.js";
import { language, t } from "./i18n.js";
import { renderLogin } from "./pages/login.js";
import * as events from "./pages/events.js";
import * as live from "./pages/live.js";
import * as overview from "./pages/overview.js";
import * as settings from "./pages/settings.js";
import * as users from "./pages/users.js";
import { applyTheme } from "./theme.js";

export const PAGES = { overview, users, live, events, settings };

const main = document.getElementById("main");
const header = document.getElementById("header");
const banner = document.getElementById("banner");
let page = null; // the AbortController of the page on screen
let signedIn = false;

function parseRoute() {
  const [name = "overview", ...rest] = location.hash.replace(/^#\/?/, "").split("/");
  return { name: PAGES[name] ? name : "overview", sub: rest.join("/") };
}

function show(focus) {
  page?.abort();
  page = new AbortController();
  const { name, sub } = parseRoute();
  setActive(name);
  document.title = `${t(`nav.${name}`)} · xray-report`;
  replace(main);
  PAGES[name].render(main, { signal: page.signal, sub });
  if (focus) main.focus();
}

function start() {
  signedIn = true;
  header.hidden = false;
  renderHeader(header, { onSignOut: signOut });
  show(false);
}

function signOut() {
  signedIn = false;
  page?.abort();
  auth.clear();
  showLogin();
}

function showLogin() {
  signedIn = false;
  page?.abort();
  page = new AbortController();
  header.hidden = true;
  replace(header);
  document.title = `${t("login.title")} · xray-report`;
  replace(main);
  renderLogin(main, { onSignedIn: start, signal: page.signal });
}

async function boot() {
  applyTheme();
  document.documentElement.lang = language();
  document.querySelector(".skip-link").textContent = t("skip");
  bus.addEventListener("unauthorized", () => {
    if (signedIn) showLogin();
  });
  bus.addEventListener("connection", (event) => {
    const lost = event.detail === "lost";
    banner.hidden = !lost;
    banner.textContent = lost ? t("reconnecting") : "";
    document.body.classList.toggle("offline", lost);
  });
  window.addEventListener("hashchange", () => {
    if (signedIn) show(true);
  });
  if (!auth.token) {
    try {
      auth.useSession((await get("/api/auth/me")).csrf_token);
    } catch {
      auth.clear();
      showLogin();
      return;
    }
  }
  start();
}

boot();
