"""The one declarative table of REST endpoints: path, RPC method, parameters.

Everything else (handlers, the OpenAPI document) is derived from this table.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from gateway.params import Bool, Date, Enum, Float, Int, Param, Str

LONG = 600.0  # seconds: restarts, collector runs and test runs may take minutes


@dataclass(frozen=True)
class RawBody:
    """Send one string of the result as the whole body, e.g. an SVG image, when it is there."""

    key: str
    media_type: str


@dataclass(frozen=True)
class Route:
    method: str  # HTTP method
    path: str
    rpc: str
    params: dict[str, Param] = field(default_factory=dict)
    path_params: dict[str, str] = field(default_factory=dict)  # {url_name: rpc_param}
    spread_body: bool = False  # the whole JSON body is the params (settings.update)
    timeout: float = 30.0
    summary: str = ""
    admin: bool = False  # a GET that still needs the admin scope (it runs programs as root)
    admin_if: str = ""  # a bool param that, when true, makes the call need the admin scope
    returns: dict[str, Any] | None = None  # JSON Schema of the result (OpenAPI); None: an object
    raw: RawBody | None = None  # when the result holds raw.key, answer it as-is (else JSON)

    def scope(self, params: dict[str, Any]) -> str:
        """The token scope a call needs: `read` for a GET that changes and reveals nothing."""
        if self.method != "GET" or self.admin or (self.admin_if and params.get(self.admin_if)):
            return "admin"
        return "read"


_EMAIL = Str(64, "the user's email (the key of their traffic counters)")
_EVENT = {
    "type": "object",
    "required": ["ts", "type", "severity", "service", "message", "data"],
    "properties": {
        "ts": {"type": "string"},
        "type": {"type": "string"},
        "severity": {"enum": ["info", "warning", "error"]},
        "service": {"type": "string"},
        "message": {"type": "string"},
        "data": {"type": "object"},
    },
}
_COUNTS = {"type": "object", "additionalProperties": {"type": "integer"}}
_SETTINGS = {"type": "object", "additionalProperties": {"type": "object"}}
_METRIC = Enum("traffic", "conns")
_SCOPE = Enum("global", "user")

ROUTES: tuple[Route, ...] = (
    Route(
        "GET",
        "/api/usage/dashboard",
        "usage.dashboard",
        {"days": Int(1, 3660), "user": Str(64)},
        summary="Usage over the last N days",
    ),
    Route("GET", "/api/usage/dates", "usage.dates", summary="Dates with usage data"),
    Route(
        "GET",
        "/api/usage/dashboard/{date}",
        "usage.dashboard_for_date",
        {"date": Date(), "mode": Enum("daily", "cumulative"), "window_days": Int(1, 3660)},
        path_params={"date": "date"},
        summary="Usage for one date",
    ),
    Route("GET", "/api/users", "users.list", summary="All users"),
    Route(
        "POST",
        "/api/users/add",
        "users.add",
        {"email": _EMAIL, "alias": Str(256), "uuid": Str(64), "flow": Str(64)},
        timeout=LONG,  # may restart Xray (API down), and roll back if it does not come up
        summary="Add a user",
    ),
    Route(
        "POST", "/api/users/delete", "users.delete", {"email": _EMAIL}, timeout=LONG, summary="Delete a user"
    ),
    Route(
        "POST",
        "/api/users/kick",
        "users.kick",
        {"email": _EMAIL},
        timeout=LONG,
        summary="Give a user a new UUID",
    ),
    Route(
        "POST",
        "/api/users/update-alias",
        "users.update_alias",
        {"email": _EMAIL, "alias": Str(256)},
        summary="Rename a user",
    ),
    Route(
        "GET",
        "/api/users/link",
        "users.link",
        {"uuid": Str(64), "email": _EMAIL, "format": Enum("link", "qr")},
        summary="A user's vless:// link (format=qr: an SVG QR code of it)",
        raw=RawBody("svg", "image/svg+xml"),
    ),
    Route("GET", "/api/users/stats", "users.stats", summary="All-time traffic per user"),
    Route("GET", "/api/live/now", "live.now", summary="Who is online now"),
    Route(
        "GET",
        "/api/live/series",
        "live.series",
        {
            "metric": _METRIC,
            "period": Int(60, 7 * 86400),
            "granularity": Int(60, 86400),
            "scope": _SCOPE,
            "user": Str(64),
        },
        summary="A live time series",
    ),
    Route(
        "GET",
        "/api/live/top",
        "live.top",
        {
            "metric": _METRIC,
            "period": Int(60, 7 * 86400),
            "scope": _SCOPE,
            "user": Str(64),
            "by": Enum("users", "domains"),
            "limit": Int(1, 1000),
        },
        summary="Top users or domains",
    ),
    Route(
        "GET",
        "/api/events",
        "events.list",
        {
            "limit": Int(1, 10000),
            "hours": Float(1, 8760),
            "type": Str(64),
            "severity": Enum("info", "warning", "error"),
            "service": Str(64),
        },
        returns={
            "type": "object",
            "required": ["events", "total"],
            "properties": {"events": {"type": "array", "items": _EVENT}, "total": {"type": "integer"}},
        },
        summary="Events, newest first",
    ),
    Route(
        "GET",
        "/api/events/stats",
        "events.stats",
        {"hours": Float(1, 8760)},
        returns={
            "type": "object",
            "required": ["stats"],
            "properties": {
                "stats": {
                    "type": "object",
                    "required": ["by_type", "by_severity", "by_service", "total"],
                    "properties": {
                        "by_type": _COUNTS,
                        "by_severity": _COUNTS,
                        "by_service": _COUNTS,
                        "total": {"type": "integer"},
                    },
                }
            },
        },
        summary="Event counts by type, severity and service",
    ),
    Route("GET", "/api/system/status", "system.status", summary="Service states"),
    Route("GET", "/api/system/resources", "system.resources", summary="CPU, memory, disk"),
    Route("GET", "/api/ports/status", "system.ports", summary="Which ports answer"),
    Route(
        "POST",
        "/api/system/restart",
        "system.restart",
        {"target": Enum("ui", "xray", "nextjs")},
        timeout=LONG,
        summary="Restart a service",
    ),
    Route(
        "GET",
        "/api/settings",
        "settings.get",
        returns={"type": "object", "required": ["settings"], "properties": {"settings": _SETTINGS}},
        summary="All settings",
    ),
    Route(
        "POST",
        "/api/settings",
        "settings.update",
        spread_body=True,
        returns={
            "type": "object",
            "required": ["ok", "settings", "changed"],
            "properties": {
                "ok": {"const": True},
                "settings": _SETTINGS,
                "changed": {"type": "array", "items": {"type": "string"}},
            },
        },
        summary="Change settings (a partial object)",
    ),
    Route(
        "GET",
        "/api/xray/config",
        "xray.config",
        {"reveal": Bool("show the REALITY private key (needs the admin scope)")},
        admin_if="reveal",
        summary="Xray's config.json",
    ),
    Route("POST", "/api/xray/restart", "xray.restart", timeout=LONG, summary="Restart Xray"),
    Route("GET", "/api/xray/reality", "xray.reality", summary="REALITY parameters"),
    Route("GET", "/api/collector/status", "collector.status", summary="Collector state"),
    Route(
        "POST",
        "/api/collector/toggle",
        "collector.toggle",
        {"enabled": Bool()},
        summary="Turn the daily collector on or off",
    ),
    Route(
        "POST",
        "/api/collector/run",
        "collector.run",
        {"include_today": Bool(), "date": Date()},
        timeout=LONG,
        summary="Run the collector",
    ),
    Route("GET", "/api/backups", "backups.list", summary="Config backups, newest first"),
    Route(
        "GET",
        "/api/backups/{file}/preview",
        "backups.preview",
        {"name": Str(255)},
        path_params={"file": "name"},
        summary="What a backup holds",
    ),
    Route(
        "POST",
        "/api/backups/{file}/restore",
        "backups.restore",
        {"name": Str(255), "confirm": Bool(), "restart_xray": Bool()},
        path_params={"file": "name"},
        timeout=LONG,
        summary="Restore a backup",
    ),
    Route(
        "DELETE",
        "/api/backups/{file}",
        "backups.delete",
        {"name": Str(255)},
        path_params={"file": "name"},
        summary="Delete a backup",
    ),
    Route(
        "GET",
        "/api/tests/run",
        "tests.run",
        {"path": Str(512), "verbose": Bool()},
        timeout=LONG,
        admin=True,
        summary="Run the self-tests",
    ),
    Route("GET", "/api/tests/list", "tests.list", summary="Test files"),
    Route("GET", "/api/tests/status", "tests.status", summary="Whether tests can run"),
)
