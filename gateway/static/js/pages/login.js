// Sign-in: the admin password (a cookie session with a CSRF token), or an API token kept for
// this tab only, for set-ups that have no admin account.
import { ApiError, auth, get, post } from "../api.js";
import { h } from "../dom.js";
import { t } from "../i18n.js";
import { busy, errorLine, field } from "../ui.js";

const PASSWORD_ERRORS = new Set(["invalid_credentials", "rate_limited"]);

function passwordForm(onSignedIn) {
  const password = h("input", { type: "password", name: "password", autocomplete: "current-password", required: true });
  const error = errorLine();
  const submit = h("button", { type: "submit", class: "btn btn-primary" }, t("login.signin"));
  const form = h(
    "form",
    { class: "form login-form", dataset: { form: "password" } },
    h("h2", null, t("login.password_title")),
    field(t("login.password"), password),
    error,
    submit,
  );
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    error.clear();
    try {
      const answer = await busy(submit, () => post("/api/auth/login", { password: password.value }));
      auth.useSession(answer.csrf_token);
      onSignedIn();
    } catch (err) {
      // 401 "unauthorized", 404 or 501: this server has no admin login (yet)
      error.show(PASSWORD_ERRORS.has(err.code) ? err : new Error(t("login.password_unavailable")));
      password.select();
    }
  });
  return form;
}

function tokenForm(onSignedIn) {
  const token = h("input", { type: "password", name: "token", autocomplete: "off", spellcheck: "false", required: true });
  const error = errorLine();
  const submit = h("button", { type: "submit", class: "btn" }, t("login.use_token"));
  const form = h(
    "form",
    { class: "form login-form", dataset: { form: "token" } },
    h("h2", null, t("login.token_title")),
    field(t("login.token"), token, t("login.token_hint")),
    error,
    submit,
  );
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    error.clear();
    auth.useToken(token.value.trim());
    try {
      await busy(submit, () => get("/api/auth/me"));
    } catch (err) {
      if (err instanceof ApiError && (err.status === 401 || err.status === 403)) {
        auth.clear();
        error.show(new Error(t("login.token_refused")));
        token.select();
        return;
      }
      // any other answer got past the token check: /api/auth/me is only missing
    }
    onSignedIn();
  });
  return form;
}

export function renderLogin(main, { onSignedIn }) {
  main.append(
    h(
      "div",
      { class: "login" },
      h("h1", { class: "login-brand" }, "xray-report"),
      h("p", { class: "muted" }, t("login.intro")),
      h("div", { class: "login-forms" }, passwordForm(onSignedIn), tokenForm(onSignedIn)),
    ),
  );
  main.querySelector("input").focus();
}
