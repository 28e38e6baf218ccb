"""Self-tests: list, check and run the pytest files of the daemon config's tests folder.

A run is `python -m pytest` with the daemon's own interpreter, in the tests folder, as
`nobody` when xrayd is root, within a time limit, one run at a time. Only files this module
lists (or node ids inside them) ever reach pytest, always as absolute paths, so a request
can neither name another file nor slip in an option. Results come from pytest's JUnit XML
report, parsed, never from its console output. The report is written into a private temp
folder owned by the test user, and read back without following links, FIFOs or a DTD.
"""

from __future__ import annotations

import asyncio
import errno
import os
import pwd
import re
import stat
import tempfile
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable
from pathlib import Path
from typing import Any

from xrayd import proc
from xrayd.errors import Conflict, Internal, InvalidParams, NotFound, Timeout, Unprocessable

RUN_AS = "nobody"
SKIP_DIRS = frozenset({"__pycache__", "node_modules", "venv", "build", "dist"})
MAX_FILES = 10_000
MAX_REPORT = 32 * 1024 * 1024  # bytes of JUnit XML read back
MAX_MESSAGE = 1000  # characters of a failure message in the answer
MAX_DETAILS = 20_000  # characters of a failure's traceback (verbose)
MAX_OUTPUT = 64 * 1024  # characters of pytest's console output (verbose)
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_OUTCOMES = {"failure": "failed", "error": "error", "skipped": "skipped"}

User = tuple[int, int]


def unprivileged_user() -> User | None:
    """(uid, gid) to run tests as: `nobody` when xrayd is root, None (itself) otherwise."""
    if os.geteuid() != 0:
        return None
    try:
        entry = pwd.getpwnam(RUN_AS)
    except KeyError:
        raise Internal(f"There is no user {RUN_AS} to run the tests as.", error="tests_cannot_run") from None
    return entry.pw_uid, entry.pw_gid


def is_test_file(name: str) -> bool:
    """pytest's default `python_files`: test_*.py and *_test.py."""
    return name.endswith(".py") and (name.startswith("test_") or name.endswith("_test.py"))


class SelfTests:
    """The tests folder and its runs; `timeout` is read at each run (a setting)."""

    def __init__(
        self,
        folder: Path,
        *,
        python: str,
        timeout: Callable[[], float],
        run_as: Callable[[], User | None] = unprivileged_user,
        check_timeout: float = 10.0,
    ) -> None:
        self.folder = folder
        self.python = python
        self.timeout = timeout
        self.run_as = run_as
        self.check_timeout = check_timeout
        self._running = asyncio.Lock()

    def files(self) -> list[str]:
        """Test files as paths relative to the folder, sorted; links are never followed."""
        found: list[str] = []
        for root, dirs, names in os.walk(self.folder):
            dirs[:] = [
                d
                for d in dirs
                if not d.startswith(".") and d not in SKIP_DIRS and not os.path.islink(os.path.join(root, d))
            ]
            for name in names:
                full = os.path.join(root, name)
                if is_test_file(name) and _regular_file(full):
                    found.append(Path(full).relative_to(self.folder).as_posix())
            if len(found) >= MAX_FILES:
                break
        return sorted(found)[:MAX_FILES]

    async def status(self) -> dict[str, Any]:
        """Whether tests can run: pytest importable by the test user, the folder, the count."""
        files = await asyncio.to_thread(self.files)
        user = self.run_as()
        try:
            done = await proc.run(
                [self.python, "-c", "import pytest; print(pytest.__version__)"],
                timeout=self.check_timeout,
                env=self._env(tempfile.gettempdir()),
                cwd="/",
                drop_to=user,
            )
            version = done.stdout.strip() if done.ok else None
        except (OSError, Timeout):  # cannot start, or hangs: either way tests cannot run
            version = None
        return {
            "pytest_available": version is not None,
            "pytest_version": version,
            "tests_directory_exists": self.folder.is_dir(),
            "test_files_count": len(files),
            "run_as": _user_name(user),
        }

    async def run(self, path: str | None = None, *, verbose: bool = False) -> dict[str, Any]:
        """Run every listed file, or the one file or node id `path` names."""
        if self._running.locked():
            raise Conflict("A test run is already in progress; try when it ends.", error="tests_running")
        async with self._running:
            files = await asyncio.to_thread(self.files)
            targets = self._targets(path, files)
            return await self._run(targets, files, verbose)

    def _targets(self, path: str | None, files: list[str]) -> list[str]:
        if path is None:
            if not files:
                raise NotFound(f"There are no test files in {self.folder}.", error="no_tests")
            return [str(self.folder / f) for f in files]
        if path.startswith("-"):
            raise InvalidParams("path", "path must be a test file or a node id, not a pytest option.")
        file, sep, node = path.partition("::")
        if file not in files:
            raise NotFound(f"{file} is not one of the listed test files.", error="test_not_found")
        if not sep:
            return [str(self.folder / file)]
        names, bracket, params = node.partition("[")  # parameter ids may hold "::" too
        if not all(_NAME.fullmatch(n) for n in names.split("::")) or (bracket and not params.endswith("]")):
            raise InvalidParams("path", "path must be FILE or FILE::[Class::]test_name[params].")
        return [f"{self.folder / file}::{node}"]

    def _env(self, home: str) -> dict[str, str]:
        """A small, fixed environment: nothing of xrayd's own (no PYTEST_ADDOPTS, no PYTHONPATH)."""
        return {
            "PATH": "/usr/local/bin:/usr/bin:/bin",
            "HOME": home,
            "TMPDIR": home,
            "LANG": "C.UTF-8",
            "PYTHONDONTWRITEBYTECODE": "1",
        }

    async def _run(self, targets: list[str], files: list[str], verbose: bool) -> dict[str, Any]:
        user = self.run_as()
        limit = float(self.timeout())
        with tempfile.TemporaryDirectory(prefix="xrayd-tests-") as tmp:
            if user is not None:
                os.chown(tmp, *user)  # mkdtemp made it 0700: only that user and root get in
            report = Path(tmp) / "report.xml"
            argv = [
                self.python,
                "-m",
                "pytest",
                "-p",
                "no:cacheprovider",
                "--rootdir",
                str(self.folder),
                f"--junitxml={report}",
                "--color=no",
                "--continue-on-collection-errors",
                "-q",
                *targets,
            ]
            started = time.monotonic()
            try:
                done = await proc.run(argv, timeout=limit, env=self._env(tmp), cwd=self.folder, drop_to=user)
            except OSError as exc:
                who = f" as {_user_name(user)}" if user else ""
                raise Internal(
                    f"Cannot start pytest{who}: {exc.strerror}.", error="tests_cannot_run"
                ) from None
            except Timeout:
                raise Timeout(
                    f"The tests did not finish within {limit:g} seconds and were stopped.",
                    error="tests_timeout",
                ) from None
            elapsed = time.monotonic() - started
            xml = read_report(report)
        if xml is None:
            raise Unprocessable(
                f"pytest could not run the tests (exit code {done.returncode}): {done.reason()}",
                error="tests_not_run",
                exit_code=done.returncode,
            )
        tests, duration = parse_report(xml, files, verbose=verbose)
        counts = {o: sum(t["outcome"] == o for t in tests) for o in ("passed", "failed", "skipped", "error")}
        result: dict[str, Any] = {
            "success": done.returncode == 0,
            "exit_code": done.returncode,
            "summary": {
                "passed": counts["passed"],
                "failed": counts["failed"],
                "skipped": counts["skipped"],
                "errors": counts["error"],
                "total": len(tests),
                "duration": round(duration if duration is not None else elapsed, 3),
            },
            "tests": tests,
            "run_as": _user_name(user),
        }
        if verbose:
            result["output"] = (done.stdout + done.stderr)[-MAX_OUTPUT:]
        return result


def _regular_file(path: str) -> bool:
    try:
        return stat.S_ISREG(os.lstat(path).st_mode)
    except FileNotFoundError:
        return False


def _user_name(user: User | None) -> str | None:
    if user is None:
        return None
    try:
        return pwd.getpwuid(user[0]).pw_name
    except KeyError:
        return str(user[0])


def read_report(path: Path) -> bytes | None:
    """The report the test user wrote, or None when pytest wrote none. A link, a FIFO or a
    file over MAX_REPORT planted in its place is refused, never followed or waited on."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        return None
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise Internal("The test report is a link; it was not read.", error="bad_test_report") from None
        raise
    with os.fdopen(fd, "rb") as f:
        if not stat.S_ISREG(os.fstat(f.fileno()).st_mode):
            raise Internal("The test report is not a regular file.", error="bad_test_report")
        data = f.read(MAX_REPORT + 1)
    if len(data) > MAX_REPORT:
        raise Internal("The test report is too large to read.", error="bad_test_report")
    return data


def parse_report(
    xml: bytes, files: list[str], *, verbose: bool = False
) -> tuple[list[dict[str, Any]], float | None]:
    """pytest's JUnit XML → (tests with their node ids, the run's duration in seconds)."""
    try:
        text = xml.decode("utf-8")  # what pytest writes; decoding here means no encoding tricks
    except UnicodeDecodeError:
        raise Internal("The test report is not UTF-8.", error="bad_test_report") from None
    if "<!DOCTYPE" in text or "<!ENTITY" in text:  # pytest writes neither; no entity tricks
        raise Internal("The test report holds a DTD; it was not parsed.", error="bad_test_report")
    try:
        root = ET.fromstring(text)  # noqa: S314 - no DTD gets here (refused above), size is capped
    except ET.ParseError:
        raise Internal("The test report is not valid XML.", error="bad_test_report") from None
    suites = [root] if root.tag == "testsuite" else root.findall("testsuite")
    times = [float(s.get("time", "nan")) for s in suites]
    duration = sum(times) if times and all(t == t for t in times) else None
    modules = {f[: -len(".py")].replace("/", "."): f for f in files}
    tests = []
    for case in root.iter("testcase"):
        marks = {child.tag: child for child in case if child.tag in _OUTCOMES}
        kind = next((k for k in ("failure", "error", "skipped") if k in marks), None)
        entry: dict[str, Any] = {
            "nodeid": node_id(case.get("classname", ""), case.get("name", ""), modules),
            "outcome": _OUTCOMES[kind] if kind else "passed",
            "duration": round(float(case.get("time", "0") or 0), 3),
            "message": None,
        }
        if kind:
            mark = marks[kind]
            entry["message"] = (mark.get("message") or "")[:MAX_MESSAGE] or None
            if verbose and mark.text:
                entry["details"] = mark.text[:MAX_DETAILS]
        tests.append(entry)
    return tests, duration


def node_id(classname: str, name: str, modules: dict[str, str]) -> str:
    """pytest's node id back from JUnit's dotted classname: the longest prefix that is one of
    our files' module paths is the file, the rest are classes. A file that failed to collect
    has an empty classname and the module path as its name."""
    parts = classname.split(".") if classname else []
    for i in range(len(parts), 0, -1):
        module = ".".join(parts[:i])
        if module in modules:
            return "::".join([modules[module], *parts[i:], name])
    if not parts and name in modules:
        return modules[name]
    return f"{classname}::{name}" if classname else name  # not one of ours: as JUnit says
