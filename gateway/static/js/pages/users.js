// Users: who may connect. Add, delete, kick (a new UUID), rename; each person's link and QR code.
import { get, post } from "../api.js";
import { h, replace } from "../dom.js";
import { ago, bytes, number } from "../format.js";
import { t } from "../i18n.js";
import { busy, button, dataTable, dialog, errorLine, failure, field, fill, isAbort, loading, panel, toast } from "../ui.js";

/** The SVG of a QR answer, whichever key carries it, as an <img> source (never inline markup). */
export function qrSource(answer) {
  const text = Object.values(answer || {}).find(
    (v) => typeof v === "string" && (v.trimStart().startsWith("<svg") || v.trimStart().startsWith("<?xml") || v.startsWith("data:image/")),
  );
  if (!text) return null;
  return text.startsWith("data:") ? text : URL.createObjectURL(new Blob([text], { type: "image/svg+xml" }));
}

async function copyText(text) {
  try {
    await navigator.clipboard.writeText(text);
    return true;
  } catch {
    return false;
  }
}

async function showLink(user) {
  const name = user.alias || user.email || user.uuid;
  const query = user.email ? { email: user.email } : { uuid: user.uuid };
  const box = h("div", { class: "link-box" });
  const qrBox = h("div", { class: "qr" });
  const copied = h("span", { class: "muted", role: "status" });
  const body = h("div", null, box, qrBox);
  fill(box, async () => {
    const { link } = await get("/api/users/link", { ...query, format: "link" });
    const input = h("input", { class: "link-text", value: link, readonly: true, "aria-label": t("users.link") });
    input.addEventListener("focus", () => input.select());
    const copy = button(t("users.copy"), async () => {
      const ok = await copyText(link);
      if (!ok) input.select();
      copied.textContent = ok ? t("users.copied") : t("users.copy_manually");
    }, { kind: "primary", dataset: { action: "copy" } });
    return h("div", { class: "link-row" }, input, copy, copied);
  });
  fill(qrBox, async () => {
    const src = qrSource(await get("/api/users/link", { ...query, format: "qr" }));
    if (!src) return h("p", { class: "muted" }, t("users.no_qr"));
    return h("img", { src, alt: t("users.qr_alt", { name }), class: "qr-img", width: 240, height: 240 });
  });
  await dialog({ title: t("users.link_title", { name }), body, confirm: t("close"), cancellable: false });
}

function addForm(onAdded) {
  const email = h("input", { name: "email", type: "text", inputmode: "email", autocomplete: "off", required: true, maxlength: 64, placeholder: "name@example.org" });
  const alias = h("input", { name: "alias", type: "text", autocomplete: "off", maxlength: 64 });
  const error = errorLine();
  const submit = h("button", { type: "submit", class: "btn btn-primary" }, t("users.add"));
  const form = h("form", { class: "form form-inline", dataset: { form: "add-user" } }, field(t("users.email"), email), field(t("users.alias"), alias), submit, error);
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    error.clear();
    const body = { email: email.value.trim() };
    if (alias.value.trim()) body.alias = alias.value.trim();
    try {
      await busy(submit, () => post("/api/users/add", body), t("users.adding"));
      toast(t("users.added", { email: body.email }));
      form.reset();
      onAdded();
    } catch (err) {
      error.show(err);
      email.focus();
    }
  });
  return form;
}

function actions(user, reload) {
  const name = user.email || user.uuid;
  const rename = async () => {
    const input = h("input", { name: "alias", value: user.alias || "", maxlength: 64, autocomplete: "off" });
    const done = await dialog({
      title: t("users.rename_title", { name }),
      form: field(t("users.alias"), input),
      confirm: t("save"),
      action: () => post("/api/users/update-alias", { email: user.email, alias: input.value.trim() }),
    });
    if (done) reload();
  };
  const kick = async () => {
    const done = await dialog({
      title: t("users.kick_title", { name }),
      body: t("users.kick_warn", { name }),
      confirm: t("users.kick"),
      danger: true,
      action: () => post("/api/users/kick", { email: user.email }),
    });
    if (done) {
      toast(t("users.kicked", { name }));
      reload();
    }
  };
  const remove = async () => {
    const done = await dialog({
      title: t("users.delete_title", { name }),
      body: t("users.delete_warn", { name }),
      confirm: t("users.delete_confirm", { name }),
      danger: true,
      action: () => post("/api/users/delete", { email: user.email }),
    });
    if (done) {
      toast(t("users.deleted", { name }));
      reload();
    }
  };
  const hasEmail = Boolean(user.email);
  return h(
    "div",
    { class: "row-actions" },
    button(t("users.link"), () => showLink(user), { dataset: { action: "link" } }),
    button(t("users.rename"), rename, { disabled: !hasEmail, dataset: { action: "rename" } }),
    button(t("users.kick"), kick, { disabled: !hasEmail, dataset: { action: "kick" } }),
    button(t("users.delete"), remove, { kind: "danger", disabled: !hasEmail, dataset: { action: "delete" } }),
  );
}

function onlineDot(row) {
  if (row.online === null) return h("span", { class: "dot dot-unknown", title: t("status.unknown") });
  return h(
    "span",
    { class: ["dot", row.online ? "dot-up" : "dot-off"], title: row.online ? t("users.online") : t("users.offline") },
    h("span", { class: "visually-hidden" }, row.online ? t("users.online") : t("users.offline")),
  );
}

/** One row per user: the list joined with the all-time stats (missing while that module is not built). */
export function joinStats(users, stats) {
  return users.map((u) => {
    const st = stats?.[u.email] || null;
    const traffic = st?.traffic;
    const total = typeof traffic === "number" ? traffic : traffic ? traffic.total ?? (traffic.uplink || 0) + (traffic.downlink || 0) : null;
    return {
      ...u,
      __key: u.email || u.uuid,
      online: stats ? Boolean(st?.isOnline) : null,
      traffic: total,
      conns: st ? st.conns ?? null : null,
      last_seen: st?.last_seen ?? null,
    };
  });
}

export function render(main, { signal }) {
  const search = h("input", { type: "search", placeholder: t("users.search"), "aria-label": t("users.search"), class: "search" });
  const tableBox = h("div");
  const count = h("span", { class: "muted" });
  let rows = [];
  let statsNote = null;

  function draw() {
    const q = search.value.trim().toLowerCase();
    const shown = q ? rows.filter((r) => `${r.email || ""} ${r.alias || ""} ${r.uuid || ""}`.toLowerCase().includes(q)) : rows;
    count.textContent = t("users.count", { shown: number(shown.length), total: number(rows.length) });
    replace(
      tableBox,
      statsNote,
      dataTable({
        label: t("nav.users"),
        rows: shown,
        sortKey: "email",
        empty: q ? t("users.no_match") : t("users.none"),
        columns: [
          { key: "online", label: t("users.status"), value: (r) => (r.online ? 1 : 0), cell: onlineDot, cls: "col-dot" },
          { key: "email", label: t("users.email"), cell: (r) => h("span", { class: "email" }, r.email || h("em", { class: "muted" }, r.uuid)) },
          { key: "alias", label: t("users.alias") },
          { key: "traffic", label: t("users.traffic"), cell: (r) => bytes(r.traffic), cls: "num" },
          { key: "conns", label: t("users.conns"), cell: (r) => number(r.conns), cls: "num" },
          { key: "last_seen", label: t("users.last_seen"), value: (r) => r.last_seen && new Date(typeof r.last_seen === "number" ? r.last_seen * 1000 : r.last_seen).getTime(), cell: (r) => (r.last_seen ? ago(r.last_seen) : "—") },
          { key: "actions", label: t("users.actions"), sortable: false, cell: (r) => actions(r, reload), cls: "col-actions" },
        ],
      }),
    );
  }

  async function reload() {
    if (!rows.length) replace(tableBox, loading());
    try {
      const [list, stats] = await Promise.allSettled([get("/api/users", null, signal), get("/api/users/stats", null, signal)]);
      if (list.status === "rejected") throw list.reason;
      const missing = stats.status === "rejected" ? stats.reason : null;
      statsNote = missing ? h("p", { class: "muted small" }, t("users.stats_missing", { why: missing.message })) : null;
      rows = joinStats(list.value.users || [], missing ? null : stats.value.stats);
      draw();
    } catch (err) {
      if (!isAbort(err)) replace(tableBox, failure(err));
    }
  }

  search.addEventListener("input", draw);
  main.append(
    h("h1", null, t("nav.users")),
    panel(t("users.add_title"), addForm(reload)),
    panel(null, h("div", { class: "toolbar" }, search, count), tableBox),
  );
  reload();
}
