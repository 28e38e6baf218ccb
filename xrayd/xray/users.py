"""Users: the clients of the managed inbound. Changes are group-committed and applied live.

add, delete and kick queue a `Change`; one flusher task takes everything queued, applies it
to the current document in order (a change that does not fit fails alone), writes the file
once (validated, backed up, atomic) and then brings the running Xray to the new state with
one `xray api rmu` and one `xray api adu` for the whole batch. Fifty concurrent adds cost
about one write and one API call, not fifty. Where the API cannot do it (no tag, no `api`
section, API down, a user it refuses), Xray is restarted instead and the event says why.
Removing someone's access (delete, kick) also restarts Xray when settings `xray.revoke` is
`restart`, because the API cuts new connections only. The file is written before Xray is
touched, so Xray never runs a user the file does not have.
"""

from __future__ import annotations

import asyncio
import logging
import uuid as uuidlib
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from xrayd import validate
from xrayd.errors import BadRequest, Conflict, DomainError, NotFound, Unprocessable
from xrayd.xray import checks, reality
from xrayd.xray.aliases import AliasStore
from xrayd.xray.commands import XrayCommands
from xrayd.xray.document import (
    VISION,
    Doc,
    Managed,
    all_emails,
    clients,
    email_of,
    find_managed,
    id_of,
    live_apply_blocker,
    network,
    with_clients,
)
from xrayd.xray.repository import ConfigChanged, ConfigRepository, Snapshot
from xrayd.xray.restart import Restarter

if TYPE_CHECKING:
    from xrayd.daemon import Daemon

log = logging.getLogger(__name__)

WRITE_TRIES = 3  # re-reads when config.json is edited by hand while a batch is checked
LOOKUP_MAX = 256  # an email or id to look up may be hand-written: be lenient, but bounded


@dataclass(eq=False)
class Change:
    """One queued add, delete or kick, and the future its caller awaits."""

    kind: str  # "add" | "delete" | "kick"
    email: str
    done: asyncio.Future[dict[str, Any]]
    alias: str | None = None
    uuid: str | None = None  # add: the id asked for
    flow: str | None = None  # add: the flow asked for
    client: dict[str, Any] | None = None  # the client as written (add, kick)
    result: dict[str, Any] = field(default_factory=dict)

    def fail(self, exc: BaseException) -> None:
        if not self.done.done():
            self.done.set_exception(exc)

    def apply(self, doc: Doc, tag: str | None) -> Doc:
        """The document with this change made; raises a DomainError when it does not fit."""
        managed = find_managed(doc, tag)
        if self.kind == "add":
            return self._add(doc, managed)
        target = managed.by_email(self.email)
        if target is None:
            raise NotFound(f"There is no user {self.email}.", error="user_not_found")
        if self.kind == "delete":
            return with_clients(doc, managed.index, [c for c in clients(managed.inbound) if c is not target])
        self.client = {**target, "id": str(uuidlib.uuid4())}
        return with_clients(
            doc, managed.index, [self.client if c is target else c for c in clients(managed.inbound)]
        )

    def _add(self, doc: Doc, managed: Managed) -> Doc:
        if self.email.lower() in all_emails(doc):
            raise Conflict(f"A user with email {self.email} already exists.", error="user_exists")
        client_id = self.uuid or str(uuidlib.uuid4())
        if self.uuid is not None:
            wanted = checks.xray_uuid(client_id)
            if any(checks.xray_uuid(i) == wanted for c in managed.clients() if (i := id_of(c))):
                raise Conflict("Another user already has this uuid.", error="uuid_exists")
        tcp = network(managed.inbound) == "tcp"
        flow = (managed.default_flow() if tcp else "") if self.flow is None else self.flow
        if flow == VISION and not tcp:
            raise BadRequest(
                f"flow {VISION} works on tcp (raw) inbounds only; this one is {network(managed.inbound)}.",
                error="invalid_flow",
            )
        self.client = {"id": client_id, "email": self.email, "flow": flow}
        return with_clients(doc, managed.index, [*clients(managed.inbound), self.client])


@dataclass(frozen=True)
class Live:
    """How a batch reached the running Xray."""

    applied: str  # "api" or "restart"
    why: str | None = None  # why a restart applied it instead of the API
    revoked_by_restart: bool = False


EVENT = {"add": "user_added", "delete": "user_deleted", "kick": "user_kicked"}


def _reason(changes: list[Change]) -> str:
    """The backup's reason: the event type when the batch is of one kind."""
    kinds = {c.kind for c in changes}
    return EVENT[kinds.pop()] if len(kinds) == 1 else "users_changed"


def _same_id(client: dict[str, Any], wanted: str) -> bool:
    """Whether a client has id `wanted`, as Xray sees ids (a custom id equals its UUIDv5)."""
    have = id_of(client)
    if have is None:
        return False
    mapped = checks.xray_uuid(have)
    return have == wanted or (mapped is not None and mapped == checks.xray_uuid(wanted))


def lookup(name: str, value: Any) -> str:
    """An email or id to find (lenient: configs written by hand may hold any string)."""
    return validate.text(name, value, max_len=LOOKUP_MAX)


class UsersService:
    def __init__(
        self,
        d: Daemon,
        repo: ConfigRepository,
        aliases: AliasStore,
        commands: XrayCommands,
        restarter: Restarter,
    ) -> None:
        self.d = d
        self.repo = repo
        self.aliases = aliases
        self.commands = commands
        self.restarter = restarter
        self._pending: list[Change] = []
        self._flusher: asyncio.Task[None] | None = None
        self._listed: tuple[Snapshot, int, str | None, list[dict[str, Any]]] | None = None

    def _tag(self) -> str | None:
        return self.d.settings.get("xray", "inbound_tag")

    async def managed(self) -> tuple[Snapshot, Managed]:
        snapshot = await self.repo.current()
        return snapshot, find_managed(snapshot.doc, self._tag())

    # --- reading ------------------------------------------------------------------------

    def _user(self, client: dict[str, Any]) -> dict[str, Any]:
        email = email_of(client)
        return {
            "email": email,
            "uuid": client["id"],
            "alias": self.aliases.get(email) if email else None,
            "flow": str(client.get("flow") or ""),
        }

    async def list(self) -> dict[str, Any]:
        """Every client of the managed inbound (those without an email too, by id).
        Cached per config version and aliases version, since other modules call it often
        (`d.methods["users.list"]()`): the list is a fresh one, its user dicts are shared,
        so callers must not change them."""
        snapshot, managed = await self.managed()
        tag, version = self._tag(), self.aliases.version
        cached = self._listed
        if cached is not None and cached[0] is snapshot and cached[1:3] == (version, tag):
            return {"users": list(cached[3])}
        users = [self._user(c) for c in managed.clients() if id_of(c)]
        self._listed = (snapshot, version, tag, users)
        return {"users": list(users)}

    def _find(self, managed: Managed, email: str | None, client_id: str | None) -> dict[str, Any]:
        if email is None and client_id is None:
            raise BadRequest("Give the user's email or uuid.", error="invalid_params")
        if email is not None:
            client = managed.by_email(email)
        else:
            client = next((c for c in managed.clients() if _same_id(c, client_id or "")), None)
        if client is None or (client_id is not None and not _same_id(client, client_id)):
            raise NotFound(f"There is no user {email or client_id}.", error="user_not_found")
        return client

    async def link(self, email: Any = None, uuid: Any = None, format: Any = "link") -> dict[str, Any]:
        email = None if email is None else lookup("email", email)
        client_id = None if uuid is None else lookup("uuid", uuid)
        kind = validate.choice("format", format, ("link", "qr"))
        _, managed = await self.managed()
        client = self._find(managed, email, client_id)
        params = reality.params(managed, self.d.settings.get("ui", "public_host"))
        name = email_of(client)
        label = (self.aliases.get(name) if name else None) or name or client["id"][:8]
        text = reality.link(params, client["id"], str(client.get("flow") or ""), label)
        out: dict[str, Any] = {"ok": True, "link": text, "email": name}
        if kind == "qr":
            out["svg"] = await asyncio.to_thread(reality.qr_svg, text)
        return out

    # --- changing -----------------------------------------------------------------------

    async def add(self, email: Any, alias: Any = None, uuid: Any = None, flow: Any = None) -> dict[str, Any]:
        change = Change(
            "add",
            checks.email(email),
            self._future(),
            alias=checks.alias(alias, allow_empty=True) if alias is not None else None,
            uuid=checks.client_id(uuid) if uuid not in (None, "") else None,
            flow=checks.flow(flow) if flow is not None else None,
        )
        return await self._submit(change)

    async def delete(self, email: Any) -> dict[str, Any]:
        return await self._submit(Change("delete", lookup("email", email), self._future()))

    async def kick(self, email: Any) -> dict[str, Any]:
        return await self._submit(Change("kick", lookup("email", email), self._future()))

    async def update_alias(self, email: Any, alias: Any) -> dict[str, Any]:
        email = lookup("email", email)
        alias = checks.alias(alias, allow_empty=True)
        _, managed = await self.managed()
        client = managed.by_email(email)
        if client is None:
            raise NotFound(f"There is no user {email}.", error="user_not_found")
        name = email_of(client) or email
        previous = self.aliases.get(name)
        await self.aliases.update({name: alias})
        said = f"set to {alias!r}" if alias else "cleared"
        await self.d.event(
            "alias_updated",
            f"Alias of {name} {said}.",
            service="users",
            data={"email": name, "alias": alias or None, "previous": previous},
        )
        return {"ok": True}

    @staticmethod
    def _future() -> asyncio.Future[dict[str, Any]]:
        return asyncio.get_running_loop().create_future()

    async def _submit(self, change: Change) -> dict[str, Any]:
        self._pending.append(change)
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.create_task(self._flush(), name="users-flush")
        return await change.done

    async def aclose(self) -> None:
        """Wait until every queued change is written and applied."""
        if self._flusher is not None:
            await self._flusher

    async def _flush(self) -> None:
        async with self.repo.lock:
            while self._pending:
                batch, self._pending = self._pending, []
                try:
                    await self._commit([c for c in batch if not c.done.done()])
                except Exception as exc:
                    if not isinstance(exc, DomainError):
                        log.exception("a batch of user changes failed")
                    for change in batch:
                        change.fail(exc)
                except BaseException:
                    for change in batch + self._pending:
                        change.done.cancel()
                    self._pending = []
                    raise

    async def _commit(self, batch: list[Change]) -> None:
        """Write one batch and apply it to the running Xray; settle every change's future."""
        tag = self._tag()
        for attempt in range(WRITE_TRIES):
            base = await self.repo.current()
            doc, applied = base.doc, []
            for change in batch:
                try:
                    doc = change.apply(doc, tag)
                    applied.append(change)
                except DomainError as exc:
                    change.fail(exc)
            batch = applied
            if not batch:
                return
            try:
                backup = await self.repo.write(base, doc, _reason(batch))
                break
            except ConfigChanged:
                if attempt == WRITE_TRIES - 1:
                    raise
            except Unprocessable as exc:
                if exc.error != "xray_config_invalid" or len(batch) == 1:
                    raise
                for change in batch:  # Xray refused the batch: find out whose change it was
                    await self._commit([change])
                return
        live = await self._apply_live(base.doc, doc, batch, tag)
        await self.aliases.update({c.email: c.alias for c in batch if c.kind in ("add", "delete")})
        await asyncio.gather(*(self._record(c, live, backup.name, base.had_comments) for c in batch))
        for change in batch:
            if not change.done.done():
                change.done.set_result(self._result(change, live))

    def _result(self, change: Change, live: Live) -> dict[str, Any]:
        if change.kind == "add":
            assert change.client is not None
            user = {**self._user(change.client), "alias": change.alias or None}
            return {"ok": True, "user": user, "uuid": change.client["id"], "applied": live.applied}
        if change.kind == "delete":
            return {"ok": True, "message": "user_deleted", "applied": live.applied}
        assert change.client is not None
        return {"ok": True, "new_uuid": change.client["id"], "applied": live.applied}

    async def _record(self, change: Change, live: Live, backup: str, had_comments: bool) -> None:
        """The change's event: the email, never the full UUID."""
        what = {"add": "added", "delete": "deleted", "kick": "kicked (given a new UUID)"}[change.kind]
        parts = [f"User {change.email} {what}"]
        severity = "info"
        if live.applied == "restart":
            parts.append(f"applied by restarting Xray because {live.why}")
            severity = "warning"
        elif live.revoked_by_restart:
            parts.append("Xray was restarted to cut their open connections")
        elif change.kind != "add":
            parts.append(
                "new connections are refused; open ones last until they close (xray.revoke is api_only)"
                if self.d.settings.get("xray", "revoke") == "api_only"
                else "applied through Xray's API"
            )
        else:
            parts.append("applied through Xray's API")
        if had_comments:
            parts.append(
                f"config.json had comments, which this write dropped (the original is backup {backup})"
            )
        data: dict[str, Any] = {"email": change.email, "applied": live.applied, "backup": backup}
        if change.client is not None:
            data["uuid_prefix"] = change.client["id"][:8]
            data["flow"] = change.client.get("flow", "")
        if live.why:
            data["restart_reason"] = live.why
        await self.d.event(
            EVENT[change.kind], "; ".join(parts) + ".", severity=severity, service="users", data=data
        )

    # --- the running Xray ---------------------------------------------------------------

    async def _apply_live(self, before: Doc, after: Doc, batch: list[Change], tag: str | None) -> Live:
        """Bring the running Xray from `before` to `after` for the emails the batch touched."""
        new = find_managed(after, tag)
        old_clients, new_clients = find_managed(before, tag).by_email_map(), new.by_email_map()
        removes: list[str] = []
        adds: list[dict[str, Any]] = []
        revoke = False
        for email in dict.fromkeys(c.email.lower() for c in batch):
            was, now = old_clients.get(email), new_clients.get(email)
            if was is not None and now is not None and _same(was, now):
                continue
            if was is not None:
                removes.append(email_of(was) or email)
                revoke = revoke or now is None or was.get("id") != now.get("id")
            if now is not None:
                adds.append(now)
        blocker = live_apply_blocker(after, new)
        if blocker is not None:
            await self.restarter.restart("no_live_api")
            return Live("restart", blocker)
        failure = await self._through_api(new, removes, adds)
        if failure is not None:
            await self.restarter.restart("api_unreachable")
            return Live("restart", failure)
        if revoke and self.d.settings.get("xray", "revoke") == "restart":
            await self.restarter.restart("revoke")
            return Live("api", revoked_by_restart=True)
        return Live("api")

    async def _through_api(
        self, managed: Managed, removes: list[str], adds: list[dict[str, Any]]
    ) -> str | None:
        """rmu then adu; None when Xray took every change, else why not."""
        tag = managed.tag
        assert tag is not None  # live_apply_blocker checked it
        if removes:
            out = await self.commands.remove_users(tag, removes)
            if out.unreachable or out.errors:
                return f"`xray api rmu` failed: {out.reason()}"
        if not adds:
            return None
        out = await self.commands.add_users(managed.inbound, adds)
        if out.unreachable or out.errors or out.count is None:
            return f"`xray api adu` failed: {out.reason()}"
        stale = [c for c in adds if (email_of(c) or "").lower() in out.exists]
        if out.count != len(adds) - len(stale):
            return f"`xray api adu` added {out.count} of {len(adds)} users"
        if not stale:
            return None
        # The running Xray already has these emails (added by hand, or with an old id): replace them.
        return await self._replace(tag, managed.inbound, stale)

    async def _replace(self, tag: str, inbound: dict[str, Any], stale: list[dict[str, Any]]) -> str | None:
        emails = [email_of(c) or "" for c in stale]
        out = await self.commands.remove_users(tag, emails)
        if out.unreachable or out.errors:
            return f"`xray api rmu` failed: {out.reason()}"
        out = await self.commands.add_users(inbound, stale)
        if out.unreachable or out.errors or out.exists or out.count != len(stale):
            return f"`xray api adu` failed: {out.reason()}"
        return None


def _same(a: dict[str, Any], b: dict[str, Any]) -> bool:
    return (a.get("id"), a.get("flow") or "") == (b.get("id"), b.get("flow") or "")
