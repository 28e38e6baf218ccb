// The console's building blocks: panels, tables, dialogs, toasts, busy buttons, error lines.
import { h, replace } from "./dom.js";
import { t } from "./i18n.js";

export function isAbort(err) {
  return err?.name === "AbortError";
}

export function panel(title, ...content) {
  return h("section", { class: "panel" }, title ? h("h2", { class: "panel-title" }, title) : null, ...content);
}

export function loading() {
  return h("p", { class: "muted loading" }, t("loading"));
}

/** What a failed read shows in place of its content: 501 reads as "not built yet". */
export function failure(err) {
  if (err?.status === 501) return h("p", { class: "notice", dataset: { status: "501" } }, t("error.not_built"));
  return h("p", { class: "error", role: "alert" }, err?.message || String(err));
}

/** Fill `el` with what `load()` builds, a loading line meanwhile, or the failure. */
export async function fill(el, load) {
  if (!el.hasChildNodes()) replace(el, loading());
  try {
    replace(el, await load());
  } catch (err) {
    if (!isAbort(err)) replace(el, failure(err));
  }
}

/** A line that shows an action's error beside what caused it. */
export function errorLine() {
  const el = h("p", { class: "error field-error", role: "alert", hidden: true });
  el.show = (err) => {
    el.textContent = err?.message || String(err);
    el.hidden = false;
  };
  el.clear = () => {
    el.textContent = "";
    el.hidden = true;
  };
  return el;
}

/** Run `work()` with the button disabled and a progress label that counts seconds. */
export async function busy(button, work, label = t("working")) {
  const original = [...button.childNodes];
  const started = Date.now();
  const tick = () => {
    const secs = Math.floor((Date.now() - started) / 1000);
    replace(button, h("span", { class: "spinner", "aria-hidden": "true" }), secs >= 1 ? `${label} ${secs} s` : label);
  };
  button.disabled = true;
  button.setAttribute("aria-busy", "true");
  tick();
  const timer = setInterval(tick, 1000);
  try {
    return await work();
  } finally {
    clearInterval(timer);
    button.disabled = false;
    button.removeAttribute("aria-busy");
    replace(button, ...original);
  }
}

export function button(label, onclick, { kind = "", type = "button", ...rest } = {}) {
  return h("button", { type, class: ["btn", kind && `btn-${kind}`], onclick, ...rest }, label);
}

export function toast(message, kind = "ok") {
  const el = h("div", { class: ["toast", `toast-${kind}`] }, message);
  document.getElementById("toasts").append(el);
  setTimeout(() => el.remove(), kind === "error" ? 8000 : 4000);
}

/**
 * A modal dialog. `body` is a node or text; `action(dialog)` runs on confirm and may throw:
 * its error is shown inside the dialog, which stays open. Resolves with action's result, or
 * null when cancelled. An information dialog (cancellable: false) has only its confirm button.
 */
export function dialog({ title, body, confirm = t("ok"), danger = false, action = async () => true, form = null, cancellable = true }) {
  return new Promise((resolve) => {
    const error = errorLine();
    const ok = button(confirm, null, { kind: danger ? "danger" : "primary", type: "submit" });
    const cancel = button(t("cancel"), () => el.close(), { value: "cancel" });
    const content = form || h("div");
    const el = h(
      "dialog",
      { class: "dialog", "aria-labelledby": "dialog-title" },
      h(
        "form",
        { method: "dialog", class: "dialog-form" },
        h("h2", { id: "dialog-title" }, title),
        typeof body === "string" ? h("p", null, body) : body,
        content,
        error,
        h("div", { class: "dialog-actions" }, cancellable ? cancel : null, ok),
      ),
    );
    let result = null;
    el.querySelector("form").addEventListener("submit", async (event) => {
      event.preventDefault();
      error.clear();
      try {
        result = await busy(ok, () => action(el));
        el.close();
      } catch (err) {
        error.show(err);
      }
    });
    el.addEventListener("close", () => {
      el.remove();
      resolve(result);
    });
    document.body.append(el);
    el.showModal();
    (el.querySelector("input, select, textarea") || (danger ? cancel : ok)).focus();
  });
}

/** Buttons of which one is pressed, e.g. 7 / 30 / 90 days. */
export function segmented(label, options, value, onChange) {
  const group = h("div", { class: "segmented", role: "group", "aria-label": label });
  const render = (current) =>
    replace(
      group,
      ...options.map(([key, text]) =>
        h(
          "button",
          {
            type: "button",
            class: "seg",
            "aria-pressed": String(key === current),
            onclick: () => {
              render(key);
              onChange(key);
            },
          },
          text,
        ),
      ),
    );
  render(value);
  return group;
}

export function stat(label, value, hint = "") {
  return h(
    "div",
    { class: "stat" },
    h("div", { class: "stat-label" }, label),
    h("div", { class: "stat-value" }, value),
    hint ? h("div", { class: "stat-hint" }, hint) : null,
  );
}

export function stats(...items) {
  return h("div", { class: "stats" }, ...items);
}

/**
 * A table sorted by clicking its headers. columns: [{key, label, value(row) for sorting,
 * cell(row) -> node|text, cls}]. On a phone each row becomes a card labelled by data-label.
 */
export function dataTable({ columns, rows, sortKey = null, desc = false, empty = t("empty"), label = "" }) {
  const state = { key: sortKey, desc };
  const tbody = h("tbody");
  const headRow = h("tr");
  const table = h("table", { class: "table", "aria-label": label || null }, h("thead", null, headRow), tbody);

  function sorted() {
    const column = columns.find((c) => c.key === state.key);
    if (!column) return rows;
    const value = column.value || ((row) => row[column.key]);
    const out = [...rows].sort((a, b) => {
      const x = value(a);
      const y = value(b);
      if (x === y) return 0;
      if (x === null || x === undefined) return 1;
      if (y === null || y === undefined) return -1;
      return typeof x === "number" && typeof y === "number" ? x - y : String(x).localeCompare(String(y));
    });
    return state.desc ? out.reverse() : out;
  }

  function render() {
    replace(
      headRow,
      ...columns.map((c) => {
        if (c.sortable === false) return h("th", { scope: "col", class: c.cls }, c.label);
        const current = state.key === c.key;
        return h(
          "th",
          { scope: "col", class: c.cls, "aria-sort": current ? (state.desc ? "descending" : "ascending") : "none" },
          h(
            "button",
            {
              type: "button",
              class: "sort",
              onclick: () => {
                state.desc = current ? !state.desc : false;
                state.key = c.key;
                render();
              },
            },
            c.label,
            h("span", { class: "sort-mark", "aria-hidden": "true" }, current ? (state.desc ? "▼" : "▲") : ""),
          ),
        );
      }),
    );
    const list = sorted();
    if (!list.length) {
      replace(tbody, h("tr", null, h("td", { colspan: columns.length, class: "muted empty" }, empty)));
      return;
    }
    replace(
      tbody,
      ...list.map((row) =>
        h(
          "tr",
          { dataset: row.__key ? { key: row.__key } : null },
          ...columns.map((c) => h("td", { class: c.cls, dataset: { label: c.label } }, c.cell ? c.cell(row) : row[c.key] ?? "—")),
        ),
      ),
    );
  }

  render();
  return h("div", { class: "table-wrap" }, table);
}

/** A label + control pair for forms. */
export function field(label, control, hint = "") {
  const id = control.id || `f-${Math.random().toString(36).slice(2, 9)}`;
  control.id = id;
  return h(
    "div",
    { class: "field" },
    h("label", { for: id }, label),
    control,
    hint ? h("small", { class: "muted" }, hint) : null,
  );
}

export function definitionList(pairs) {
  return h("dl", { class: "dl" }, ...pairs.flatMap(([k, v]) => [h("dt", null, k), h("dd", null, v ?? "—")]));
}
