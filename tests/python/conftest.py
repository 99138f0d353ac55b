"""Shared fixtures of the Python tests: paths from CTest's environment and
a real `mycelium-link-peer` process that is always stopped and reaped."""

from __future__ import annotations

import os
import queue
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from typing import Iterator, List, Optional

import pytest

WAIT = 20.0  # seconds for any single wait on a peer


def env_path(name: str) -> str:
    value = os.environ.get(name)
    if not value:
        raise RuntimeError("%s is not set: run these tests through CTest (ctest -L python) "
                           "or set it to the build's path" % name)
    return value


def ctrl_c_child(argv: List[str]) -> List[str]:
    """Runs a Python child that prints "waiting", then blocks in a receive
    on its main thread; sends SIGINT once that thread sleeps (state S), and
    checks that the child reports "interrupted <CLOCK_MONOTONIC>" within
    100 ms and exits 0. Returns the child's later stdout lines. The child is
    killed if anything fails."""
    child = subprocess.Popen(argv, stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout is not None and child.stdout.readline().strip() == "waiting"
        deadline = time.monotonic() + 10
        while True:
            with open("/proc/%d/task/%d/stat" % (child.pid, child.pid)) as f:
                if f.read().rsplit(")", 1)[1].split()[0] == "S":
                    break
            assert time.monotonic() < deadline, "the child never blocked"
            os.sched_yield()
        sent = time.monotonic()
        child.send_signal(signal.SIGINT)
        line = child.stdout.readline().split()
        assert line[0] == "interrupted", line
        assert float(line[1]) - sent < 0.1  # CLOCK_MONOTONIC is shared by processes
        rest = [x.strip() for x in child.stdout]
        assert child.wait(timeout=10) == 0
        return rest
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()


def golden(name: str) -> bytes:
    """The bytes of tests/data/golden/NAME (hex, '#' comments)."""
    path = os.path.join(env_path("MYCELIUM_SOURCE_DIR"), "tests", "data", "golden", name)
    with open(path) as f:
        text = " ".join(line.split("#", 1)[0] for line in f)
    return bytes.fromhex(text)


class Peer:
    """A running mycelium-link-peer. Its stdout and stderr are read by
    threads, so that waits are bounded by timeouts, never by sleeping."""

    def __init__(self, args: List[str]) -> None:
        self.argv = [env_path("MYCELIUM_LINK_PEER")] + args
        self.proc = subprocess.Popen(self.argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE)
        self.out: "queue.Queue[Optional[str]]" = queue.Queue()
        self.err: "queue.Queue[Optional[str]]" = queue.Queue()
        self.stdout_lines: List[str] = []
        self.stderr_lines: List[str] = []
        for stream, q in ((self.proc.stdout, self.out), (self.proc.stderr, self.err)):
            threading.Thread(target=self._pump, args=(stream, q), daemon=True).start()
        self.port = 0

    @staticmethod
    def _pump(stream: object, q: "queue.Queue[Optional[str]]") -> None:
        for raw in iter(stream.readline, b""):  # type: ignore[attr-defined]
            q.put(raw.decode(errors="replace").rstrip("\n"))
        q.put(None)

    def _await(self, q: "queue.Queue[Optional[str]]", lines: List[str], needle: str, timeout: float) -> str:
        for line in lines:
            if needle in line:
                return line
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError("peer never printed %r within %.0f s; stderr:\n%s"
                                     % (needle, timeout, "\n".join(self.stderr_lines)))
            try:
                got = q.get(timeout=left)
            except queue.Empty:
                continue
            if got is None:
                raise AssertionError("peer exited (rc %s) before printing %r; stderr:\n%s"
                                     % (self.proc.poll(), needle, "\n".join(self.stderr_lines)))
            lines.append(got)
            if needle in got:
                return got

    def await_stdout(self, needle: str, timeout: float = WAIT) -> str:
        return self._await(self.out, self.stdout_lines, needle, timeout)

    def await_stderr(self, needle: str, timeout: float = WAIT) -> str:
        return self._await(self.err, self.stderr_lines, needle, timeout)

    def wait_ready(self) -> "Peer":
        line = self.await_stdout("ready port=")
        self.port = int(line.split()[1].split("=")[1])
        return self

    def wait_exit(self, timeout: float = WAIT) -> int:
        return self.proc.wait(timeout=timeout)

    def stop(self) -> Optional[int]:
        if self.proc.poll() is None:
            try:
                os.kill(self.proc.pid, signal.SIGCONT)  # in case a test stopped it
                assert self.proc.stdin is not None
                self.proc.stdin.close()  # the peer stops at EOF on stdin
                self.proc.wait(timeout=10)
            except (subprocess.TimeoutExpired, OSError):
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode


@pytest.fixture
def scratch() -> Iterator[str]:
    """A short directory for Unix socket paths (108-byte limit)."""
    d = tempfile.mkdtemp(prefix="myc-py-")
    try:
        yield d
    finally:
        shutil.rmtree(d, ignore_errors=True)


@pytest.fixture
def peers() -> Iterator[List[Peer]]:
    """Start peers with `peers.append(Peer([...]))`; all are stopped at the
    end of the test, passed or failed."""
    started: List[Peer] = []
    try:
        yield started
    finally:
        for p in started:
            p.stop()
