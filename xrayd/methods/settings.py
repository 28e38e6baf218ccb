"""settings.*: read and change operator settings (schema and store in xrayd.settings)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from xrayd.daemon import Daemon


def register(d: Daemon) -> None:
    async def get() -> dict[str, Any]:
        return {"settings": d.settings.snapshot()}

    async def update(**patch: Any) -> dict[str, Any]:
        """A partial settings object; `{"settings": {...}}` as `settings.get` returns it is
        taken too, so a client may send back what it read."""
        if patch.keys() == {"settings"} and isinstance(patch["settings"], dict):
            patch = patch["settings"]
        values, changes = await d.settings.update(patch)
        if changes:
            await d.event(
                "settings_updated",
                f"Settings changed: {', '.join(changes)}",
                service="settings",
                data={"changed": list(changes), "changes": changes},
            )
        return {"ok": True, "settings": values, "changed": list(changes)}

    d.register("settings.get", get)
    d.register("settings.update", update)
