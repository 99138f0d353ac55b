#!/usr/bin/python3
"""mycelium-run against the trading example's real node binary.

Every test starts real processes (the launcher and its nodes), waits for
events in their output with timeouts (never a bare sleep), and kills what is
left in tearDown even when an assertion failed.

  launcher_test.py --run PATH/mycelium-run --node-dir DIR --topologies DIR
                   [--ocaml-dir DIR] [-k NAME]

--ocaml-dir holds mycelium-ocaml-trading-node (bindings/ocaml), which the
test_ocaml_* cases need; it goes into PATH after --node-dir.
"""

import argparse
import json
import os
import queue
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import unittest

ARGS = None


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def pid_alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie is dead for our purpose (its parent has not reaped it yet).
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def wait_until(pred, timeout, what):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return
        time.sleep(0.02)  # polling a condition with a deadline
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def node_path():
    # absolute: a node runs in its topology's directory
    dirs = [os.path.abspath(d) for d in [ARGS.node_dir, ARGS.ocaml_dir] if d]
    return os.pathsep.join(dirs + [os.environ.get("PATH", "")])


def shm_segments():
    return {n for n in os.listdir("/dev/shm") if n.startswith("mycelium-")}


# Segments and doorbells are named after the process that created them.
SEGMENT_OWNER = re.compile(r"^mycelium-(?:bell-)?(\d+)-")


def shm_segments_of(pids):
    """The segments created by one of `pids`: CTest runs other tests beside
    this one, and their segments come and go in the same /dev/shm."""
    return {n for n in shm_segments()
            if (m := SEGMENT_OWNER.match(n)) and int(m.group(1)) in pids}


class Launcher:
    """One mycelium-run process whose merged output is read on a thread."""

    def __init__(self, test, topology, *args):
        self.lines = []
        self.q = queue.Queue()
        env = dict(os.environ)
        env["PATH"] = node_path()
        self.proc = subprocess.Popen(
            [ARGS.run, "run", topology, *args], stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT, text=True, env=env, start_new_session=True)
        test.addCleanup(self.kill_all)
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self):
        for line in self.proc.stdout:
            line = line.rstrip("\n")
            self.lines.append(line)
            self.q.put(line)
        self.q.put(None)

    def wait_for(self, pattern, timeout=30):
        """The first match of `pattern` in the output from now on."""
        rx = re.compile(pattern)
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"no line matching {pattern!r} within {timeout} s; "
                                     f"output:\n" + "\n".join(self.lines[-60:]))
            try:
                line = self.q.get(timeout=left)
            except queue.Empty:
                continue
            if line is None:
                raise AssertionError(f"the launcher ended before {pattern!r}; output:\n"
                                     + "\n".join(self.lines[-60:]))
            m = rx.search(line)
            if m:
                return m

    def node_pids(self):
        return {m.group(1): int(m.group(2)) for m in
                (re.search(r"(?:re)?started node '([^']+)' \(pid (\d+)\)", l)
                 for l in self.lines) if m}

    def all_node_pids(self):
        """Every pid a node ran under, restarts included."""
        return {int(m.group(1)) for m in
                (re.search(r"(?:re)?started node '[^']+' \(pid (\d+)\)", l)
                 for l in self.lines) if m}

    def wait(self, timeout=60):
        rc = self.proc.wait(timeout=timeout)
        self.reader.join(timeout=5)
        return rc

    def kill_all(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.reader.join(timeout=5)
        self.proc.stdout.close()
        for pid in self.node_pids().values():
            try:
                os.killpg(pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass


class Daemon:
    """A node daemon (the example's node binary with --serve), in the test's
    directory; its stderr is read on a thread."""

    def __init__(self, test, address, *args):
        self.lines = []
        self.q = queue.Queue()
        env = dict(os.environ)
        env["PATH"] = node_path()
        self.proc = subprocess.Popen(
            ["mycelium-example-node", "--serve", address, *args], stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT, text=True, env=env, cwd=test.tmp,
            start_new_session=True)
        test.addCleanup(self.kill)
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    _read = Launcher._read
    wait_for = Launcher.wait_for

    def stop(self, timeout=20):
        """SIGTERM, and the exit code."""
        self.proc.send_signal(signal.SIGTERM)
        rc = self.proc.wait(timeout=timeout)
        self.reader.join(timeout=5)
        return rc

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.reader.join(timeout=5)
        self.proc.stdout.close()


class LauncherTest(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="myc-run-")
        self.addCleanup(shutil.rmtree, self.tmp, True)
        self.segments_before = shm_segments()

    def topology(self, name, quotes=None, rate=None, extra=""):
        """A shipped example topology, copied with its own socket_dir and
        free ports (and optionally another session length)."""
        with open(os.path.join(ARGS.topologies, name + ".toml")) as f:
            text = f.read()
        for old in re.findall(r"port = (\d+)", text):
            text = text.replace(f"port = {old}", f"port = {free_port()}")
        # The shipped files pace the ticker for people watching; tests run
        # at full speed unless they ask for a rate.
        text = re.sub(r", rate = \d+", "", text)
        if quotes is not None or rate is not None:
            params = f"quotes = {quotes or 5000}, seed = 42"
            if rate is not None:
                params += f", rate = {rate}"
            text = text.replace("quotes = 5000, seed = 42", params)
        return self.write_topology(name + ".toml", extra + text)

    def write_topology(self, name, text):
        """A topology file of this test's own, with its own socket_dir."""
        path = os.path.join(self.tmp, name)
        with open(path, "w") as f:
            f.write(f'socket_dir = "{self.tmp}/run"\n' + text)
        return path

    def cli(self, *args, timeout=60):
        env = dict(os.environ)
        env["PATH"] = node_path()
        return subprocess.run([ARGS.run, *args], capture_output=True, text=True,
                              env=env, timeout=timeout)

    def journal(self, name):
        with open(os.path.join(self.tmp, f"journal-{name}.txt")) as f:
            return f.read()

    def assert_nothing_left(self, launcher):
        for node, pid in launcher.node_pids().items():
            wait_until(lambda: not pid_alive(pid), 10, f"node {node} (pid {pid}) to exit")
        run_dir = os.path.join(self.tmp, "run")
        if os.path.isdir(run_dir):
            left = [n for n in os.listdir(run_dir) if n != "logs"]
            self.assertEqual(left, [], f"left in {run_dir}")
        self.assertEqual(shm_segments_of(launcher.all_node_pids()) - self.segments_before, set(),
                         "shared-memory segments left behind")

    # -- the three deployments ------------------------------------------------------

    def test_three_deployments_same_journal(self):
        journals = {}
        for name in ("one-process", "three-processes", "distributed"):
            l = Launcher(self, self.topology(name), "--until-exit", "journal")
            rc = l.wait()
            self.assertEqual(rc, 0, "\n".join(l.lines[-40:]))
            self.assert_nothing_left(l)
            journals[name] = self.journal(name)
        self.assertIn("session complete: 5000 quotes, ", journals["one-process"])
        self.assertGreater(journals["one-process"].count("fill #"), 100)
        self.assertEqual(journals["three-processes"], journals["one-process"])
        self.assertEqual(journals["distributed"], journals["one-process"])

    # -- an OCaml node (bindings/ocaml) ----------------------------------------------

    def need_ocaml(self):
        self.assertTrue(ARGS.ocaml_dir and os.path.isfile(
            os.path.join(ARGS.ocaml_dir, "mycelium-ocaml-trading-node")),
            f"--ocaml-dir {ARGS.ocaml_dir!r} has no mycelium-ocaml-trading-node "
            "(build the mycelium_ocaml target)")

    def test_ocaml_executor_same_journal(self):
        self.need_ocaml()
        l = Launcher(self, self.topology("one-process"), "--until-exit", "journal")
        self.assertEqual(l.wait(), 0, "\n".join(l.lines[-40:]))
        self.assert_nothing_left(l)
        l = Launcher(self, self.topology("ocaml-executor"), "--until-exit", "journal")
        rc = l.wait()
        out = "\n".join(l.lines)
        self.assertEqual(rc, 0, "\n".join(l.lines[-40:]))
        self.assert_nothing_left(l)
        # The OCaml node took part in the readiness protocol and stopped cleanly.
        self.assertIn("[exec-ocaml] mycelium-ocaml-node exec-ocaml: ready", out)
        # Its services are the topology's, handed over in MYCELIUM_SERVICES.
        self.assertIn("[exec-ocaml] mycelium-ocaml-node exec-ocaml: services (MYCELIUM_SERVICES): "
                      "executor (example.executor, pool)", out)
        self.assertIn("all 4 nodes ready", out)
        self.assertIn("node 'exec-ocaml' stopped (exit code 0)", out)
        reference = self.journal("one-process")
        self.assertIn("session complete: 5000 quotes, ", reference)
        self.assertGreater(reference.count("fill #"), 100)
        self.assertEqual(self.journal("ocaml-executor"), reference)
        # Whichever node starts first, the OCaml one included.
        orders = set()
        for seed in range(6):
            os.remove(os.path.join(self.tmp, "journal-ocaml-executor.txt"))
            l = Launcher(self, self.topology("ocaml-executor"), "--until-exit", "journal",
                         "--shuffle", str(seed))
            self.assertEqual(l.wait(), 0, f"seed {seed}:\n" + "\n".join(l.lines[-40:]))
            self.assert_nothing_left(l)
            self.assertEqual(self.journal("ocaml-executor"), reference, f"seed {seed}")
            orders.add(next(x for x in l.lines if "--shuffle: starting nodes" in x))
        self.assertGreater(len(orders), 2, "the seeds should give several start orders")

    def test_ocaml_node_status_and_stop(self):
        self.need_ocaml()
        path = self.topology("ocaml-executor", quotes=10**8, rate=20000)
        l = Launcher(self, path)
        l.wait_for(r"all 4 nodes ready")
        r = self.cli("status", path, "--json")
        self.assertEqual(r.returncode, 0, r.stderr)
        nodes = {n["name"]: n for n in json.loads(r.stdout)["nodes"]}
        ex = nodes["exec-ocaml"]
        self.assertEqual((ex["state"], ex["runtime"]), ("ready", "command"))
        st = ex["status"]
        self.assertIsNotNone(st, ex)
        self.assertEqual((st["node"], st["pid"], st["ready"]), ("exec-ocaml", ex["pid"], True))
        links = {x["name"]: x for x in st["links"]}
        self.assertEqual(set(links), {"exec-ocaml:unix", "exec-ocaml->md", "exec-ocaml->alpha"})
        self.assertEqual(links["exec-ocaml:unix"]["peers"], ["journal"])
        self.assertEqual(links["exec-ocaml->md"]["endpoint"],
                         "shm:" + os.path.join(self.tmp, "run", "md.sock"))
        for x in links.values():
            self.assertEqual(len(x["peers"]), x["expected_peers"], x)
            self.assertEqual(x["state"], "up", x)
        # Quotes flow into the OCaml node over shared memory.
        def quotes_in():
            r = self.cli("status", path, "--json")
            n = {n["name"]: n for n in json.loads(r.stdout)["nodes"]}["exec-ocaml"]
            return {x["name"]: x for x in n["status"]["links"]}["exec-ocaml->md"]["frames_received"] > 0
        wait_until(quotes_in, 10, "quotes received by exec-ocaml")
        text = self.cli("status", path)
        self.assertEqual(text.returncode, 0, text.stderr)
        self.assertRegex(text.stdout, r"\nexec-ocaml +\d+ ready ")
        self.assertRegex(text.stdout, r"exec-ocaml +exec-ocaml->md +up +1 ")
        l.proc.send_signal(signal.SIGTERM)
        self.assertEqual(l.wait(), 0, "\n".join(l.lines[-40:]))
        self.assertTrue(any("node 'exec-ocaml' stopped (exit code 0)" in x for x in l.lines),
                        "\n".join(l.lines[-40:]))
        self.assert_nothing_left(l)

    def test_ocaml_node_does_not_outlive_the_launcher(self):
        self.need_ocaml()
        l = Launcher(self, self.topology("ocaml-executor", quotes=10**8, rate=20000))
        l.wait_for(r"all 4 nodes ready")
        pids = l.node_pids()
        l.proc.kill()
        l.proc.wait()
        for node, pid in pids.items():
            wait_until(lambda: not pid_alive(pid), 10, f"orphan node {node} to exit")
        self.assertEqual(shm_segments_of(l.all_node_pids()) - self.segments_before, set(),
                         "shared-memory segments left behind")

    def test_ocaml_node_restarts_after_kill(self):
        self.need_ocaml()
        path = self.topology("ocaml-executor", quotes=10**8, rate=20000)
        l = Launcher(self, path)
        l.wait_for(r"all 4 nodes ready")
        os.kill(l.node_pids()["exec-ocaml"], signal.SIGKILL)
        l.wait_for(r"node 'exec-ocaml' exited \(killed by signal 9")
        l.wait_for(r"restarted node 'exec-ocaml'")
        l.wait_for(r"\[exec-ocaml\] mycelium-ocaml-node exec-ocaml: ready$")
        def back():
            r = self.cli("status", path, "--json")
            self.assertEqual(r.returncode, 0, r.stderr)
            nodes = {n["name"]: n for n in json.loads(r.stdout)["nodes"]}
            ex = nodes["exec-ocaml"]
            if ex["state"] != "ready" or ex["restarts"] != 1 or ex["status"] is None:
                return False
            # its peers took the new process back: links up on both sides
            # and orders filled again (fills reach the journal's node)
            mine = {x["name"]: x for x in ex["status"]["links"]}
            journal = {x["name"]: x for x in nodes["journal"]["status"]["links"]}
            return (all(len(x["peers"]) == x["expected_peers"] for x in mine.values())
                    and mine["exec-ocaml:unix"]["frames_sent"] > 0
                    and journal["journal->exec-ocaml"]["disconnects"] >= 1
                    and journal["journal->exec-ocaml"]["peers"] == ["exec-ocaml"])
        wait_until(back, 20, "exec-ocaml restarted, linked and filling again")
        l.proc.send_signal(signal.SIGTERM)
        self.assertEqual(l.wait(), 0, "\n".join(l.lines[-40:]))
        self.assert_nothing_left(l)

    def test_ocaml_node_error_reaches_the_launcher(self):
        # The OCaml node's only peer never listens: after its --ready-timeout
        # it reports why over the control channel and exits 4.
        self.need_ocaml()
        path = self.write_topology("ghost.toml",
                                   '[[nodes]]\nname = "ghost"\nruntime = "command"\n'
                                   'command = ["sleep", "60"]\n'
                                   '[[nodes]]\nname = "exec-ocaml"\nruntime = "command"\ncontrol = true\n'
                                   'restart = "never"\n'
                                   'command = ["mycelium-ocaml-trading-node", "--ready-timeout", "300"]\n')
        l = Launcher(self, path)
        self.assertEqual(l.wait(), 1, "\n".join(l.lines[-40:]))
        sock = os.path.join(self.tmp, "run", "ghost.sock")
        # The last connect error is there if the node got to try within the
        # 300 ms (on a starved machine it may not have).
        rx = re.compile(
            re.escape(f"node 'exec-ocaml' failed (exit code 4: node 'exec-ocaml': peers not "
                      f"reached within 300 ms: link exec-ocaml->ghost (unix:{sock}) waits "
                      f"for ghost")
            + "(" + re.escape(f" (last error: connect unix:{sock} failed: No such file or "
                              "directory)") + ")?"
            + re.escape(") and its restart policy is never"))
        self.assertTrue(any(rx.search(x) for x in l.lines), "\n".join(l.lines[-40:]))
        self.assert_nothing_left(l)

    def test_ocaml_node_refuses_a_type_it_does_not_offer(self):
        # The topology's services reach the OCaml node in MYCELIUM_SERVICES; a
        # type the program does not offer is refused with the line, the
        # service and the program's types, and the launcher reports the text.
        self.need_ocaml()
        path = self.write_topology("bad-type.toml",
                                   '[[nodes]]\nname = "exec-ocaml"\nruntime = "command"\ncontrol = true\n'
                                   'restart = "never"\nservices = ["exec"]\n'
                                   'command = ["mycelium-ocaml-trading-node"]\n'
                                   '[services.exec]\ntype = "example.exec"\n')
        l = Launcher(self, path)
        self.assertEqual(l.wait(), 1, "\n".join(l.lines[-40:]))
        self.assertTrue(any(
            "node 'exec-ocaml' failed (exit code 2: MYCELIUM_SERVICES line 1 (service exec): "
            "key 'type': this program has no service type 'example.exec' (it has: "
            "example.executor)) and its restart policy is never" in x for x in l.lines),
            "\n".join(l.lines[-40:]))
        self.assert_nothing_left(l)

    def test_start_order_independence(self):
        reference = None
        orders = set()
        for seed in range(20):
            l = Launcher(self, self.topology("three-processes"), "--until-exit", "journal",
                         "--shuffle", str(seed))
            rc = l.wait()
            self.assertEqual(rc, 0, f"seed {seed}:\n" + "\n".join(l.lines[-40:]))
            j = self.journal("three-processes")
            os.remove(os.path.join(self.tmp, "journal-three-processes.txt"))
            if reference is None:
                reference = j
                self.assertIn("session complete: 5000 quotes", j)
            self.assertEqual(j, reference, f"seed {seed} gave another journal")
            orders.add(next(x for x in l.lines if "--shuffle: starting nodes" in x))
        self.assertGreater(len(orders), 3, "the seeds should give several start orders")

    # -- node daemons -----------------------------------------------------------------

    def daemons_topology(self, secret=None, **kw):
        """daemons.toml with free ports and, with `secret`, a secret for the
        daemon of 127.0.0.2; returns the path and the daemons' addresses."""
        path = self.topology("daemons", **kw)
        with open(path) as f:
            text = f.read()
        if secret is not None:
            secret_path = os.path.join(self.tmp, "daemon.secret")
            with open(secret_path, "w") as f:
                f.write(secret + "\n")
            text = text.replace('[[daemons]]\nhost = "127.0.0.2"\n',
                                '[[daemons]]\nhost = "127.0.0.2"\n'
                                f'secret_file = "{secret_path}"\n', 1)
            with open(path, "w") as f:
                f.write(text)
        daemons = re.findall(r'\[\[daemons\]\]\nhost = "([^"]+)"\n(?:secret_file = "[^"]+"\n)?'
                             r'port = (\d+)', text)
        self.assertEqual(len(daemons), 2, text)
        return path, [f"{h}:{p}" for h, p in daemons]

    def start_daemons(self, addresses, *first_args):
        ds = [Daemon(self, addresses[0], *first_args), Daemon(self, addresses[1])]
        for d, a in zip(ds, addresses):
            d.wait_for(r"mycelium-node daemon listening on " + re.escape(a))
        return ds

    def test_daemons_same_journal(self):
        one = Launcher(self, self.topology("one-process"), "--until-exit", "journal")
        self.assertEqual(one.wait(), 0, "\n".join(one.lines[-40:]))
        path, addresses = self.daemons_topology(secret="daemon-test-secret")
        ds = self.start_daemons(addresses, "--secret-file",
                                os.path.join(self.tmp, "daemon.secret"))
        l = Launcher(self, path, "--until-exit", "journal")
        rc = l.wait()
        out = "\n".join(l.lines)
        self.assertEqual(rc, 0, out)
        self.assertEqual(self.journal("daemons"), self.journal("one-process"))
        # The launcher's logs cover the nodes in the daemons.
        self.assertRegex(out, r"\[alpha\] .* starts in the node daemon at 127\.0\.0\.2:")
        self.assertRegex(out, r"\[exec\] .*\[exec\] started 2 service\(s\), 2 link\(s\)")
        self.assertRegex(out, r"\[exec\] .*\[journal\] session complete: 352 fills")
        for d, node in zip(ds, ["alpha", "exec"]):
            d.wait_for(rf"\[daemon\] node '{node}' ended", timeout=10)
            self.assertIsNone(d.proc.poll(), "the daemon outlives the deployment")
        self.assert_nothing_left(l)
        for d in ds:
            self.assertEqual(d.stop(), 0, "\n".join(d.lines[-20:]))

    def test_daemon_refuses_launchers_without_the_secret(self):
        path, addresses = self.daemons_topology(secret="not-the-daemons-secret")
        with open(path) as f:
            text = f.read()
        # One attempt: a refusal does not get better by restarting.
        text = text.replace('name = "alpha"\n', 'name = "alpha"\nmax_restarts = 0\n')
        with open(path, "w") as f:
            f.write(text)
        right = os.path.join(self.tmp, "right.secret")
        with open(right, "w") as f:
            f.write("the-daemons-secret\n")
        ds = self.start_daemons(addresses, "--secret-file", right)
        l = Launcher(self, path)
        self.assertEqual(l.wait(), 1)
        out = "\n".join(l.lines)
        self.assertIn("node 'alpha': the node daemon at " + addresses[0] + " refused this "
                      "launcher: auth_failed: the node daemon refused the proof", out)
        self.assertIn("(exit code 7: ", out)
        ds[0].wait_for(r"refused a peer with a wrong secret")
        # A daemon on an address other than loopback needs a secret.
        env = dict(os.environ)
        env["PATH"] = node_path()
        r = subprocess.run(["mycelium-example-node", "--serve", "0.0.0.0:0"],
                           capture_output=True, text=True, env=env, timeout=30)
        self.assertEqual(r.returncode, 2)
        self.assertIn("refusing to listen on 0.0.0.0 without authentication", r.stderr)
        for d in ds:
            self.assertEqual(d.stop(), 0)

    def test_daemon_nodes_restart_and_stop_with_their_launcher(self):
        path, addresses = self.daemons_topology(quotes=10**8, rate=20000)
        ds = self.start_daemons(addresses)
        l = Launcher(self, path)
        l.wait_for(r"all 3 nodes ready")
        # Status covers the nodes in the daemons.
        r = self.cli("status", path, "--json")
        self.assertEqual(r.returncode, 0, r.stderr)
        nodes = {n["name"]: n for n in json.loads(r.stdout)["nodes"]}
        self.assertEqual(nodes["exec"]["state"], "ready")
        self.assertEqual(nodes["exec"]["host"], "127.0.0.3")
        self.assertEqual(nodes["exec"]["status"]["pid"], ds[1].proc.pid)
        self.assertEqual({x["name"] for x in nodes["exec"]["status"]["links"]},
                         {"exec->md", "exec->alpha"})
        # kill -9 of a node's stand-in: the daemon stops the node, the
        # launcher restarts the stand-in, the daemon starts the node again.
        os.kill(l.node_pids()["alpha"], signal.SIGKILL)
        l.wait_for(r"restarted node 'alpha'")
        l.wait_for(r"\[alpha\] .*\[alpha\] ready$")
        ds[0].wait_for(r"\[daemon\] node 'alpha' ended")
        # kill -9 of the launcher: the stand-ins go, and the daemons stop
        # their nodes.
        pids = l.node_pids()
        l.proc.kill()
        l.proc.wait()
        for node, pid in pids.items():
            wait_until(lambda: not pid_alive(pid), 10, f"orphan node {node} to exit")
        for d, node in zip(ds, ["alpha", "exec"]):
            d.wait_for(rf"\[daemon\] node '{node}' ended", timeout=15)
        # The daemons take the next deployment: the same daemons, a short
        # session, fresh node ports.
        with open(path) as f:
            text = f.read()
        text = text.replace("quotes = 100000000, seed = 42, rate = 20000",
                            "quotes = 5000, seed = 42")
        for node in ("md", "alpha", "exec"):
            text = re.sub(rf'(name = "{node}"\n(?:.*\n)*?port = )\d+',
                          rf"\g<1>{free_port()}", text, count=1)
        again = os.path.join(self.tmp, "again.toml")
        with open(again, "w") as f:
            f.write(text)
        l2 = Launcher(self, again, "--until-exit", "journal")
        self.assertEqual(l2.wait(), 0, "\n".join(l2.lines[-40:]))
        self.assertIn("session complete: 5000 quotes", self.journal("daemons"))
        self.assert_nothing_left(l2)
        for d in ds:
            self.assertEqual(d.stop(), 0)

    # -- stopping ---------------------------------------------------------------------

    def test_graceful_shutdown_leaves_nothing(self):
        l = Launcher(self, self.topology("three-processes", quotes=10**8, rate=20000))
        l.wait_for(r"all 3 nodes ready")
        l.proc.send_signal(signal.SIGINT)
        rc = l.wait()
        self.assertEqual(rc, 0, "\n".join(l.lines[-40:]))
        self.assertTrue(any("stopped cleanly" in x for x in l.lines))
        # Reverse start order: exec, alpha, md.
        stops = [m.group(1) for m in (re.search(r"node '(\w+)' stopped \(exit code 0\)", x)
                                      for x in l.lines) if m]
        self.assertEqual(stops, ["exec", "alpha", "md"])
        self.assert_nothing_left(l)

    def test_kill_node_restarts_and_peers_reconnect(self):
        path = self.topology("three-processes", quotes=10**8, rate=20000)
        l = Launcher(self, path)
        l.wait_for(r"all 3 nodes ready")
        alpha = l.node_pids()["alpha"]
        os.kill(alpha, signal.SIGKILL)
        l.wait_for(r"node 'alpha' exited \(killed by signal 9")
        l.wait_for(r"restarted node 'alpha'")
        l.wait_for(r"\[alpha\] .* ready$")
        # Its peers reconnected, and the counters show the lost connection.
        def status():
            r = self.cli("status", path, "--json")
            self.assertEqual(r.returncode, 0, r.stderr)
            return json.loads(r.stdout)
        def alpha_back():
            s = status()
            nodes = {n["name"]: n for n in s["nodes"]}
            if nodes["alpha"]["state"] != "ready" or nodes["alpha"]["restarts"] != 1:
                return False
            md_links = nodes["md"]["status"]["links"]
            return all(len(x["peers"]) == x["expected_peers"] for x in md_links)
        wait_until(alpha_back, 20, "alpha restarted and md's links up again")
        md = {n["name"]: n for n in status()["nodes"]}["md"]
        self.assertGreaterEqual(sum(x["disconnects"] for x in md["status"]["links"]), 1)
        l.proc.send_signal(signal.SIGTERM)
        self.assertEqual(l.wait(), 0, "\n".join(l.lines[-40:]))
        self.assert_nothing_left(l)

    def test_kill_launcher_leaves_no_orphans(self):
        path = self.topology("three-processes", quotes=10**8, rate=20000)
        l = Launcher(self, path)
        l.wait_for(r"all 3 nodes ready")
        pids = l.node_pids()
        l.proc.kill()
        l.proc.wait()
        for node, pid in pids.items():
            wait_until(lambda: not pid_alive(pid), 10, f"orphan node {node} to exit")
        # The next start cleans up what the killed launcher left and runs.
        short = self.topology("three-processes")
        l2 = Launcher(self, short, "--until-exit", "journal")
        self.assertEqual(l2.wait(), 0, "\n".join(l2.lines[-40:]))
        self.assert_nothing_left(l2)

    def test_node_stops_while_waiting_for_peers(self):
        # A node whose peers never come stops at once on SIGTERM, not after
        # its ready timeout.
        path = self.topology("three-processes")
        env = dict(os.environ)
        env["PATH"] = os.path.abspath(ARGS.node_dir) + os.pathsep + env.get("PATH", "")
        p = subprocess.Popen(["mycelium-example-node", "--topology", path, "--node", "alpha"],
                             stderr=subprocess.PIPE, text=True, env=env)
        self.addCleanup(lambda: p.poll() is None and p.kill())
        for line in p.stderr:
            if "started 1 service(s), 2 link(s)" in line:
                break
        t0 = time.monotonic()
        p.send_signal(signal.SIGTERM)
        rc = p.wait(timeout=10)
        p.stderr.close()
        self.assertEqual(rc, 0)
        self.assertLess(time.monotonic() - t0, 3.0, "the node waited for its peers first")

    def test_restart_limit_stops_the_deployment(self):
        path = self.write_topology("crash.toml",
                                   '[[nodes]]\nname = "crashy"\nruntime = "command"\n'
                                   'command = ["sh", "-c", "echo about to fail; exit 3"]\n'
                                   'max_restarts = 2\nbackoff_min = "10ms"\n')
        l = Launcher(self, path)
        self.assertEqual(l.wait(), 1)
        out = "\n".join(l.lines)
        self.assertIn("[crashy] about to fail", out)
        self.assertIn("node 'crashy' failed 3 time(s) within 60 s (exit code 3); past "
                      "its max_restarts = 2, the deployment stops", out)

    def test_cpus_pins_the_node_process(self):
        # The node reports the CPUs its process may run on, as the kernel has
        # them; -1 is the last CPU this launcher (and so this test) may use.
        last = max(os.sched_getaffinity(0))
        path = self.write_topology("pinned.toml",
                                   '[[nodes]]\nname = "pinned"\nruntime = "command"\n'
                                   'command = ["sh", "-c", "grep Cpus_allowed_list /proc/self/status"]\n'
                                   'restart = "never"\ncpus = [-1]\n')
        l = Launcher(self, path)
        l.wait_for(rf"started node 'pinned' \(pid \d+\) on cpus {last}: sh -c")
        l.wait_for(rf"\[pinned\] Cpus_allowed_list:\s+{last}$")
        self.assertEqual(l.wait(), 0)
        # A CPU the host does not have is refused before anything starts,
        # with the file position and what the launcher may use.
        bad = self.write_topology("bad-cpus.toml",
                                  '[[nodes]]\nname = "pinned"\nruntime = "command"\n'
                                  'command = ["true"]\ncpus = [1023]\n')
        r = self.cli("run", bad)
        self.assertEqual(r.returncode, 2, r.stderr)
        self.assertIn(f"{bad}:6:8: node 'pinned' key 'cpus': CPU 1023 is not one this "
                      "launcher may use (it may use ", r.stderr)
        self.assertNotIn("started node", r.stdout + r.stderr)

    # -- the commands -----------------------------------------------------------------

    def test_status_and_plan(self):
        path = self.topology("three-processes", quotes=10**8, rate=20000)
        plan = self.cli("plan", path)
        self.assertEqual(plan.returncode, 0, plan.stderr)
        self.assertIn("alpha -> md    shm", plan.stdout)
        self.assertIn("md -> alpha: fill, quote, session_end", plan.stdout)
        self.assertIn("strategy  alpha  example.strategy  pool", plan.stdout)
        pj = json.loads(self.cli("plan", path, "--json").stdout)
        self.assertEqual([n["name"] for n in pj["nodes"]], ["md", "alpha", "exec"])
        self.assertEqual({(x["connector"], x["listener"], x["kind"]) for x in pj["links"]},
                         {("alpha", "md", "shm"), ("exec", "md", "shm"),
                          ("exec", "alpha", "unix")})
        l = Launcher(self, path)
        l.wait_for(r"all 3 nodes ready")
        text = self.cli("status", path)
        self.assertEqual(text.returncode, 0, text.stderr)
        for node in ("md", "alpha", "exec"):
            self.assertRegex(text.stdout, rf"\n{node} +\d+ ready ")
        self.assertIn("LINK", text.stdout)
        self.assertRegex(text.stdout, r"alpha +alpha->md +up +1 ")
        sj = json.loads(self.cli("status", path, "--json").stdout)
        self.assertEqual(sj["state"], "running")
        self.assertEqual(len(sj["nodes"]), 3)
        for n in sj["nodes"]:
            self.assertGreater(n["pid"], 0)
            self.assertIsNotNone(n["status"], n)
        logs = self.cli("logs", path, "md", "--no-follow")
        self.assertEqual(logs.returncode, 0, logs.stderr)
        self.assertIn("[md] ready", logs.stdout)
        l.proc.send_signal(signal.SIGTERM)
        self.assertEqual(l.wait(), 0)
        gone = self.cli("status", path)
        self.assertEqual(gone.returncode, 1)
        self.assertIn("is not running", gone.stderr)

    def test_bad_topology_is_refused_with_position(self):
        path = os.path.join(self.tmp, "bad.toml")
        with open(path, "w") as f:
            f.write('binary = "mycelium-example-node"\n[[nodes]]\nname = "a"\n'
                    'services = ["ticker"]\n[services.ticker]\ntype = "example.tickr"\n')
        r = self.cli("run", path)
        self.assertEqual(r.returncode, 2)
        self.assertIn(f"{path}:6:8: service 'ticker' has type 'example.tickr', which node "
                      "'a''s binary mycelium-example-node does not register; did you mean "
                      "'example.ticker'?", r.stderr)
        r = self.cli("run", self.topology("one-process"), "--until-exit", "jounral")
        self.assertEqual(r.returncode, 2)
        self.assertIn("--until-exit: no service is named 'jounral'", r.stderr)


def main():
    global ARGS
    p = argparse.ArgumentParser()
    p.add_argument("--run", required=True)
    p.add_argument("--node-dir", required=True)
    p.add_argument("--topologies", required=True)
    p.add_argument("--ocaml-dir", default="")
    ARGS, rest = p.parse_known_args()
    unittest.main(argv=[sys.argv[0], *rest], verbosity=2)


if __name__ == "__main__":
    main()
