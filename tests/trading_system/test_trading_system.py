"""The multi-language trading system (apps/trading_system, issue 14) under
mycelium-run, with every process real: C++ market data -> Python signals
-> OCaml risk -> C++ execution.

- the three shipped deployments (fast, isolated, distributed) give the same
  fills and final positions, and so do repeated runs with the same seed;
- the OCaml risk service gives the same fills as an independent Python
  implementation of its rules (risk_twin.py);
- kill -9 of the OCaml risk process in "isolated": the launcher restarts it,
  it recovers execution's positions, trading resumes, no order that risk did
  not check is filled (a forged one is refused), and the run reports it.

mycelium-run owns every node process and stops them whatever happens; the
test only ever kills one node and then waits for events in the output."""

from __future__ import annotations

import json
import os
import queue
import re
import signal
import subprocess
import tempfile
import threading
import time
from typing import Any, Dict, List, Optional

import pytest

ROOT = os.environ.get("MYCELIUM_SOURCE_DIR", "")
TOPOLOGIES = os.path.join(ROOT, "apps", "trading_system", "topologies")
WAIT = 60.0


def env_path(name: str) -> str:
    v = os.environ.get(name)
    if not v:
        raise RuntimeError("%s is not set: run through CTest (ctest -R trading_system)" % name)
    return v


@pytest.fixture
def work() -> Any:
    d = tempfile.mkdtemp(prefix="myc-ts-")
    try:
        yield d
    finally:
        subprocess.run(["rm", "-rf", d])


def topology(work: str, name: str, bars: int, rate: int, replace: Optional[Dict[str, str]] = None,
             extra: str = "") -> str:
    with open(os.path.join(TOPOLOGIES, name + ".toml")) as f:
        text = f.read()
    text = text.replace('"../../../tests/', '"%s/tests/' % ROOT)
    text = text.replace("rate = 2000", "rate = %d, bars = %d" % (rate, bars))
    for old, new in (replace or {}).items():
        assert old in text, old
        text = text.replace(old, new)
    text = 'socket_dir = "%s/sock-%s"\n' % (work, name) + text + extra
    path = os.path.join(work, name + ".toml")
    with open(path, "w") as f:
        f.write(text)
    return path


class Launcher:
    """mycelium-run in the background, its merged output read by a thread."""

    def __init__(self, topo: str) -> None:
        self.proc = subprocess.Popen([env_path("MYCELIUM_RUN"), "run", topo, "--until-exit",
                                      "execution", "--ready-timeout", "30s"],
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                     cwd=os.path.dirname(topo))
        self.lines: "queue.Queue[Optional[str]]" = queue.Queue()
        self.log: List[str] = []
        threading.Thread(target=self._pump, daemon=True).start()

    def _pump(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(line.rstrip("\n"))
        self.lines.put(None)

    def await_line(self, pattern: str, timeout: float = WAIT) -> "re.Match[str]":
        rx = re.compile(pattern)
        for line in self.log:
            m = rx.search(line)
            if m:
                return m
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError("no line matching %r within %.0f s; output:\n%s"
                                     % (pattern, timeout, "\n".join(self.log[-80:])))
            try:
                line = self.lines.get(timeout=left)
            except queue.Empty:
                continue
            if line is None:
                raise AssertionError("mycelium-run ended (rc %s) before %r; output:\n%s"
                                     % (self.proc.wait(), pattern, "\n".join(self.log[-80:])))
            self.log.append(line)
            m = rx.search(line)
            if m:
                return m

    def wait(self, timeout: float = WAIT) -> int:
        rc = self.proc.wait(timeout=timeout)
        while True:
            line = self.lines.get(timeout=10)
            if line is None:
                break
            self.log.append(line)
        return rc

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def run(topo: str) -> Dict[str, Any]:
    la = Launcher(topo)
    try:
        rc = la.wait(timeout=180)
        assert rc == 0, "\n".join(la.log[-80:])
    finally:
        la.stop()
    return journal(topo)


def journal(topo: str) -> Dict[str, Any]:
    with open(topo) as f:
        m = re.search(r'out = "([^"]+)"', f.read())
    assert m
    with open(os.path.join(os.path.dirname(topo), m.group(1))) as f:
        return json.load(f)  # type: ignore[no-any-return]


def check_consistent(j: Dict[str, Any]) -> None:
    pos: Dict[str, int] = {}
    for order_id, bar_seq, sym, side, qty, px, position in j["fills"]:
        pos[sym] = pos.get(sym, 0) + (qty if side == "buy" else -qty)
        assert pos[sym] == position, (order_id, pos, position)
    assert pos == j["positions"]


def test_three_deployments_give_identical_fills_and_positions(work: str) -> None:
    journals = [run(topology(work, d, bars=1500, rate=0)) for d in ("fast", "isolated", "distributed")]
    first = journals[0]
    assert first["orders_filled"] > 20 and first["bars"] == 1500
    for j in journals:
        check_consistent(j)
        assert j["refused_unchecked"] == 0 and j["risk_starts"] == 1
        assert (j["fills"], j["positions"]) == (first["fills"], first["positions"]), j["deployment"]
        assert len(j["latency_ns"]["end_to_end"]) == j["orders_filled"]
    # The risk service's own count agrees with execution's.
    assert first["risk_orders"] == first["orders_filled"]


def test_repeated_runs_with_the_same_seed_are_identical(work: str) -> None:
    synthetic = {'source = "csv", file = "%s/tests/data/backtest/sp500-2000.csv", ' % ROOT:
                 'source = "synthetic", seed = 11, symbols = ["AAA", "BBB", "CCC"], '}
    a = run(topology(work, "fast", bars=3000, rate=0, replace=synthetic))
    os.rename(os.path.join(work, "journal-fast.json"), os.path.join(work, "first.json"))
    b = run(topology(work, "fast", bars=3000, rate=0, replace=synthetic))
    assert a["orders_filled"] > 20 and set(a["positions"]) == {"AAA", "BBB", "CCC"}
    assert (a["fills"], a["positions"]) == (b["fills"], b["positions"])


def test_ocaml_risk_agrees_with_an_independent_implementation(work: str) -> None:
    ocaml = run(topology(work, "isolated", bars=2000, rate=0))
    twin = run(topology(work, "isolated", bars=2000, rate=0, replace={
        'runtime = "command"\ncommand = ["mycelium-ocaml-risk-node"]\ncontrol = true\n':
        'runtime = "python"\n',
        'type = "trading.risk"': 'type = "python:risk_twin:RiskTwin"',
        'journal-isolated.json': 'journal-twin.json'}))
    assert (ocaml["fills"], ocaml["positions"]) == (twin["fills"], twin["positions"])
    assert (ocaml["risk_orders"], ocaml["risk_rejections"], ocaml["risk_signals"]) == \
        (twin["risk_orders"], twin["risk_rejections"], twin["risk_signals"])


def test_kill_9_of_risk_restarts_it_and_trading_resumes_checked(work: str) -> None:
    topo = topology(work, "isolated", bars=3000, rate=500, replace={
        'params = { out = "journal-isolated.json", deployment = "isolated" }':
        'params = { out = "journal-isolated.json", deployment = "isolated", progress_every = 5 }',
        'services = ["signals"]': 'services = ["signals", "rogue"]'},
        extra='\n[services.rogue]\ntype = "python:py_rogue:Rogue"\n')
    la = Launcher(topo)
    try:
        pid = int(la.await_line(r"started node 'risk' \(pid (\d+)\)").group(1))
        la.await_line(r"\[execution\].*fills=10 ")
        os.kill(pid, signal.SIGKILL)
        la.await_line(r"node 'risk' .*(killed by signal 9|signal 9)")
        la.await_line(r"restarted node 'risk' \(pid (\d+)\)")
        la.await_line(r"risk \(re\)started with epoch \d+ \(start 2\)")
        rc = la.wait(timeout=180)
        assert rc == 0, "\n".join(la.log[-80:])
    finally:
        la.stop()
    j = journal(topo)
    check_consistent(j)
    assert j["risk_starts"] == 2 and j["risk_epochs"] == 2, j
    assert j["refused_unchecked"] == 1  # the rogue's forged order
    ids = [f[0] for f in j["fills"]]
    assert ids == sorted(ids) and len(set(ids)) == len(ids)  # ids go on after the restart
    before = [f for f in j["fills"] if f[0] <= 10]
    assert len(before) >= 10 and len(j["fills"]) > len(before) + 5, "trading did not resume"
    log = "\n".join(la.log)
    assert "refused order 999999" in log and "unchecked orders refused" in log
