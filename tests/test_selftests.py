"""tests.*: listing, checking and running the self-tests folder with real pytest processes."""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import sys
import sysconfig
import tempfile
import textwrap
from collections.abc import AsyncIterator, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from conftest import as_other_user, start_daemon
from test_proc import gone_soon

from client.aio import XraydClient
from client.protocol import RpcError
from xrayd import selftest
from xrayd.daemon import Daemon
from xrayd.errors import Conflict, Internal, Timeout
from xrayd.sandbox.builder import Sandbox
from xrayd.selftest import SelfTests, node_id, parse_report, read_report

PASSING = """
import pytest

def test_ok():
    assert True

def test_also_ok():
    assert 2 + 2 == 4

@pytest.mark.skip(reason="not on this server")
def test_skipped():
    pass
"""

FAILING = """
import pytest

def test_fails():
    assert 1 == 2, "one is not two"

class TestGroup:
    @pytest.mark.parametrize("value", ["a::b", "c"])
    def test_param(self, value):
        assert value != "c"
"""


def _write(folder: Path, files: dict[str, str]) -> None:
    for rel, text in files.items():
        path = folder / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))


@pytest.fixture
def outside(short_tmp: Path) -> Path:
    """A folder beside the sandbox holding a test file that must never be listed or run."""
    folder = short_tmp / "outside"
    folder.mkdir()
    marker = folder / "ran"
    (folder / "test_evil.py").write_text(f"def test_evil():\n    open({str(marker)!r}, 'w').close()\n")
    return folder


@pytest.fixture
def tests_dir(sandbox: Sandbox, outside: Path) -> Path:
    """The sandbox's tests folder with passing, failing, hidden, helper and linked files."""
    folder = sandbox.config.tests_dir
    _write(
        folder,
        {
            "test_pass.py": PASSING,
            "sub/test_fail.py": FAILING,
            "sub/helpers.py": "X = 1\n",
            "conftest.py": "",
            ".hidden/test_hidden.py": "def test_h(): pass\n",
            "__pycache__/test_cached.py": "def test_c(): pass\n",
        },
    )
    (folder / "test_link.py").symlink_to(outside / "test_evil.py")
    (folder / "linked_dir").symlink_to(outside, target_is_directory=True)
    return folder


@contextlib.asynccontextmanager
async def serving(d: Daemon) -> AsyncIterator[XraydClient]:
    task = await start_daemon(d)
    try:
        async with XraydClient(str(d.config.socket), call_timeout=300) as client:
            yield client
    finally:
        d.request_stop()
        await task


@pytest.fixture
async def trpc(
    tests_dir: Path, sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[XraydClient]:
    """A daemon that runs tests as itself, as xrayd does when it is not root: this machine's
    interpreter sits where `nobody` cannot read it (the drop itself is tested below)."""
    monkeypatch.setattr(selftest, "unprivileged_user", lambda: None)
    async with serving(Daemon(sandbox.config)) as client:
        yield client


async def _error(rpc: XraydClient, method: str, params: dict[str, Any]) -> RpcError:
    with pytest.raises(RpcError) as caught:
        await rpc.call(method, params)
    return caught.value


# --- tests.list and tests.status -------------------------------------------------------------


async def test_list_finds_test_files_and_nothing_else(trpc: XraydClient) -> None:
    """Only test_*.py / *_test.py regular files, recursively; no links, hidden or cache folders."""
    body = await trpc.call("tests.list")
    assert body == {
        "test_files": [
            {"name": "test_fail.py", "path": "sub/test_fail.py"},
            {"name": "test_pass.py", "path": "test_pass.py"},
        ]
    }


async def test_status_reports_pytest_folder_and_count(trpc: XraydClient) -> None:
    """status says pytest imports, the folder exists and how many files it lists."""
    body = await trpc.call("tests.status")
    assert body["pytest_available"] is True and body["pytest_version"] == pytest.__version__
    assert body["tests_directory_exists"] is True and body["test_files_count"] == 2
    assert body["run_as"] is None


async def test_missing_folder_lists_nothing(sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch) -> None:
    """Without a tests folder: an empty list, a status that says so, and a 404 for a run."""
    monkeypatch.setattr(selftest, "unprivileged_user", lambda: None)
    config = replace(sandbox.config, tests_dir=sandbox.root / "no-tests-here")
    async with serving(Daemon(config)) as rpc:
        assert await rpc.call("tests.list") == {"test_files": []}
        status = await rpc.call("tests.status")
        err = await _error(rpc, "tests.run", {})
    assert status["tests_directory_exists"] is False and status["test_files_count"] == 0
    assert err.code == 404 and err.error == "no_tests"


async def test_status_when_pytest_cannot_start(tmp_path: Path) -> None:
    """An interpreter that cannot be run makes pytest unavailable, and a run a clear 500."""
    _write(tmp_path, {"test_x.py": "def test_x(): pass\n"})
    tests = SelfTests(tmp_path, python=str(tmp_path / "no-python"), timeout=lambda: 60, run_as=lambda: None)
    status = await tests.status()
    assert status["pytest_available"] is False and status["pytest_version"] is None
    with pytest.raises(Internal) as caught:
        await tests.run()
    assert caught.value.error == "tests_cannot_run"


# --- tests.run -------------------------------------------------------------------------------


async def test_run_all_reports_each_test(trpc: XraydClient, outside: Path) -> None:
    """A full run: summary counts, node ids, outcomes and messages, from the JUnit report."""
    body = await trpc.call("tests.run")
    assert body["success"] is False and body["exit_code"] == 1
    summary = body["summary"]
    assert {k: summary[k] for k in ("passed", "failed", "skipped", "errors", "total")} == {
        "passed": 3,
        "failed": 2,
        "skipped": 1,
        "errors": 0,
        "total": 6,
    }
    assert summary["duration"] >= 0
    by_id = {t["nodeid"]: t for t in body["tests"]}
    assert set(by_id) == {
        "sub/test_fail.py::test_fails",
        "sub/test_fail.py::TestGroup::test_param[a::b]",
        "sub/test_fail.py::TestGroup::test_param[c]",
        "test_pass.py::test_ok",
        "test_pass.py::test_also_ok",
        "test_pass.py::test_skipped",
    }
    assert by_id["sub/test_fail.py::test_fails"]["outcome"] == "failed"
    assert "one is not two" in by_id["sub/test_fail.py::test_fails"]["message"]
    skipped = by_id["test_pass.py::test_skipped"]
    assert (skipped["outcome"], skipped["message"]) == ("skipped", "not on this server")
    assert all(t["duration"] >= 0 for t in body["tests"])
    assert by_id["test_pass.py::test_ok"]["message"] is None
    assert "output" not in body and "details" not in by_id["sub/test_fail.py::test_fails"]
    assert not (outside / "ran").exists()
    [event] = (await trpc.call("events.list", {"type": "tests_run"}))["events"]
    assert event["severity"] == "warning" and event["data"]["summary"]["failed"] == 2


async def test_run_one_file(trpc: XraydClient) -> None:
    """A listed file as path runs that file only; all passing means success."""
    body = await trpc.call("tests.run", {"path": "test_pass.py"})
    assert body["success"] is True and body["exit_code"] == 0
    assert {t["nodeid"] for t in body["tests"]} == {
        "test_pass.py::test_ok",
        "test_pass.py::test_also_ok",
        "test_pass.py::test_skipped",
    }


async def test_run_one_node_id_with_odd_parameters(trpc: XraydClient) -> None:
    """A node id inside a listed file runs just that test, `::` in its parameters included."""
    body = await trpc.call("tests.run", {"path": "sub/test_fail.py::TestGroup::test_param[a::b]"})
    assert [(t["nodeid"], t["outcome"]) for t in body["tests"]] == [
        ("sub/test_fail.py::TestGroup::test_param[a::b]", "passed")
    ]
    assert body["success"] is True


async def test_verbose_adds_output_and_tracebacks(trpc: XraydClient) -> None:
    """verbose=true adds pytest's console output and each failure's traceback."""
    body = await trpc.call("tests.run", {"path": "sub/test_fail.py::test_fails", "verbose": True})
    [test] = body["tests"]
    assert "assert 1 == 2" in test["details"] and "def test_fails" in test["details"]
    assert "1 failed" in body["output"]


@pytest.mark.parametrize(
    ("path", "code"),
    [
        ("../../etc/passwd", 404),
        ("/etc/passwd", 404),
        ("test_pass.py/../../x", 404),
        ("./test_pass.py", 404),
        ("sub\\test_fail.py", 404),
        ("%2e%2e/%2e%2e/etc/passwd", 404),
        ("..%2ftest_pass.py", 404),
        ("TEST_PASS.py", 404),
        (" test_pass.py", 404),
        ("test_pass.py ", 404),
        ("test_link.py", 404),
        ("linked_dir/test_evil.py", 404),
        ("sub/helpers.py", 404),
        ("conftest.py", 404),
        (".hidden/test_hidden.py", 404),
        ("sub", 404),
        ("-p", 400),
        ("--help", 400),
        ("-pno:junitxml", 400),
        ("--junitxml=/etc/cron.d/x", 400),
        ("-c/etc/passwd", 400),
        ("test_pass.py --collect-only", 404),
        ("test_pass.py::", 400),
        ("test_pass.py::-k", 400),
        ("test_pass.py::test_ok; rm -rf /", 400),
        ("test_pass.py::test_ok[", 400),
        ("test_pass.py::../../x", 400),
        ("test_pass.py::test ok", 400),
        ("test_pass.py\x00", 400),
        ("test_pass.py\n--help", 400),
        ("", 400),
        ("x" * 513, 400),
        (5, 400),
        (["test_pass.py"], 400),
    ],
)
async def test_hostile_paths_are_refused_and_nothing_runs(
    trpc: XraydClient, outside: Path, path: Any, code: int
) -> None:
    """Anything but a listed file or a node id inside one is a 400 or 404, and pytest never starts."""
    err = await _error(trpc, "tests.run", {"path": path})
    assert (400 if err.code == -32602 else err.code) == code, err.message
    assert not (outside / "ran").exists()
    assert (await trpc.call("events.list", {"type": "tests_run"}))["events"] == []


async def test_verbose_must_be_a_boolean(trpc: XraydClient) -> None:
    """verbose is checked in xrayd too: "yes" is a 400 naming it."""
    err = await _error(trpc, "tests.run", {"verbose": "yes"})
    assert err.code == -32602 and err.data["param"] == "verbose"


async def test_a_second_run_while_one_runs_is_409(tmp_path: Path) -> None:
    """While a run is going, another is a 409 `tests_running`; the first still completes."""
    gate = tmp_path / "gate"
    gate.mkdir()
    _write(
        tmp_path / "t",
        {
            "test_gate.py": f"""
            import pathlib, time
            def test_waits_for_release():
                gate = pathlib.Path({str(gate)!r})
                (gate / "started").touch()
                while not (gate / "release").exists():
                    time.sleep(0.01)
            """
        },
    )
    tests = SelfTests(tmp_path / "t", python=sys.executable, timeout=lambda: 300, run_as=lambda: None)
    first = asyncio.create_task(tests.run())
    while not (gate / "started").exists():
        await asyncio.sleep(0.01)
        assert not first.done(), first
    with pytest.raises(Conflict) as caught:
        await tests.run("test_gate.py")
    assert caught.value.error == "tests_running" and caught.value.CODE == 409
    (gate / "release").touch()
    result = await first
    assert result["success"] is True and result["summary"]["passed"] == 1


async def test_concurrent_runs_over_rpc(trpc: XraydClient) -> None:
    """Several runs sent at once: one runs, every other one is a 409, and none is lost silently."""
    answers = await asyncio.gather(
        *(trpc.call("tests.run", {"path": "test_pass.py"}) for _ in range(4)), return_exceptions=True
    )
    ran = [a for a in answers if isinstance(a, dict)]
    refused = [a for a in answers if isinstance(a, RpcError)]
    assert len(ran) == 1 and len(refused) == 3
    assert all(e.code == 409 and e.error == "tests_running" for e in refused)


async def test_time_limit_stops_the_run_and_its_children(tmp_path: Path) -> None:
    """A run over its time limit is stopped with everything it started: a 504 `tests_timeout`."""
    pid_file = tmp_path / "child.pid"
    _write(
        tmp_path / "t",
        {
            "test_hangs.py": f"""
            import subprocess, time
            def test_hangs():
                child = subprocess.Popen(["sleep", "300"])
                open({str(pid_file)!r}, "w").write(str(child.pid))
                time.sleep(300)
            """
        },
    )
    tests = SelfTests(tmp_path / "t", python=sys.executable, timeout=lambda: 3, run_as=lambda: None)
    with pytest.raises(Timeout) as caught:
        await tests.run()
    assert caught.value.error == "tests_timeout"
    pid = int(pid_file.read_text())
    assert gone_soon(pid)
    assert not tests._running.locked()  # the next run may start


async def test_a_broken_conftest_is_422_with_the_reason(tmp_path: Path) -> None:
    """When pytest cannot even start the session (no report), the answer says why."""
    _write(tmp_path, {"conftest.py": "import no_such_module_xyz\n", "test_a.py": "def test_a(): pass\n"})
    tests = SelfTests(tmp_path, python=sys.executable, timeout=lambda: 60, run_as=lambda: None)
    with pytest.raises(Exception) as caught:
        await tests.run()
    assert caught.value.CODE == 422 and caught.value.error == "tests_not_run"  # type: ignore[attr-defined]
    assert "no_such_module_xyz" in caught.value.message  # type: ignore[attr-defined]


@pytest.mark.slow
async def test_time_limit_comes_from_settings(trpc: XraydClient, tests_dir: Path) -> None:
    """tests.timeout_seconds is read at each run: a change applies to the next run at once."""
    _write(tests_dir, {"test_slow.py": "import time\ndef test_slow():\n    time.sleep(300)\n"})
    await trpc.call("settings.update", {"tests": {"timeout_seconds": 10}})
    err = await _error(trpc, "tests.run", {"path": "test_slow.py"})
    assert err.code == 504 and err.error == "tests_timeout" and "10 seconds" in err.message
    [event] = (await trpc.call("events.list", {"type": "tests_timeout"}))["events"]
    assert event["data"]["path"] == "test_slow.py"


# --- the privilege drop ----------------------------------------------------------------------


@pytest.fixture
def nobody_python() -> Iterator[str]:
    """A Python that `nobody` may run, importing this venv's pytest: a venv of the system
    interpreter in a world-readable folder, with a .pth line pointing at our site-packages."""
    base = "/usr/bin/python3"
    if as_other_user() is None or not os.access(base, os.X_OK):
        pytest.skip("needs root, a `nobody` user and /usr/bin/python3")
    folder = Path(tempfile.mkdtemp(prefix="xr-py-", dir="/tmp"))
    try:
        folder.chmod(0o755)
        subprocess.run([base, "-m", "venv", "--without-pip", str(folder / "venv")], check=True, timeout=120)
        python = folder / "venv" / "bin" / "python"
        site = subprocess.run(
            [python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
            check=True,
            capture_output=True,
            text=True,
            timeout=60,
        ).stdout.strip()
        Path(site, "ours.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
        yield str(python)
    finally:
        subprocess.run(["rm", "-rf", str(folder)], check=False)


async def test_as_root_tests_run_as_nobody(nobody_python: str) -> None:
    """When xrayd is root a run is `nobody` with no supplementary groups, and its report is read."""
    uid, gid = as_other_user()  # type: ignore[misc]
    folder = Path(tempfile.mkdtemp(prefix="xr-t-", dir="/tmp"))
    try:
        folder.chmod(0o755)
        _write(
            folder,
            {
                "test_who.py": f"""
                import os
                def test_who():
                    assert (os.geteuid(), os.getegid()) == ({uid}, {gid})
                    assert set(os.getgroups()) <= {{{gid}}}
                    assert not os.access("/root", os.R_OK)
                """
            },
        )
        tests = SelfTests(folder, python=nobody_python, timeout=lambda: 120)  # run_as: the real one
        status = await tests.status()
        result = await tests.run()
    finally:
        subprocess.run(["rm", "-rf", str(folder)], check=False)
    assert status["run_as"] == "nobody" and status["pytest_available"] is True
    assert result["run_as"] == "nobody"
    assert [(t["nodeid"], t["outcome"]) for t in result["tests"]] == [("test_who.py::test_who", "passed")]


# --- the report, read and parsed -------------------------------------------------------------


def test_report_that_is_a_link_or_a_fifo_is_refused(tmp_path: Path) -> None:
    """A link planted in place of the report is not followed; a FIFO is not waited on."""
    secret = tmp_path / "secret"
    secret.write_text("root:x:0:0")
    (tmp_path / "link.xml").symlink_to(secret)
    os.mkfifo(tmp_path / "fifo.xml")
    for name in ("link.xml", "fifo.xml"):
        with pytest.raises(Internal) as caught:
            read_report(tmp_path / name)
        assert caught.value.error == "bad_test_report"
    assert read_report(tmp_path / "absent.xml") is None


def test_oversized_report_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A report over the size cap is refused, not read whole."""
    monkeypatch.setattr(selftest, "MAX_REPORT", 1000)
    (tmp_path / "big.xml").write_bytes(b"<testsuites>" + b" " * 2000 + b"</testsuites>")
    with pytest.raises(Internal):
        read_report(tmp_path / "big.xml")


@pytest.mark.parametrize(
    "xml",
    [
        b'<?xml version="1.0"?><!DOCTYPE l [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;">]>'
        b"<testsuites><testsuite><testcase classname='x' name='&b;'/></testsuite></testsuites>",
        '<?xml version="1.0" encoding="UTF-16"?><!DOCTYPE x><testsuites/>'.encode("utf-16"),
        b"<testsuites><testsuite>",
        b"\xff\xfe<not utf-8",
    ],
)
def test_hostile_reports_are_refused(xml: bytes) -> None:
    """DTDs, entity expansion, other encodings and broken XML are refused, not parsed."""
    with pytest.raises(Internal) as caught:
        parse_report(xml, [])
    assert caught.value.error == "bad_test_report"


def test_node_ids_from_junit_classnames() -> None:
    """JUnit's dotted classname maps back to the file (folders with dots too) and classes."""
    modules = {"sub.dir.test_x": "sub.dir/test_x.py", "test_y": "test_y.py"}
    assert node_id("sub.dir.test_x.TestA.TestB", "test_z[1.5]", modules) == (
        "sub.dir/test_x.py::TestA::TestB::test_z[1.5]"
    )
    assert node_id("test_y", "test_q", modules) == "test_y.py::test_q"
    assert node_id("", "sub.dir.test_x", modules) == "sub.dir/test_x.py"  # a collection error
    assert node_id("elsewhere.mod", "test_w", modules) == "elsewhere.mod::test_w"
