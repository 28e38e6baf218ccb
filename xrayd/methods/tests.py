"""tests.*: list, check and run the self-tests of the daemon config's `tests_dir`."""

from __future__ import annotations

import asyncio
import sys
from pathlib import PurePosixPath
from typing import TYPE_CHECKING, Any

from xrayd import selftest, validate
from xrayd.errors import Timeout

if TYPE_CHECKING:
    from xrayd.daemon import Daemon


def register(d: Daemon) -> None:
    tests = selftest.SelfTests(
        d.config.tests_dir,
        python=sys.executable,
        timeout=lambda: d.settings.get("tests", "timeout_seconds"),
        run_as=selftest.unprivileged_user,
        check_timeout=d.config.subprocess_timeout,
    )

    async def list_() -> dict[str, Any]:
        files = await asyncio.to_thread(tests.files)
        return {"test_files": [{"name": PurePosixPath(f).name, "path": f} for f in files]}

    async def status() -> dict[str, Any]:
        return await tests.status()

    async def run(path: str | None = None, verbose: bool = False) -> dict[str, Any]:
        if path is not None:
            validate.text("path", path, max_len=512)
        validate.boolean("verbose", verbose)
        try:
            result = await tests.run(path, verbose=verbose)
        except Timeout as exc:
            await d.event(
                "tests_timeout", exc.message, severity="warning", service="tests", data={"path": path}
            )
            raise
        summary = result["summary"]
        await d.event(
            "tests_run",
            f"Self-tests {'passed' if result['success'] else 'failed'}: {summary['passed']} passed, "
            f"{summary['failed']} failed, {summary['errors']} errors, {summary['skipped']} skipped",
            severity="info" if result["success"] else "warning",
            service="tests",
            data={"path": path, "exit_code": result["exit_code"], "summary": summary},
        )
        return result

    d.register("tests.list", list_)
    d.register("tests.status", status)
    d.register("tests.run", run)
