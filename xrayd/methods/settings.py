"""settings.*: read and change operator settings (schema in xrayd.settings)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from xrayd.daemon import Daemon


def register(d: Daemon) -> None:
    async def get() -> dict[str, Any]:
        return {"settings": d.settings.snapshot()}

    async def update(**patch: Any) -> dict[str, Any]:
        values, changed = await d.settings.update(patch)
        if changed:
            await d.event(
                "settings_updated", f"Settings changed: {', '.join(changed)}", data={"changed": changed}
            )
        return {"ok": True, "settings": values, "changed": changed}

    d.register("settings.get", get)
    d.register("settings.update", update)
