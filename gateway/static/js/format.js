// How numbers, sizes and times read on the page, in the page's language.
import { language, t } from "./i18n.js";

const DASH = "—";
const UNITS = ["B", "kB", "MB", "GB", "TB", "PB"];

function isNumber(value) {
  return typeof value === "number" && Number.isFinite(value);
}

export function number(value, digits = 0) {
  if (!isNumber(value)) return DASH;
  return new Intl.NumberFormat(language(), { maximumFractionDigits: digits }).format(value);
}

export function bytes(value) {
  if (!isNumber(value)) return DASH;
  let unit = 0;
  let scaled = Math.abs(value);
  while (scaled >= 1000 && unit < UNITS.length - 1) {
    scaled /= 1000;
    unit += 1;
  }
  return `${value < 0 ? "-" : ""}${number(scaled, scaled < 10 && unit > 0 ? 1 : 0)} ${UNITS[unit]}`;
}

export function percent(value) {
  return isNumber(value) ? `${number(value, value < 10 ? 1 : 0)}%` : DASH;
}

/** A Date from an ISO string, or from Unix seconds. */
export function toDate(value) {
  if (value === null || value === undefined || value === "") return null;
  const date = isNumber(value) ? new Date(value * 1000) : new Date(value);
  return Number.isNaN(date.getTime()) ? null : date;
}

export function dateTime(value) {
  const date = toDate(value);
  if (!date) return value ? String(value) : DASH;
  return new Intl.DateTimeFormat(language(), { dateStyle: "medium", timeStyle: "medium" }).format(date);
}

export function time(value) {
  const date = toDate(value);
  return date ? new Intl.DateTimeFormat(language(), { timeStyle: "short" }).format(date) : DASH;
}

export function day(value) {
  const date = toDate(value);
  return date ? new Intl.DateTimeFormat(language(), { month: "short", day: "numeric" }).format(date) : DASH;
}

export function ago(value) {
  const date = toDate(value);
  if (!date) return t("never");
  const seconds = Math.round((date.getTime() - Date.now()) / 1000);
  const rtf = new Intl.RelativeTimeFormat(language(), { numeric: "auto" });
  const steps = [
    [60, "second"],
    [3600, "minute"],
    [86400, "hour"],
    [Infinity, "day"],
  ];
  let divisor = 1;
  for (const [limit, unit] of steps) {
    if (Math.abs(seconds) < limit) return rtf.format(Math.round(seconds / divisor), unit);
    divisor = limit;
  }
  return DASH;
}

export function seconds(value) {
  return isNumber(value) ? `${number(value, value < 10 ? 2 : 1)} s` : DASH;
}
