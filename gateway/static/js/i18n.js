// t(key, vars): the one way text reaches the page. Strings live in strings.js, one table per
// language; a key missing from the chosen language falls back to English, then to the key.
import { STRINGS } from "./strings.js";

const STORE_KEY = "xr.lang";
let lang = pickLanguage();

function pickLanguage() {
  const saved = localStorage.getItem(STORE_KEY);
  if (saved && STRINGS[saved]) return saved;
  const wanted = (navigator.languages || [navigator.language || "en"]).map((l) => l.slice(0, 2));
  return wanted.find((l) => STRINGS[l]) || "en";
}

export function language() {
  return lang;
}

export function setLanguage(next) {
  if (!STRINGS[next]) return;
  lang = next;
  localStorage.setItem(STORE_KEY, next);
  document.documentElement.lang = next;
}

export function t(key, vars = {}) {
  const text = STRINGS[lang][key] ?? STRINGS.en[key] ?? key;
  return text.replace(/\{(\w+)\}/g, (whole, name) => (name in vars ? String(vars[name]) : whole));
}
