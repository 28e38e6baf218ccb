// Settings: operator settings, Xray's config and REALITY parameters, the collector, config
// backups (preview with the diff, restore, delete) and the self-tests. One tab at a time.
import { del, get, post } from "../api.js";
import { h, replace } from "../dom.js";
import { bytes, dateTime, number, seconds } from "../format.js";
import { t } from "../i18n.js";
import { busy, button, dataTable, definitionList, dialog, errorLine, field, fill, panel, toast } from "../ui.js";

const TABS = ["general", "xray", "collector", "backups", "tests"];
const CHOICES = { "xray.revoke": ["restart", "api_only"] };
const MASK = "••••••••";

/** "Invalid settings: a.b: sentence; c.d: sentence" → {"a.b": "sentence", ...} */
export function problemsByField(err) {
  const lines = err.body?.problems || String(err.message || "").replace(/^[^:]*settings:\s*/i, "").split(/;\s+/);
  const out = {};
  for (const line of lines) {
    const match = /^([\w-]+\.[\w-]+|[\w-]+):\s*(.+)$/.exec(line.trim());
    if (match) out[match[1]] = match[2];
  }
  return out;
}

function inputFor(path, value) {
  if (CHOICES[path]) {
    return h("select", { name: path }, ...CHOICES[path].map((c) => h("option", { value: c, selected: c === value }, t(`choice.${c}`))));
  }
  if (typeof value === "boolean") return h("input", { type: "checkbox", name: path, checked: value });
  if (typeof value === "number") return h("input", { type: "number", name: path, value: String(value), inputmode: "numeric", step: "any" });
  return h("input", { type: "text", name: path, value: value ?? "", placeholder: value === null ? t("settings.unset") : "", autocomplete: "off" });
}

function readInput(input, original) {
  if (input.type === "checkbox") return input.checked;
  const text = input.value.trim();
  if (typeof original === "number") return text === "" ? null : Number(text);
  return text === "" ? null : text;
}

function generalTab() {
  const box = h("div");
  fill(box, async () => {
    const { settings } = await get("/api/settings");
    const inputs = {};
    const errors = {};
    const formError = errorLine();
    const save = h("button", { type: "submit", class: "btn btn-primary" }, t("save"));
    const sections = Object.entries(settings).map(([section, values]) =>
      h(
        "fieldset",
        { class: "fieldset" },
        h("legend", null, t(`settings.section.${section}`)),
        ...Object.entries(values).map(([key, value]) => {
          const path = `${section}.${key}`;
          inputs[path] = inputFor(path, value);
          errors[path] = errorLine();
          inputs[path].setAttribute("aria-describedby", (errors[path].id = `err-${path.replace(".", "-")}`));
          const f = field(t(`setting.${path}`), inputs[path], t(`setting.${path}.hint`) === `setting.${path}.hint` ? "" : t(`setting.${path}.hint`));
          f.append(errors[path]);
          f.dataset.setting = path;
          return f;
        }),
      ),
    );
    const form = h("form", { class: "form settings-form", novalidate: true }, ...sections, formError, h("div", { class: "form-actions" }, save));
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      formError.clear();
      Object.values(errors).forEach((e) => e.clear());
      const patch = {};
      for (const [path, input] of Object.entries(inputs)) {
        const [section, key] = path.split(".");
        const value = readInput(input, settings[section][key]);
        if (value !== settings[section][key]) (patch[section] ||= {})[key] = value;
      }
      if (!Object.keys(patch).length) {
        toast(t("settings.nothing_changed"), "info");
        return;
      }
      try {
        const answer = await busy(save, () => post("/api/settings", patch), t("saving"));
        Object.assign(settings, answer.settings || settings);
        toast(t("settings.saved", { keys: (answer.changed || []).join(", ") }));
      } catch (err) {
        const byField = problemsByField(err);
        const known = Object.entries(byField).filter(([path]) => errors[path]);
        known.forEach(([path, sentence]) => errors[path].show(new Error(sentence)));
        if (known.length) inputs[known[0][0]].focus();
        else formError.show(err);
      }
    });
    return form;
  });
  return panel(t("settings.tab.general"), box);
}

/** A copy of Xray's config with every privateKey masked, whatever the server sent. */
export function masked(config) {
  return JSON.parse(JSON.stringify(config), (key, value) => (key === "privateKey" && typeof value === "string" && value ? MASK : value));
}

function xrayTab() {
  const reality = h("div");
  const config = h("div");
  fill(reality, async () => {
    const { ok, ...params } = await get("/api/xray/reality");
    return definitionList(Object.entries(params).map(([k, v]) => [k, typeof v === "object" ? JSON.stringify(v) : String(v)]));
  });
  fill(config, async () => h("pre", { class: "code config" }, JSON.stringify(masked((await get("/api/xray/config")).config), null, 2)));
  const restart = button(t("xray.restart"), async () => {
    const done = await dialog({ title: t("restart.title", { name: "Xray" }), body: t("restart.warn_xray"), confirm: t("xray.restart"), danger: true, action: () => post("/api/xray/restart") });
    if (done) toast(t("restart.done", { name: "Xray" }));
  }, { kind: "danger" });
  return [panel(t("xray.reality"), reality, h("div", { class: "form-actions" }, restart)), panel(t("xray.config"), h("p", { class: "muted small" }, t("xray.masked")), config)];
}

function collectorTab() {
  const box = h("div");
  const load = () =>
    fill(box, async () => {
      const { status } = await get("/api/collector/status");
      const error = errorLine();
      const toggle = button(status.enabled ? t("collector.disable") : t("collector.enable"), async () => {
        error.clear();
        try {
          await busy(toggle, () => post("/api/collector/toggle", { enabled: !status.enabled }));
          load();
        } catch (err) {
          error.show(err);
        }
      }, { dataset: { action: "toggle" } });
      const today = h("input", { type: "checkbox", id: "col-today" });
      const run = button(t("collector.run"), async () => {
        error.clear();
        try {
          const answer = await busy(run, () => post("/api/collector/run", { include_today: today.checked }), t("collector.running"));
          toast(answer.message || t("collector.done"));
          load();
        } catch (err) {
          error.show(err);
        }
      }, { kind: "primary", dataset: { action: "run" } });
      return [
        definitionList([
          [t("collector.enabled"), status.enabled ? t("yes") : t("no")],
          [t("collector.schedule"), status.schedule],
          [t("collector.newest"), status.newest_date],
          [t("collector.lag"), status.lag_days === null || status.lag_days === undefined ? "—" : t("collector.lag_days", { n: status.lag_days })],
          [t("collector.last_run"), status.last_run ? dateTime(status.last_run.ts || status.last_run) : "—"],
          [t("collector.last_error"), status.last_error || "—"],
        ]),
        h("div", { class: "form-actions" }, toggle, h("label", { class: "check", for: "col-today" }, today, t("collector.include_today")), run),
        error,
      ];
    });
  load();
  return panel(t("settings.tab.collector"), box);
}

function diffView(preview) {
  const diff = preview.diff_vs_current || {};
  const list = (items) => (items?.length ? items.join(", ") : t("none"));
  const extra = Object.entries(diff).filter(([k]) => k !== "users_added" && k !== "users_removed");
  return h(
    "div",
    { class: "preview" },
    definitionList([
      [t("backups.users"), number(preview.users_count)],
      [t("backups.ports"), (preview.ports || []).join(", ") || "—"],
      [t("backups.protocols"), (preview.protocols || []).join(", ") || "—"],
    ]),
    h("h3", null, t("backups.diff")),
    definitionList([
      [t("backups.added"), list(diff.users_added)],
      [t("backups.removed"), list(diff.users_removed)],
      ...extra.map(([k, v]) => [k, typeof v === "object" ? JSON.stringify(v) : String(v)]),
    ]),
  );
}

function backupsTab() {
  const box = h("div");
  const path = (name) => `/api/backups/${encodeURIComponent(name)}`;
  const load = () =>
    fill(box, async () => {
      const { backups } = await get("/api/backups");
      const preview = async (b) => {
        const body = h("div");
        fill(body, async () => diffView((await get(`${path(b.name)}/preview`)).preview));
        await dialog({ title: t("backups.preview_title", { name: b.name }), body, confirm: t("close"), cancellable: false });
      };
      const restore = async (b) => {
        const body = h("div");
        const restart = h("input", { type: "checkbox", id: "restore-restart", checked: true });
        fill(body, async () => diffView((await get(`${path(b.name)}/preview`)).preview));
        const done = await dialog({
          title: t("backups.restore_title", { name: b.name }),
          body,
          form: h("label", { class: "check", for: "restore-restart" }, restart, t("backups.restart_after")),
          confirm: t("backups.restore"),
          danger: true,
          action: () => post(`${path(b.name)}/restore`, { confirm: true, restart_xray: restart.checked }),
        });
        if (done) {
          toast(t("backups.restored", { name: b.name }));
          load();
        }
      };
      const remove = async (b) => {
        const done = await dialog({ title: t("backups.delete_title", { name: b.name }), body: t("backups.delete_warn"), confirm: t("backups.delete"), danger: true, action: () => del(path(b.name)) });
        if (done) {
          toast(t("backups.deleted", { name: b.name }));
          load();
        }
      };
      return dataTable({
        label: t("settings.tab.backups"),
        rows: backups.map((b) => ({ ...b, __key: b.name })),
        sortKey: "mtime",
        desc: true,
        empty: t("backups.none"),
        columns: [
          { key: "name", label: t("backups.name"), cell: (b) => h("code", { class: "wrap" }, b.name) },
          { key: "reason", label: t("backups.reason") },
          { key: "size", label: t("backups.size"), cell: (b) => bytes(b.size), cls: "num" },
          { key: "mtime", label: t("backups.time"), cell: (b) => dateTime(b.mtime) },
          {
            key: "actions",
            label: t("users.actions"),
            sortable: false,
            cls: "col-actions",
            cell: (b) =>
              h(
                "div",
                { class: "row-actions" },
                button(t("backups.preview"), () => preview(b), { dataset: { action: "preview" } }),
                button(t("backups.restore"), () => restore(b), { dataset: { action: "restore" } }),
                button(t("backups.delete"), () => remove(b), { kind: "danger", dataset: { action: "delete" } }),
              ),
          },
        ],
      });
    });
  load();
  return panel(t("settings.tab.backups"), box);
}

function testsTab() {
  const statusBox = h("div");
  const listBox = h("div");
  const results = h("div", { class: "test-results", "aria-live": "polite" });
  const error = errorLine();
  const verbose = h("input", { type: "checkbox", id: "tests-verbose" });
  const runTests = async (btn, testPath) => {
    error.clear();
    try {
      const answer = await busy(btn, () => get("/api/tests/run", { path: testPath, verbose: verbose.checked || null }), t("tests.running"));
      const sum = answer.summary || {};
      replace(
        results,
        h("p", { class: answer.success ? "ok" : "error", dataset: { success: String(Boolean(answer.success)) } }, answer.success ? t("tests.passed_all") : t("tests.failed_some")),
        h("p", { class: "muted" }, t("tests.summary", { passed: number(sum.passed), failed: number(sum.failed), skipped: number(sum.skipped), errors: number(sum.errors), duration: seconds(sum.duration) })),
        dataTable({
          label: t("tests.results"),
          rows: answer.tests || [],
          sortKey: "outcome",
          columns: [
            { key: "nodeid", label: t("tests.test"), cell: (r) => h("code", { class: "wrap" }, r.nodeid) },
            { key: "outcome", label: t("tests.outcome"), cell: (r) => h("span", { class: ["badge", `out-${r.outcome}`] }, r.outcome) },
            { key: "duration", label: t("tests.duration"), cell: (r) => seconds(r.duration), cls: "num" },
            { key: "message", label: t("tests.message"), cell: (r) => (r.message ? h("pre", { class: "code small" }, r.message) : "") },
          ],
        }),
      );
    } catch (err) {
      error.show(err);
    }
  };
  fill(statusBox, async () => {
    const st = await get("/api/tests/status");
    return definitionList([
      [t("tests.pytest"), st.pytest_available ? t("yes") : t("no")],
      [t("tests.folder"), st.tests_directory_exists ? t("yes") : t("no")],
      [t("tests.files"), number(st.test_files_count)],
    ]);
  });
  fill(listBox, async () => {
    const { test_files: files } = await get("/api/tests/list");
    const all = button(t("tests.run_all"), () => runTests(all, null), { kind: "primary", dataset: { action: "run-all" } });
    return [
      h("div", { class: "form-actions" }, all, h("label", { class: "check", for: "tests-verbose" }, verbose, t("tests.verbose"))),
      h("ul", { class: "test-files" }, ...files.map((f) => {
        const run = button(t("tests.run"), () => runTests(run, f.path), { dataset: { action: "run" } });
        return h("li", null, h("code", null, f.name), run);
      })),
    ];
  });
  return [panel(t("tests.status"), statusBox), panel(t("settings.tab.tests"), listBox, error, results)];
}

const BUILD = { general: generalTab, xray: xrayTab, collector: collectorTab, backups: backupsTab, tests: testsTab };

export function render(main, { sub }) {
  const tab = TABS.includes(sub) ? sub : "general";
  main.append(
    h("h1", null, t("nav.settings")),
    h(
      "nav",
      { class: "tabs", "aria-label": t("settings.tabs") },
      ...TABS.map((name) => h("a", { href: `#/settings/${name}`, class: "tab", "aria-current": name === tab ? "page" : null }, t(`settings.tab.${name}`))),
    ),
    ...[].concat(BUILD[tab]()),
  );
}
