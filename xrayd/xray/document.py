"""Reading Xray's config document: the managed inbound, its clients, summaries, masking.

Pure functions over the parsed dict. Documents are shared with the repository's cache, so
nothing here mutates one: a change copies the path from the root to what it changes.
Hand-written configs are the norm, so every accessor tolerates missing or odd fields.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any

from xrayd.errors import Unprocessable

Doc = dict[str, Any]
VISION = "xtls-rprx-vision"
MASK = "********"
_NETWORK_ALIASES = {"raw": "tcp", "splithttp": "xhttp", "h2": "http"}


def inbounds(doc: Doc) -> list[Any]:
    value = doc.get("inbounds")
    return value if isinstance(value, list) else []


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def stream(inbound: dict[str, Any]) -> dict[str, Any]:
    return _dict(inbound.get("streamSettings"))


def network(inbound: dict[str, Any]) -> str:
    """The transport, by the name links use: `raw` is `tcp`, `splithttp` is `xhttp`."""
    name = str(stream(inbound).get("network") or "tcp").lower()
    return _NETWORK_ALIASES.get(name, name)


def security(inbound: dict[str, Any]) -> str:
    return str(stream(inbound).get("security") or "none").lower()


def protocol(inbound: dict[str, Any]) -> str:
    return str(inbound.get("protocol") or "").lower()


def clients(inbound: dict[str, Any]) -> list[Any]:
    """`settings.clients` as written (entries may be anything), or []."""
    value = _dict(inbound.get("settings")).get("clients")
    return value if isinstance(value, list) else []


def email_of(client: Any) -> str | None:
    email = client.get("email") if isinstance(client, dict) else None
    return email if isinstance(email, str) and email else None


def id_of(client: Any) -> str | None:
    value = client.get("id") if isinstance(client, dict) else None
    return value if isinstance(value, str) and value else None


def port_of(inbound: dict[str, Any]) -> int | None:
    """The inbound's port; a range `1000-2000` gives its first port; None when not a number."""
    port = inbound.get("port")
    if isinstance(port, bool):
        return None
    if isinstance(port, int):
        return port
    if isinstance(port, str):
        first = port.split(",")[0].split("-")[0].strip()
        return int(first) if first.isdigit() else None
    return None


def _describe(inbound: Any) -> str:
    if not isinstance(inbound, dict):
        return "a malformed entry"
    port = port_of(inbound)
    where = f" on port {port}" if port is not None else ""
    tag = f" ({inbound['tag']})" if isinstance(inbound.get("tag"), str) and inbound["tag"] else ""
    return f"{protocol(inbound) or 'unknown'}/{security(inbound)}{where}{tag}"


@dataclass(frozen=True)
class Managed:
    """The VLESS inbound whose clients are our users, and where it sits in `inbounds`."""

    index: int
    inbound: dict[str, Any]

    @property
    def tag(self) -> str | None:
        tag = self.inbound.get("tag")
        return tag if isinstance(tag, str) and tag else None

    def clients(self) -> list[dict[str, Any]]:
        """The clients that are objects (Xray refuses the others; we just skip them)."""
        return [c for c in clients(self.inbound) if isinstance(c, dict)]

    def by_email_map(self) -> dict[str, dict[str, Any]]:
        """{lowercased email: client}, for looking up many emails at once."""
        return {e.lower(): c for c in self.clients() if (e := email_of(c))}

    def by_email(self, email: str) -> dict[str, Any] | None:
        wanted = email.lower()
        for client in self.clients():
            found = email_of(client)
            if found is not None and found.lower() == wanted:
                return client
        return None

    def default_flow(self) -> str:
        """What the other clients use; with none, Vision on tcp + REALITY (its home), else ""."""
        flows = Counter(str(c.get("flow") or "") for c in self.clients())
        if flows:
            return flows.most_common(1)[0][0]
        return VISION if network(self.inbound) == "tcp" and security(self.inbound) == "reality" else ""


def find_managed(doc: Doc, tag: str | None) -> Managed:
    """The inbound named by settings `xray.inbound_tag`, else the first VLESS + REALITY one."""
    listed = inbounds(doc)
    if tag is not None:
        for i, inbound in enumerate(listed):
            if isinstance(inbound, dict) and inbound.get("tag") == tag:
                if protocol(inbound) != "vless":
                    raise Unprocessable(
                        f"Settings xray.inbound_tag names {tag!r}, a {protocol(inbound) or 'unknown'} "
                        "inbound; only VLESS inbounds are managed.",
                        error="inbound_not_vless",
                    )
                return Managed(i, inbound)
        tags = [ib["tag"] for ib in listed if isinstance(ib, dict) and isinstance(ib.get("tag"), str)]
        raise Unprocessable(
            f"Settings xray.inbound_tag names {tag!r}, but config.json has no inbound with that tag "
            f"(tags: {', '.join(tags) or 'none'}).",
            error="inbound_not_found",
        )
    for i, inbound in enumerate(listed):
        if isinstance(inbound, dict) and protocol(inbound) == "vless" and security(inbound) == "reality":
            return Managed(i, inbound)
    found = ", ".join(_describe(ib) for ib in listed) or "none"
    raise Unprocessable(
        "config.json has no VLESS inbound with REALITY security to manage (inbounds: "
        f"{found}). Add one, or set xray.inbound_tag to the VLESS inbound to manage.",
        error="no_managed_inbound",
    )


def with_clients(doc: Doc, index: int, new_clients: list[Any]) -> Doc:
    """A new document whose inbound `index` has `new_clients`; `doc` is left as it was."""
    listed = list(inbounds(doc))
    inbound = dict(listed[index])
    inbound["settings"] = {**_dict(inbound.get("settings")), "clients": new_clients}
    listed[index] = inbound
    return {**doc, "inbounds": listed}


def all_emails(doc: Doc) -> set[str]:
    """Every client email of every inbound, lowercased: Xray's traffic counters are keyed by
    email across inbounds, so an email must be unique in the whole file."""
    return {
        e.lower() for ib in inbounds(doc) if isinstance(ib, dict) for c in clients(ib) if (e := email_of(c))
    }


def live_apply_blocker(doc: Doc, managed: Managed) -> str | None:
    """Why `xray api adu/rmu` cannot reach this inbound, or None when they can."""
    if managed.tag is None:
        return "the managed inbound has no tag, so Xray's API cannot name it"
    if not isinstance(doc.get("api"), dict):
        return "config.json has no `api` section, so Xray runs without its API"
    return None


def masked(doc: Doc) -> Doc:
    """The document with every REALITY `privateKey` replaced by a mask."""
    listed = inbounds(doc)
    out = []
    changed = False
    for inbound in listed:
        reality = _dict(stream(inbound).get("realitySettings")) if isinstance(inbound, dict) else {}
        if reality.get("privateKey"):
            settings = {**stream(inbound), "realitySettings": {**reality, "privateKey": MASK}}
            inbound = {**inbound, "streamSettings": settings}
            changed = True
        out.append(inbound)
    return {**doc, "inbounds": out} if changed else doc


def _user_key(client: dict[str, Any]) -> str | None:
    email = email_of(client)
    if email is not None:
        return email.lower()
    client_id = id_of(client)
    return f"id:{client_id}" if client_id else None


def _users(doc: Doc) -> dict[str, dict[str, Any]]:
    """{email (or `id:ID`): client} over every inbound."""
    return {
        key: c
        for ib in inbounds(doc)
        if isinstance(ib, dict)
        for c in clients(ib)
        if isinstance(c, dict) and (key := _user_key(c)) is not None
    }


def _inbound_key(inbound: dict[str, Any]) -> str:
    return inbound["tag"] if isinstance(inbound.get("tag"), str) and inbound["tag"] else _describe(inbound)


def summary(doc: Doc) -> dict[str, Any]:
    """What a config holds, for a person choosing a backup: users, ports, protocols."""
    rows = [
        {
            "tag": ib.get("tag") if isinstance(ib.get("tag"), str) else None,
            "protocol": protocol(ib),
            "port": port_of(ib),
            "network": network(ib),
            "security": security(ib),
            "clients": len(clients(ib)),
        }
        for ib in inbounds(doc)
        if isinstance(ib, dict)
    ]
    return {
        "users_count": sum(r["clients"] for r in rows),
        "ports": sorted({r["port"] for r in rows if r["port"] is not None}),
        "protocols": sorted({r["protocol"] for r in rows if r["protocol"]}),
        "inbounds": rows,
    }


def diff(current: Doc, other: Doc) -> dict[str, Any]:
    """What replacing `current` by `other` would change: users by email, inbounds by tag."""
    now, then = _users(current), _users(other)
    now_in = {_inbound_key(ib) for ib in inbounds(current) if isinstance(ib, dict)}
    then_in = {_inbound_key(ib) for ib in inbounds(other) if isinstance(ib, dict)}
    changed = sorted(
        k
        for k in now.keys() & then.keys()
        if (now[k].get("id"), now[k].get("flow")) != (then[k].get("id"), then[k].get("flow"))
    )
    return {
        "users_added": sorted(then.keys() - now.keys()),
        "users_removed": sorted(now.keys() - then.keys()),
        "users_changed": changed,
        "inbounds_added": sorted(then_in - now_in),
        "inbounds_removed": sorted(now_in - then_in),
        "identical": current == other,
    }
