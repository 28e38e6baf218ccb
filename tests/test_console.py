"""The web console: how the gateway serves it, and the whole product driven in a real Chromium.

The browser tests run against `make demo`'s stack (xrayd and the gateway as child processes in
a sandbox). They need Debian's Chromium and playwright: without them they are skipped, except in
CI, where a missing browser is a failure. Screenshots of every page go to build/screenshots/.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
import time
import urllib.error
import urllib.request
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from conftest import spawn_daemon, stop_process

from gateway.console import STATIC_DIR
from xrayd.sandbox import standin_state
from xrayd.sandbox.builder import Sandbox, build, free_port
from xrayd.sandbox.demo import start_stack, stop_stack
from xrayd.settings import SCHEMA

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
]
SHOTS = Path(__file__).resolve().parents[1] / "build" / "screenshots"
PAGES = ("overview", "users", "live", "events", "settings")
JS = sorted((STATIC_DIR / "js").rglob("*.js"))
BANNED_JS = ("innerHTML", "outerHTML", "insertAdjacentHTML", "eval(", "new Function", "document.write")
SERVICES = ("ui", "xray", "nextjs")
TABS = ("general", "xray", "collector", "backups", "tests")


# --- how the gateway serves the console -------------------------------------------------------


def _asset_urls(page: str) -> list[str]:
    return re.findall(r'(?:src|href)="(/static/[^"]+)"', page)


async def test_page_has_a_strict_csp_and_no_inline_script(api: TestClient) -> None:
    """`/` is HTML that is never cached, under a CSP without 'unsafe-inline', with no inline code."""
    resp = await api.get("/", headers={"Authorization": ""})
    page = await resp.text()
    assert resp.status == 200 and resp.content_type == "text/html"
    assert resp.headers["Cache-Control"] == "no-cache"
    csp = resp.headers["Content-Security-Policy"]
    assert "script-src 'self'" in csp and "default-src 'none'" in csp and "unsafe" not in csp
    assert resp.headers["X-Content-Type-Options"] == "nosniff"
    scripts = re.findall(r"<script\b[^>]*>(.*?)</script>", page, re.S)
    assert scripts and all(body.strip() == "" for body in scripts)
    assert all("src=" in tag for tag in re.findall(r"<script\b[^>]*>", page))
    assert not re.search(r"\son\w+=|\sstyle=|<style", page)


async def test_assets_are_immutable_with_their_types(api: TestClient) -> None:
    """Every asset the page names answers with its type and a year-long immutable cache."""
    page = await (await api.get("/")).text()
    urls = _asset_urls(page)
    assert any(u.endswith("/js/app.js") for u in urls) and any(u.endswith(".css") for u in urls)
    for url in urls:
        resp = await api.get(url)
        assert resp.status == 200, url
        assert resp.headers["Cache-Control"] == "public, max-age=31536000, immutable"
        assert "Content-Security-Policy" in resp.headers
    js = await api.get(next(u for u in urls if u.endswith("app.js")))
    assert js.content_type == "text/javascript"


async def test_page_answers_304_to_its_etag(api: TestClient) -> None:
    """A browser that has the current page gets a 304, so reloads cost a few bytes."""
    first = await api.get("/")
    again = await api.get("/", headers={"If-None-Match": first.headers["ETag"]})
    assert again.status == 304


async def test_only_current_known_assets_are_served(api: TestClient) -> None:
    """Another version, an unknown file, the page itself and traversal attempts are 404s."""
    page = await (await api.get("/")).text()
    prefix = _asset_urls(page)[0].split("/")[2]
    for path in (
        "/static/0123456789abcdef/js/app.js",
        f"/static/{prefix}/js/nope.js",
        f"/static/{prefix}/index.html",
        f"/static/{prefix}/../../gateway/app.py",
        f"/static/{prefix}/%2e%2e/%2e%2e/gateway/app.py",
        f"/static/{prefix}/js/../../../pyproject.toml",
    ):
        resp = await api.get(path)
        assert resp.status == 404, path


def test_scripts_never_build_markup_from_strings() -> None:
    """No innerHTML, eval or Function in the console: API values only ever become text nodes."""
    for path in JS:
        code = path.read_text(encoding="utf-8")
        for banned in BANNED_JS:
            assert banned not in code, f"{path.name} uses {banned}"


def _strings() -> dict[str, str]:
    text = (STATIC_DIR / "js" / "strings.js").read_text(encoding="utf-8")
    english = text[text.index("en: {") :]
    return dict(re.findall(r'^\s*"?([\w.]+)"?: "((?:[^"\\]|\\.)*)",?$', english, re.M))


def test_every_string_the_console_uses_is_in_the_strings_file() -> None:
    """Each t("key") in the scripts, and each setting of the schema, has an English string."""
    strings = _strings()
    used = {key for path in JS for key in re.findall(r'\bt\("([\w.]+)"', path.read_text(encoding="utf-8"))}
    assert len(used) > 100
    assert sorted(used - strings.keys()) == []
    dynamic = [f"nav.{p}" for p in PAGES] + [f"settings.tab.{tab}" for tab in TABS]
    dynamic += [f"service.{s}" for s in SERVICES] + [f"restart.warn_{s}" for s in SERVICES]
    dynamic += [f"severity.{s}" for s in ("info", "warning", "error")]
    dynamic += ["resource.cpu", "resource.ram", "resource.disk"]
    dynamic += [f"settings.section.{section}" for section in SCHEMA]
    dynamic += [f"setting.{section}.{key}" for section, fields in SCHEMA.items() for key in fields]
    assert sorted(set(dynamic) - strings.keys()) == []


# --- the browser --------------------------------------------------------------------------------


def _need_browser() -> Any:
    """The playwright module, or a skip (a failure in CI, which installs Chromium itself)."""
    try:
        from playwright import sync_api
    except ImportError:
        sync_api = None
    missing = "playwright is not installed" if sync_api is None else None
    if missing is None and not CHROMIUM.exists():
        missing = f"{CHROMIUM} is missing (apt-get install chromium)"
    if missing:
        if os.environ.get("CI"):
            pytest.fail(missing)
        pytest.skip(missing)
    return sync_api


@dataclass
class Stack:
    sandbox: Sandbox
    procs: list[Any]
    base: str

    def call(self, method: str, path: str, body: dict[str, Any] | None = None) -> tuple[int, Any]:
        """One REST call with the token, as curl would make it."""
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.base + path, data=data, method=method)
        req.add_header("Authorization", f"Bearer {self.sandbox.token}")
        if data is not None:
            req.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(req, timeout=30) as answer:
                return answer.status, json.loads(answer.read())
        except urllib.error.HTTPError as err:
            with err:
                return err.code, json.loads(err.read() or b"null")


@pytest.fixture(scope="module")
def stack() -> Iterator[Stack]:
    _need_browser()
    root = Path(tempfile.mkdtemp(prefix="xr-", dir="/tmp"))
    port = free_port()
    sandbox = build(root / "sb", gateway_port=port)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ResourceWarning)  # start_stack hands its log files to the children
        procs = start_stack(sandbox, port)
    yield Stack(sandbox, procs, f"http://127.0.0.1:{port}")
    stop_stack(procs)
    for proc in procs:
        stop_process(proc)  # closes the stderr pipe of a daemon a test restarted
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    sync_api = _need_browser()
    with sync_api.sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


def _open(browser: Any, stack: Stack, viewport: dict[str, int]) -> Iterator[Any]:
    context = browser.new_context(viewport=viewport)
    context.grant_permissions(["clipboard-read", "clipboard-write"], origin=stack.base)
    page = context.new_page()
    page.set_default_timeout(15000)
    problems: list[str] = []
    page.on("pageerror", lambda exc: problems.append(f"uncaught: {exc}"))
    page.on("console", lambda msg: problems.append(msg.text) if "Refused to" in msg.text else None)
    yield page
    context.close()
    assert problems == [], "the page broke or its CSP refused something"


@pytest.fixture
def page(browser: Any, stack: Stack) -> Iterator[Any]:
    """A fresh desktop browser tab; the test fails on an uncaught error or a CSP refusal."""
    yield from _open(browser, stack, {"width": 1280, "height": 900})


@pytest.fixture
def phone(browser: Any, stack: Stack) -> Iterator[Any]:
    """The same on a phone-sized screen."""
    yield from _open(browser, stack, {"width": 390, "height": 844})


def shot(page: Any, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.wait_for_load_state("networkidle")
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


def sign_in(page: Any, stack: Stack, route: str = "overview") -> None:
    page.goto(f"{stack.base}/#/{route}")
    page.fill("form[data-form=token] input", stack.sandbox.token)
    page.click("form[data-form=token] button[type=submit]")
    page.wait_for_selector("nav.nav a[aria-current=page]")


def test_token_sign_in_and_every_page(page: Any, stack: Stack) -> None:
    """The token signs in; each page shows its title under the header; screenshots of each."""
    page.goto(stack.base + "/")
    page.wait_for_selector("form[data-form=token]")
    shot(page, "login")
    sign_in(page, stack)
    for name in PAGES:
        page.click(f"nav.nav a[data-page={name}]")
        page.wait_for_selector(f"nav.nav a[data-page={name}][aria-current=page]")
        assert page.inner_text("main h1") == name.capitalize()
        page.wait_for_selector("main .panel")
        shot(page, name)
    for tab in TABS[1:]:
        page.goto(f"{stack.base}/#/settings/{tab}")
        page.wait_for_selector(f".tabs a[href='#/settings/{tab}'][aria-current=page]")
        shot(page, f"settings-{tab}")


@pytest.mark.parametrize(
    ("form", "says"),
    [("token", "The server refused this token."), ("password", "")],
)
def test_a_refused_sign_in_is_said_beside_its_form(page: Any, stack: Stack, form: str, says: str) -> None:
    """A wrong token, or a password where no admin login exists yet, is said under its form."""
    page.goto(stack.base + "/")
    page.fill(f"form[data-form={form}] input", "not-it")
    page.click(f"form[data-form={form}] button[type=submit]")
    error = page.locator(f"form[data-form={form}] .field-error")
    error.wait_for()
    assert error.inner_text().startswith(says) and error.inner_text().endswith(".")
    assert page.locator("nav.nav").count() == 0


def test_phone_width_fits_every_page(phone: Any, stack: Stack) -> None:
    """At 390 px nothing scrolls sideways, on any page; screenshots of each."""
    phone.goto(stack.base + "/")
    phone.wait_for_selector("form[data-form=token]")
    shot(phone, "phone-login")
    sign_in(phone, stack)
    for name in PAGES:
        phone.goto(f"{stack.base}/#/{name}")
        phone.wait_for_selector("main .panel")
        shot(phone, f"phone-{name}")
        overflow = phone.evaluate("document.documentElement.scrollWidth - window.innerWidth")
        assert overflow <= 0, f"{name} is {overflow}px too wide"


def test_dark_theme_is_kept_across_reloads(page: Any, stack: Stack) -> None:
    """The theme button switches light and dark, and the choice survives a reload."""
    sign_in(page, stack)
    before = page.evaluate("document.documentElement.dataset.theme")
    page.click("[data-action=theme]")
    after = page.evaluate("document.documentElement.dataset.theme")
    assert {before, after} == {"light", "dark"}
    page.reload()
    page.wait_for_selector("nav.nav")
    assert page.evaluate("document.documentElement.dataset.theme") == after
    if after != "dark":
        page.click("[data-action=theme]")
    page.goto(f"{stack.base}/#/events")
    page.wait_for_selector(".events")
    shot(page, "dark-events")
    page.click("[data-action=theme]")


def test_a_settings_error_is_shown_beside_its_field(page: Any, stack: Stack) -> None:
    """A value the server refuses shows the server's sentence under that field, nothing saved."""
    sign_in(page, stack, "settings")
    field = page.locator("[data-setting='live.window_seconds']")
    field.locator("input").fill("5")
    page.click(".settings-form button[type=submit]")
    error = field.locator(".field-error")
    error.wait_for()
    assert "between 30 and 3600" in error.inner_text()
    assert stack.call("GET", "/api/settings")[1]["settings"]["live"]["window_seconds"] == 300


def test_settings_are_saved(page: Any, stack: Stack) -> None:
    """A changed setting is saved through POST /api/settings and the event says which key."""
    sign_in(page, stack, "settings")
    page.locator("[data-setting='backups.keep'] input").fill("40")
    page.click(".settings-form button[type=submit]")
    page.locator(".toast", has_text="backups.keep").wait_for()
    assert stack.call("GET", "/api/settings")[1]["settings"]["backups"]["keep"] == 40
    page.goto(f"{stack.base}/#/events")
    page.fill("#ev-type", "settings_updated")
    page.click(".filters button[type=submit]")
    page.locator(".event[data-type=settings_updated]").first.wait_for()
    # the filtered list replaces the whole one: wait for that, then nothing else is left
    page.locator(".event:not([data-type=settings_updated])").first.wait_for(state="detached")
    assert page.locator(".event").count() == page.locator(".event[data-type=settings_updated]").count() >= 1


def test_the_page_reconnects_when_the_daemon_restarts(page: Any, stack: Stack) -> None:
    """xrayd stopping under an open page shows "reconnecting"; when it is back the page carries on."""
    sign_in(page, stack, "settings")
    typed = page.locator("[data-setting='ui.timezone'] input")
    typed.fill("Europe/Moscow")
    stop_process(stack.procs[0])
    page.goto(f"{stack.base}/#/events")
    banner = page.locator("#banner")
    banner.wait_for(state="visible")
    assert "Reconnecting" in banner.inner_text()
    shot(page, "reconnecting")
    stack.procs[0] = spawn_daemon(stack.sandbox.config_file, stack.sandbox.config.socket)
    banner.wait_for(state="hidden")
    page.locator(".event[data-type=xrayd_started]").first.wait_for()


# --- scenarios over the module endpoints (users, live, backups, header) -------------------------


def _row(page: Any, email: str) -> Any:
    return page.locator(f"tr[data-key='{email}']")


def test_add_link_qr_kick_and_delete_a_user(page: Any, stack: Stack) -> None:
    """Add a user, copy their link, see its QR code, kick them (new UUID), delete them."""
    email = "dave@example.org"
    sign_in(page, stack, "users")
    page.fill("[data-form=add-user] input[name=email]", email)
    page.fill("[data-form=add-user] input[name=alias]", "Dave")
    page.click("[data-form=add-user] button[type=submit]")
    _row(page, email).wait_for()
    uuid = next(u["uuid"] for u in stack.call("GET", "/api/users")[1]["users"] if u["email"] == email)

    _row(page, email).locator("[data-action=link]").click()
    dialog = page.locator("dialog")
    link = dialog.locator(".link-text")
    link.wait_for()
    assert link.input_value().startswith(f"vless://{uuid}@")
    dialog.locator("[data-action=copy]").click()
    dialog.get_by_text("Copied.").wait_for()
    assert page.evaluate("navigator.clipboard.readText()") == link.input_value()
    qr = dialog.locator("img.qr-img")
    qr.wait_for()
    page.wait_for_function("document.querySelector('img.qr-img').naturalWidth > 0")
    shot(page, "user-link")
    dialog.locator("button[type=submit]").click()

    _row(page, email).locator("[data-action=kick]").click()
    assert email in page.locator("dialog h2").inner_text()
    page.locator("dialog button[type=submit]").click()
    page.locator(".toast", has_text="kicked").wait_for()
    new_uuid = next(u["uuid"] for u in stack.call("GET", "/api/users")[1]["users"] if u["email"] == email)
    assert new_uuid != uuid

    _row(page, email).locator("[data-action=delete]").click()
    confirm = page.locator("dialog")
    assert email in confirm.locator("h2").inner_text()
    assert email in confirm.locator("[type=submit]").inner_text()
    shot(page, "user-delete-confirm")
    confirm.locator("button[type=submit]").click()
    _row(page, email).wait_for(state="detached")
    assert email not in {u["email"] for u in stack.call("GET", "/api/users")[1]["users"]}


def test_a_failing_action_shows_the_servers_sentence(page: Any, stack: Stack) -> None:
    """Adding an email that exists shows the 409's sentence beside the form, which keeps its input."""
    sign_in(page, stack, "users")
    _row(page, "alice@example.org").wait_for()
    page.fill("[data-form=add-user] input[name=email]", "ALICE@example.org")
    page.click("[data-form=add-user] button[type=submit]")
    error = page.locator("[data-form=add-user] .field-error")
    error.wait_for()
    status, body = stack.call("POST", "/api/users/add", {"email": "ALICE@example.org"})
    assert status == 409 and error.inner_text() == body["message"]
    assert page.input_value("[data-form=add-user] input[name=email]") == "ALICE@example.org"
    shot(page, "users-error")


def _access_line(email: str, domain: str, ip: str) -> str:
    stamp = time.strftime("%Y/%m/%d %H:%M:%S")
    return f"{stamp}.000000 from {ip}:51234 accepted tcp:{domain}:443 [vless-in >> direct] email: {email}\n"


def test_the_live_view_moves_on_its_own(page: Any, stack: Stack) -> None:
    """New connections and traffic show up on the live page without a reload."""
    sign_in(page, stack, "live")
    total = page.locator(".live-now .stat").nth(1).locator(".stat-value")
    total.wait_for()
    before = total.inner_text()
    with stack.sandbox.config.access_log.open("a", encoding="utf-8") as log:
        for i in range(25):
            log.write(_access_line("bob@example.org", f"site{i % 4}.example.com", "203.0.113.7"))
    standin_state.add_traffic(stack.sandbox.state_dir, "bob@example.org", 5_000_000, 40_000_000)
    page.wait_for_function(
        "before => document.querySelectorAll('.live-now .stat-value')[1].textContent !== before", arg=before
    )
    page.locator(".live-now td", has_text="bob@example.org").first.wait_for()
    shot(page, "live-moving")


def test_restore_a_backup(page: Any, stack: Stack) -> None:
    """Restoring the backup made before an add brings the config back to before that add."""
    email = "erin@example.org"
    assert stack.call("POST", "/api/users/add", {"email": email})[0] == 200
    newest = stack.call("GET", "/api/backups")[1]["backups"][0]["name"]
    sign_in(page, stack, "settings/backups")
    row = page.locator(f"tr[data-key='{newest}']")
    row.locator("[data-action=restore]").click()
    dialog = page.locator("dialog")
    dialog.get_by_text(email).wait_for()  # the diff names the user the restore removes
    shot(page, "backup-restore")
    dialog.locator("button[type=submit]").click()
    page.locator(".toast", has_text="restored").wait_for()
    assert email not in {u["email"] for u in stack.call("GET", "/api/users")[1]["users"]}


def _restart_calls(stack: Stack) -> list[list[str]]:
    calls = standin_state.read_state(stack.sandbox.state_dir)["calls"]
    return [argv for argv in calls if "restart" in argv]


def test_keyboard_reaches_everything_and_escape_cancels_a_restart(page: Any, stack: Stack) -> None:
    """Tab starts at the skip link; the restart menu works by keyboard; Esc cancels, nothing restarts."""
    sign_in(page, stack, "events")
    page.reload()  # a fresh load, as the operator opens the console
    page.locator(".events").wait_for()
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.className") == "skip-link"
    before = _restart_calls(stack)
    page.focus(".menu > summary")
    page.keyboard.press("Enter")
    page.locator(".menu-list [data-target=xray]").focus()
    page.keyboard.press("Enter")
    dialog = page.locator("dialog")
    assert dialog.locator("h2").inner_text() == "Restart Xray?"
    shot(page, "restart-confirm")
    page.keyboard.press("Escape")
    dialog.wait_for(state="detached")
    assert _restart_calls(stack) == before


def test_a_confirmed_restart_reports_its_outcome(page: Any, stack: Stack) -> None:
    """Restart Next.js from the header: the dialog shows progress, then a toast says it is done."""
    sign_in(page, stack, "overview")
    page.click(".menu > summary")
    page.click(".menu-list [data-target=nextjs]")
    page.click("dialog button[type=submit]")
    page.locator(".toast", has_text="Next.js restarted").wait_for()
    assert any("xray-report-ui.service" in argv for argv in _restart_calls(stack))
