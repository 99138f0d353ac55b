"""Python services inside a C++ node (mycelium-py-host-node, built with
mycelium_add_node(... PYTHON)) and Python nodes under mycelium-run: the
in-process path both ways, the GIL test, supervision of a raising Python
handler, a digest mismatch refused at start, and Python <-> C++ across
processes over shared memory, Unix and TCP. Every deployment runs under
mycelium-run, which stops and reaps its processes whatever happens."""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
from typing import Iterator, Tuple

import pytest

from conftest import env_path


@pytest.fixture
def work() -> Iterator[str]:
    d = tempfile.mkdtemp(prefix="myc-emb-")
    try:
        yield d
    finally:
        subprocess.run(["rm", "-rf", d])


def run(work: str, toml: str, until: str, timeout: float = 60) -> Tuple[int, str]:
    path = os.path.join(work, "t.toml")
    with open(path, "w") as f:
        f.write('socket_dir = "%s/sock"\n' % work + toml)
    r = subprocess.run([env_path("MYCELIUM_RUN"), "run", path, "--binary",
                        env_path("MYCELIUM_PY_HOST_NODE"), "--until-exit", until,
                        "--ready-timeout", "20s"],
                       capture_output=True, text=True, timeout=timeout, cwd=work)
    return r.returncode, r.stdout + r.stderr


def test_python_and_cpp_services_in_one_process_both_ways(work: str) -> None:
    out = os.path.join(work, "trips.json")
    code, log = run(work, '''
[[nodes]]
name = "host"
services = ["echo", "reporter", "trips"]
[services.echo]
type = "cpp.echo"
[services.reporter]
type = "cpp.reporter"
[services.trips]
type = "python:py_services:RoundTrips"
params = { rounds = 300, chats = 7, out = "%s", nested = { a = [1, 2.5, "x"], b = true } }
''' % out, "trips")
    assert code == 0, log
    with open(out) as f:
        d = json.load(f)
    # Python publish -> C++ echo -> Python handler, 300 times, in order.
    assert d["pongs"] == list(range(1, 301))
    # Python request -> C++ responder, after 7 Python chats to it.
    assert (d["token"], d["chats"]) == (42, 7)
    assert d["params"]["nested"] == {"a": [1, 2.5, "x"], "b": True}
    assert (d["nodes"], d["node"]) == (1, "host")
    # Both ways through the bridge (structs, not TLV bytes; docs/python.md section 9).
    assert d["bridged"] == [True, True]


def test_a_computing_python_handler_leaves_cpp_latency_alone(work: str) -> None:
    out = os.path.join(work, "pinger.json")
    code, log = run(work, '''
[[nodes]]
name = "host"
services = ["echo", "pinger", "burner"]
[services.echo]
type = "cpp.echo"
[services.pinger]
type = "cpp.pinger"
params = { rounds = 3000, out = "%s" }
[services.burner]
type = "python:py_services:Burner"
params = { seconds = 1.0 }
''' % out, "pinger")
    assert code == 0, log
    with open(out) as f:
        d = json.load(f)
    # Phase 2 ran while Python computed with the GIL held.
    assert d["overlapped"], d
    # A GIL wait would cost the C++ round trip Python's switch interval
    # (5 ms) or the whole second; CPU sharing on a loaded 2-vCPU machine
    # costs at most tens of microseconds.
    assert d["busy_p99"] < max(4 * d["base_p99"], 1000.0), d


def test_a_raising_python_handler_is_restarted_by_the_cpp_supervisor(work: str) -> None:
    out = os.path.join(work, "seen.json")
    code, log = run(work, '''
[[nodes]]
name = "host"
services = ["failer", "kicker", "watcher"]
[services.failer]
type = "python:py_services:Failer"
max_restarts = 2
[services.kicker]
type = "python:py_services:Kicker"
params = { text = "fail" }
[services.watcher]
type = "python:py_services:Watcher"
params = { origin = "failer", seq = 2, out = "%s" }
''' % out, "watcher")
    assert code == 0, log
    with open(out) as f:
        seen = json.load(f)
    assert seen[-1] == ["failer", 2] and ["failer-stop", 1] in seen, seen
    assert "RuntimeError: failing on purpose" in log and "Traceback" in log, log
    assert "restarting service 'failer'" in log, log


def test_digest_mismatch_stops_the_start_with_both_digests(work: str) -> None:
    with open(os.path.join(work, "other_service.py"), "w") as f:
        f.write("import link_test_other as lto\nfrom mycelium import Service, on\n"
                "class Other(Service):\n    @on(lto.ping)\n    def ping(self, p): pass\n")
    code, log = run(work, '''
[[nodes]]
name = "host"
services = ["echo", "other"]
env = { PYTHONPATH = "%s:%s" }
[services.echo]
type = "cpp.echo"
[services.other]
type = "python:other_service:Other"
''' % (work, os.environ["PYTHONPATH"]), "echo")
    assert code != 0, log
    assert "schema digest mismatch" in log and "did not start" in log, log


@pytest.mark.parametrize("lend", [True, False])
def test_a_spinning_python_service_runs_the_cpp_nodes_loop_when_asked(lend: bool,
                                                                      work: str) -> None:
    # lend_loop: the Python thread runs the C++ node's I/O loop while it
    # spins, so cpp.echo (on the loop) answers on the Python thread; the
    # loop's `lends` counts it. Without the param the loop is never lent.
    # The loop blocks when idle: a loop thread that spins hands over at its
    # next idle turn, and in a tight ping-pong it answers before that.
    out = os.path.join(work, "lend.json")
    code, log = run(work, '''
[[nodes]]
name = "host"
services = ["echo", "trips"]
loop_wait = "block"
[services.echo]
type = "cpp.echo"
placement = "loop"
[services.trips]
type = "python:py_services:LendingRoundTrips"
params = { rounds = 2000, spin = 0.01, out = "%s"%s }
''' % (out, ", lend_loop = true" if lend else ""), "trips")
    assert code == 0, log
    with open(out) as f:
        d = json.load(f)
    assert d["pongs"] == list(range(1, 2001))
    if lend:
        assert d["loop"]["lending"] is True and d["loop"]["lends"] > 0, d
    else:
        assert d["loop"] == {}, d


def test_a_bad_lend_loop_param_names_the_service(work: str) -> None:
    code, log = run(work, '''
[[nodes]]
name = "host"
services = ["echo", "trips"]
[services.echo]
type = "cpp.echo"
[services.trips]
type = "python:py_services:LendingRoundTrips"
params = { lend_loop = "yes" }
''', "echo")
    assert code != 0, log
    assert "service 'trips': param lend_loop must be true or false" in log, log


def test_the_cpu_param_pins_the_python_services_thread(work: str) -> None:
    cpus = sorted(os.sched_getaffinity(0))
    out = os.path.join(work, "cpus.json")

    def with_cpu(value: str, until: str) -> Tuple[int, str]:
        return run(work, '''
[[nodes]]
name = "host"
services = ["echo", "pinned"]
[services.echo]
type = "cpp.echo"
[services.pinned]
type = "python:py_services:Affinity"
params = { cpu = %s, out = "%s" }
''' % (value, out), until)

    # A CPU by number, and -1: the last CPU the process may use.
    for value in (str(cpus[-1]), "-1"):
        code, log = with_cpu(value, "pinned")
        assert code == 0, log
        with open(out) as f:
            assert json.load(f) == [cpus[-1]], value
    # A CPU the machine does not have, and a value that is not one, fail
    # the start with the service's name.
    for bad, text in (("4096", "param cpu = 4096: Invalid argument (this machine has CPUs"),
                      ("-4096", "param cpu = -4096: the process may use"),
                      ('"x"', "param cpu must be a CPU number or a list of them, not 'x'")):
        code, log = with_cpu(bad, "echo")
        assert code != 0, log
        assert "service 'pinned': " + text in log, log


def test_a_python_type_in_a_node_without_python_is_refused(work: str) -> None:
    path = os.path.join(work, "t.toml")
    with open(path, "w") as f:
        f.write('[[nodes]]\nname = "n"\nservices = ["s"]\n'
                '[services.s]\ntype = "python:py_services:Echo"\n')
    r = subprocess.run([env_path("MYCELIUM_RUN"), "plan", path, "--binary",
                        env_path("MYCELIUM_PLAIN_NODE")],  # a node binary without Python
                       capture_output=True, text=True, timeout=60)
    assert r.returncode != 0
    assert "does not embed Python" in r.stderr and "runtime = \"python\"" in r.stderr, r.stderr


@pytest.mark.parametrize("kind", ["shm", "unix", "tcp"])
def test_python_node_and_cpp_node_across_processes(kind: str, work: str) -> None:
    out = os.path.join(work, "trips.json")
    code, log = run(work, '''
[[nodes]]
name = "cpp"
services = ["echo"]
endpoint.kind = "%(kind)s"
%(cport)s
[[nodes]]
name = "py"
runtime = "python"
services = ["trips", "reporter"]
endpoint.kind = "%(kind)s"
%(pport)s
[services.echo]
type = "cpp.echo"
[services.reporter]
type = "python:py_services:Reporter"
[services.trips]
type = "python:py_services:RoundTrips"
params = { rounds = 500, chats = 3, out = "%(out)s" }
''' % {"kind": kind, "out": out, "cport": tcp_port("cport") if kind == "tcp" else "",
       "pport": tcp_port("pport") if kind == "tcp" else ""}, "trips")
    assert code == 0, log
    with open(out) as f:
        d = json.load(f)
    assert d["pongs"] == list(range(1, 501)) and d["chats"] == 3
    assert (d["nodes"], d["node"]) == (2, "py")


def tcp_port(_: str) -> str:
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return "port = %d" % s.getsockname()[1]
