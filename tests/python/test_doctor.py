"""`python3 -m mycelium doctor` against real C++ peers: versions, the schema
digest, a peer that links, one that refuses (digest mismatch) and one that
is not there."""

from __future__ import annotations

import os
import subprocess
from typing import List

import link_test as lt
from conftest import Peer, env_path


def doctor(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([env_path("MYCELIUM_PYTHON"), "-m", "mycelium", *args], capture_output=True,
                          text=True, timeout=60)


def test_doctor_reports_versions_schema_and_reachability(peers: List[Peer], scratch: str) -> None:
    good = Peer(["--kind", "unix", "--listen", os.path.join(scratch, "good.sock"), "--name", "good-peer"])
    peers.append(good)
    other = Peer(["--kind", "tcp", "--listen", "127.0.0.1", "--port", "0", "--schema", "other"])
    peers.append(other)
    good.wait_ready()
    other.wait_ready()
    r = doctor("doctor", "--schema", "link_test", "--unix", os.path.join(scratch, "good.sock"),
               "--tcp", "127.0.0.1:%d" % other.port, "--unix", os.path.join(scratch, "missing.sock"))
    assert r.returncode == 1, r.stdout + r.stderr
    lines = r.stdout.splitlines()
    assert lines[0].startswith("mycelium 0.1.0 at ")
    assert lines[1].startswith("python 3.")
    assert lines[2].startswith("extension: _mycelium_core at ")
    assert lines[3] == "schema link_test: package mycelium.linktest, digest %s, 9 message types" % lt.SCHEMA_DIGEST.hex()
    assert lines[4].startswith("schema link_test: native module ") and "link_test_native" in lines[4]
    assert "carries the C++ structs" in lines[4]
    assert lines[5].startswith("unix:%s: ok: node 'good-peer' service 'link:conformance' (pid %d)"
                               % (os.path.join(scratch, "good.sock"), good.proc.pid))
    assert lines[6].startswith("tcp:127.0.0.1:%d: FAILED: refused" % other.port) and "schema digest mismatch" in lines[6]
    assert lines[7].startswith("unix:%s: FAILED: io_failed: cannot connect" % os.path.join(scratch, "missing.sock"))
    ok = doctor("doctor", "--schema", "link_test", "--unix", os.path.join(scratch, "good.sock"))
    assert ok.returncode == 0, ok.stdout + ok.stderr


def test_doctor_bad_arguments() -> None:
    assert doctor().returncode == 2
    r = doctor("doctor", "--unix", "/nowhere")
    assert r.returncode == 2 and "linking needs --schema MODULE" in r.stderr
    r = doctor("doctor", "--schema", "no_such_module_xyz")
    assert r.returncode == 1 and "cannot import schema module 'no_such_module_xyz'" in r.stderr
    r = doctor("doctor", "--schema", "link_test", "--tcp", "nocolon")
    assert r.returncode == 2 and "expected HOST:PORT" in r.stderr
