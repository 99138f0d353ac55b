// topology.toml: the loader's defaults and every error it reports, the
// resolved routes, and the plan report.

#include <doctest/doctest.h>

#include <fstream>
#include <string>

#include <sys/socket.h>
#include <unistd.h>

#include "mycelium/errc.hpp"
#include "mycelium/topology/control_channel.hpp"
#include "mycelium/topology/deployment_plan.hpp"
#include "mycelium/topology/plan_report.hpp"
#include "mycelium/topology/topology_loader.hpp"

using namespace mycelium;
using namespace mycelium::topology;
using transports::link_kind;
using transports::link_role;

namespace {

/// The error text without the "config_invalid: " prefix.
std::string error_of(const std::string& text) {
  auto t = load_topology_string(text, "/etc/demo/t.toml");
  REQUIRE_FALSE(t);
  CHECK(t.error() == make_error(errc::config_invalid));
  auto s = render(t.error());
  return s.substr(s.find(": ") + 2);
}

mycelium::topology::topology must_load(const std::string& text) {
  auto t = load_topology_string(text, "/etc/demo/t.toml");
  REQUIRE_MESSAGE(t, (t ? "" : render(t.error())));
  return *t;
}

#define CHECK_HAS(text, part)                                                  \
  CHECK_MESSAGE((text).find(part) != std::string::npos,                        \
                "'" << (part) << "' not in: " << (text))

} // namespace

TEST_CASE("topology: a file with only nodes and services runs with defaults") {
  auto t = must_load("[[nodes]]\nname = \"a\"\nservices = [\"x\", \"y\"]\n"
                     "[[nodes]]\nname = \"b\"\nservices = [\"z\"]\n");
  CHECK(t.name == "t");
  CHECK(t.socket_dir == "/tmp/mycelium-" + std::to_string(::getuid()) + "/t");
  CHECK(t.shm_dir == "/dev/shm");
  REQUIRE(t.nodes.size() == 2);
  CHECK(t.nodes[0].local_kind == link_kind::unix_socket);
  CHECK(t.nodes[0].endpoint_path == t.socket_dir + "/a.sock");
  CHECK(t.nodes[0].runtime == node_runtime::cpp);
  CHECK(t.nodes[0].restart.mode == restart_mode::on_failure);
  REQUIRE(t.services.size() == 3);
  CHECK(t.services[0].name == "x");
  CHECK(t.services[0].type == "x"); // no [services.x]: the type is the name
  CHECK(t.services[0].node == "a");
  CHECK(t.services[0].where == placement::pool);
  CHECK(t.services[2].node == "b");
}

TEST_CASE("topology: every key of the documented shape is read") {
  auto t = must_load(R"(
name = "demo"
socket_dir = "run"
shm_dir = "/dev/shm"
binary = "bin/node"
log_dir = "/var/log/demo"

[link_defaults]
wait = "busy_poll"
ring_capacity = "1MiB"

[[nodes]]
name = "md"
services = ["feed"]
endpoint = { kind = "shm", path = "md.sock" }
restart = "always"
max_restarts = 2
restart_window = "30s"
backoff_min = "50ms"
backoff_max = "1s"
env = { LEVEL = "debug" }
workdir = "work"
loop_wait = "spin_then_block"
loop_spin = "250us"

[[nodes]]
name = "risk"
runtime = "command"
command = ["risk-node", "--fast"]
services = ["risk"]
host = "10.0.0.2"
port = 7001
after = ["md"]

[services.feed]
type = "demo.feed"
params = { rate = 1000, symbols = ["A", "B"], scale = 1.5, on = true, nested = { k = 1 } }
placement = "loop"
max_restarts = 7
restart_window = "2s"

[[links]]
between = ["md", "risk"]
overflow = "drop_newest"
send_queue = 100
)");
  CHECK(t.name == "demo");
  CHECK(t.socket_dir == "/etc/demo/run");
  CHECK(t.binary == "/etc/demo/bin/node");
  CHECK(t.log_dir == "/var/log/demo");
  CHECK(t.link_defaults.wait == transports::wait_mode::busy_poll);
  CHECK(t.link_defaults.ring_capacity == uint64_t{1} << 20);
  auto& md = t.nodes[0];
  CHECK(md.local_kind == link_kind::shm);
  CHECK(md.endpoint_path == "/etc/demo/md.sock");
  CHECK(md.restart.mode == restart_mode::always);
  CHECK(md.restart.max_restarts == 2);
  CHECK(md.restart.window == std::chrono::seconds{30});
  CHECK(md.restart.backoff_min == std::chrono::milliseconds{50});
  CHECK(md.restart.backoff_max == std::chrono::seconds{1});
  CHECK(md.env.at("LEVEL") == "debug");
  CHECK(md.workdir == "/etc/demo/work");
  CHECK(md.binary == "/etc/demo/bin/node");
  CHECK(md.loop_wait == transports::wait_mode::spin_then_block);
  CHECK(md.loop_spin == std::chrono::microseconds{250});
  auto& risk = t.nodes[1];
  CHECK_FALSE(risk.loop_wait);
  CHECK_FALSE(risk.loop_spin);
  CHECK(risk.runtime == node_runtime::command);
  CHECK(risk.command == std::vector<std::string>{"risk-node", "--fast"});
  CHECK(risk.host == "10.0.0.2");
  CHECK(risk.port == 7001);
  CHECK(risk.after == std::vector<std::string>{"md"});
  auto* feed = t.find_service("feed");
  REQUIRE(feed != nullptr);
  CHECK(feed->type == "demo.feed");
  CHECK(feed->where == placement::loop);
  CHECK(feed->restart.max_restarts == 7);
  CHECK(caf::get_or(feed->params, "rate", int64_t{0}) == 1000);
  CHECK(caf::get_or(feed->params, "scale", 0.0) == 1.5);
  CHECK(caf::get_or(feed->params, "on", false) == true);
  REQUIRE(t.links.size() == 1);
  CHECK(t.links[0].settings.overflow == overflow_policy::drop_newest);
  CHECK(t.links[0].settings.send_queue == 100);
}

TEST_CASE("topology: a node's loop_wait takes only the idle strategies") {
  CHECK_HAS(error_of("[[nodes]]\nname = \"a\"\nservices = [\"s\"]\nloop_wait = \"spin\"\n"),
            "loop_wait");
  CHECK_HAS(error_of("[[nodes]]\nname = \"a\"\nservices = [\"s\"]\nloop_wait = \"spin\"\n"),
            "busy_poll");
  CHECK_HAS(error_of("[[nodes]]\nname = \"a\"\nservices = [\"s\"]\nloop_spin = \"fast\"\n"),
            "loop_spin");
}

TEST_CASE("topology: a control line with line breaks stays one line") {
  int sv[2];
  REQUIRE(::socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == 0);
  control_channel ch{sv[0]};
  REQUIRE(ch.send("failed Traceback (most recent call last):\n  File x\r\nTypeError: y"));
  ch.close(); // read_lines then ends at end of stream
  std::string partial;
  std::vector<std::string> lines;
  (void) read_lines(sv[1], partial, lines);
  ::close(sv[1]);
  REQUIRE(lines.size() == 1);
  CHECK(lines[0] == "failed Traceback (most recent call last): |   File x | TypeError: y");
}

TEST_CASE("topology: every loader error names file:line:column and what to do") {
  SUBCASE("TOML syntax") {
    CHECK_HAS(error_of("[[nodes]]\nname = \n"), "/etc/demo/t.toml:2:");
    CHECK_HAS(error_of("[[nodes]]\nname = \n"), "TOML syntax error");
  }
  SUBCASE("unknown top-level key, with a suggestion") {
    CHECK_HAS(error_of("socket_dri = \"x\"\n[[nodes]]\nname = \"a\"\nservices = [\"s\"]\n"),
              "/etc/demo/t.toml:1:14: top-level unknown key 'socket_dri' (known keys: "
              "name, socket_dir, shm_dir, binary, log_dir, nodes, services, "
              "link_defaults, links, daemons; did you mean 'socket_dir'?)");
  }
  SUBCASE("unknown node key, with a suggestion") {
    CHECK_HAS(error_of("[[nodes]]\nname = \"a\"\nservice = [\"s\"]\n"),
              "/etc/demo/t.toml:3:11: node 'a' unknown key 'service'");
    CHECK_HAS(error_of("[[nodes]]\nname = \"a\"\nservice = [\"s\"]\n"),
              "did you mean 'services'?");
  }
  SUBCASE("unknown endpoint kind") {
    CHECK_HAS(error_of("[[nodes]]\nname = \"a\"\nservices = [\"s\"]\n"
                       "endpoint = { kind = \"unx\" }\n"),
              "/etc/demo/t.toml:4:21: node 'a' endpoint key 'kind': \"unx\" is not "
              "one of shm, unix, tcp; did you mean 'unix'?");
  }
  SUBCASE("no nodes") {
    CHECK_HAS(error_of("name = \"x\"\n"),
              "/etc/demo/t.toml:1:1: no nodes: add at least one [[nodes]] entry");
  }
  SUBCASE("duplicate node names") {
    CHECK_HAS(error_of("[[nodes]]\nname = \"a\"\nservices = [\"s\"]\n"
                       "[[nodes]]\nname = \"a\"\nservices = [\"t\"]\n"),
              "duplicate node name 'a' (first defined at line 1)");
  }
  SUBCASE("one service on two nodes") {
    CHECK_HAS(error_of("[[nodes]]\nname = \"a\"\nservices = [\"s\"]\n"
                       "[[nodes]]\nname = \"b\"\nservices = [\"s\"]\n"),
              "/etc/demo/t.toml:6:13: service 's' is on two nodes, 'a' (line 3) and "
              "'b'; a service runs on one node");
  }
  SUBCASE("a service listed twice on one node") {
    CHECK_HAS(error_of("[[nodes]]\nname = \"a\"\nservices = [\"s\", \"s\"]\n"),
              "/etc/demo/t.toml:3:18: service 's' is listed twice on node 'a'");
  }
  SUBCASE("a host without a port") {
    CHECK_HAS(error_of("[[nodes]]\nname = \"a\"\nservices = [\"s\"]\nhost = \"10.1.1.1\"\n"),
              "/etc/demo/t.toml:4:8: node 'a' has host = \"10.1.1.1\" but no port: "
              "add port = N");
  }
  SUBCASE("shared memory between different hosts") {
    auto e = error_of("[[nodes]]\nname = \"a\"\nservices = [\"s\"]\n"
                      "[[nodes]]\nname = \"b\"\nservices = [\"t\"]\nhost = \"10.0.0.9\"\n"
                      "port = 7000\n[[links]]\nbetween = [\"a\", \"b\"]\nkind = \"shm\"\n");
    CHECK_HAS(e, "/etc/demo/t.toml:11:8: [[links]] key 'kind': \"shm\" needs both nodes "
                 "on one host, but 'a' is on this host and 'b' on 10.0.0.9; use \"tcp\" "
                 "between hosts");
  }
  SUBCASE("an unreadable secret file") {
    CHECK_HAS(error_of("[link_defaults]\nsecret_file = \"no-such-secret\"\n"
                       "[[nodes]]\nname = \"a\"\nservices = [\"s\"]\n"),
              "/etc/demo/t.toml:2:15: [link_defaults] key 'secret_file': cannot read "
              "'no-such-secret' (resolved to '/etc/demo/no-such-secret')");
  }
  SUBCASE("a [services] table that no node lists") {
    CHECK_HAS(error_of("[[nodes]]\nname = \"a\"\nservices = [\"feed\"]\n"
                       "[services.fed]\ntype = \"x\"\n"),
              "[services.fed] is defined but no node lists it in services = [...]; "
              "did you mean 'feed'?");
  }
  SUBCASE("wrong value kinds and ranges") {
    auto e = error_of("[[nodes]]\nname = \"a\"\nservices = \"s\"\nport = 70000\n"
                      "restart = \"sometimes\"\n");
    CHECK_HAS(e, "node 'a' key 'services': must be a list of strings");
    CHECK_HAS(e, "node 'a' key 'port': 70000 is out of range; use 1 to 65535");
    CHECK_HAS(e, "node 'a' key 'restart': \"sometimes\" is not one of never, "
                 "on-failure, always");
  }
  SUBCASE("a bad placement and ring capacity") {
    auto e = error_of("[link_defaults]\nring_capacity = 1000\n[[nodes]]\nname = \"a\"\n"
                      "services = [\"s\"]\n[services.s]\nplacement = \"lop\"\n");
    CHECK_HAS(e, "ring_capacity': 1000 must be a power of two from 64 bytes to 1GiB");
    CHECK_HAS(e, "[services.s] key 'placement': \"lop\" is not one of pool, loop; "
                 "did you mean 'loop'?");
  }
  SUBCASE("command nodes need a command; binary is for cpp nodes") {
    auto e = error_of("[[nodes]]\nname = \"a\"\nservices = [\"s\"]\nruntime = \"command\"\n"
                      "[[nodes]]\nname = \"b\"\nservices = [\"t\"]\ncommand = [\"x\"]\n");
    CHECK_HAS(e, "node 'a' has runtime = \"command\" but no command");
    CHECK_HAS(e, "node 'b' key 'command': applies only to runtime = \"command\"");
  }
  SUBCASE("after names a node that does not exist, or forms a cycle") {
    CHECK_HAS(error_of("[[nodes]]\nname = \"a\"\nservices = [\"s\"]\nafter = [\"b\"]\n"),
              "node 'a' key 'after': no node is named 'b'");
    CHECK_HAS(error_of("[[nodes]]\nname = \"a\"\nservices = [\"s\"]\nafter = [\"b\"]\n"
                       "[[nodes]]\nname = \"b\"\nservices = [\"t\"]\nafter = [\"a\"]\n"),
              "the 'after' lists form a cycle through node 'a'");
  }
  SUBCASE("two nodes on one socket path or port") {
    auto e = error_of("[[nodes]]\nname = \"a\"\nservices = [\"s\"]\n"
                      "endpoint = { path = \"x.sock\" }\nport = 7000\n"
                      "[[nodes]]\nname = \"b\"\nservices = [\"t\"]\n"
                      "endpoint = { path = \"x.sock\" }\nport = 7000\n");
    CHECK_HAS(e, "nodes 'a' and 'b' share the socket path '/etc/demo/x.sock'");
    CHECK_HAS(e, "nodes 'a' and 'b' both use port 7000 on 127.0.0.1");
  }
  SUBCASE("an shm_dir other than /dev/shm") {
    CHECK_HAS(error_of("shm_dir = \"/mnt/huge\"\n[[nodes]]\nname = \"a\"\nservices = [\"s\"]\n"),
              "shm_dir': \"/mnt/huge\" is not supported: segments are POSIX shared "
              "memory and live in /dev/shm");
  }
  SUBCASE("several problems are reported together, in file order") {
    auto e = error_of("bogus = 1\n[[nodes]]\nname = \"a\"\nservices = [\"s\"]\nport = 0\n");
    auto first = e.find("t.toml:1:");
    auto second = e.find("t.toml:5:");
    CHECK(first != std::string::npos);
    CHECK(second != std::string::npos);
    CHECK(first < second);
  }
}

TEST_CASE("topology: a node's cpus is a CPU number or a list of them") {
  const std::string node = "[[nodes]]\nname = \"a\"\nservices = [\"s\"]\n";
  CHECK(must_load(node).nodes[0].cpus.empty());
  CHECK(must_load(node + "cpus = 1\n").nodes[0].cpus == std::vector<int>{1});
  auto t = must_load(node + "cpus = [0, -1]\n");
  CHECK(t.nodes[0].cpus == std::vector<int>{0, -1});
  CHECK(t.nodes[0].cpus_at.line == 4);
  CHECK_HAS(error_of(node + "cpus = []\n"),
            "t.toml:4:8: node 'a' key 'cpus': the array is empty");
  CHECK_HAS(error_of(node + "cpus = [\"2\"]\n"),
            "t.toml:4:9: node 'a' key 'cpus': not an integer: write a CPU number or an "
            "array of them");
  CHECK_HAS(error_of(node + "cpus = [1, 1]\n"), "key 'cpus': CPU 1 is named twice");
  CHECK_HAS(error_of(node + "cpus = 4096\n"), "key 'cpus': 4096 is out of range");
  CHECK_HAS(error_of(node + "cpu = 1\n"), "did you mean 'cpus'");
}

TEST_CASE("topology: [[daemons]] start the nodes of their host, with checks") {
  char secret[] = "/tmp/myc-topology-secret-XXXXXX";
  int fd = ::mkstemp(secret);
  REQUIRE(fd >= 0);
  REQUIRE(::write(fd, "s3cret\n", 7) == 7);
  ::close(fd);
  const std::string nodes = "[[nodes]]\nname = \"a\"\nservices = [\"s\"]\nport = 7000\n"
                            "[[nodes]]\nname = \"b\"\nservices = [\"t\"]\n"
                            "host = \"10.0.0.2\"\nport = 7001\n";
  SUBCASE("a daemon serves the nodes whose host is its host") {
    auto t = must_load(nodes + "[[daemons]]\nhost = \"10.0.0.2\"\nport = 7100\n"
                               "secret_file = \"" + secret + "\"\n");
    REQUIRE(t.daemons.size() == 1);
    CHECK(t.daemons[0].port == 7100);
    CHECK(t.daemons[0].secret_file == secret);
    CHECK(t.daemon_for(*t.find_node("b")) == &t.daemons[0]);
    CHECK(t.daemon_for(*t.find_node("a")) == nullptr);
    auto plan = plan_deployment(t);
    REQUIRE_MESSAGE(plan, (plan ? "" : render(plan.error())));
    CHECK_HAS(plan_table(t, *plan, {}), "b     10.0.0.2   cpp      the node binary in the daemon at 10.0.0.2:7100");
  }
  SUBCASE("a node in a daemon cannot be pinned") {
    CHECK_HAS(error_of("[[nodes]]\nname = \"a\"\nservices = [\"s\"]\n"
                       "host = \"127.0.0.2\"\nport = 7001\ncpus = [0]\n"
                       "[[daemons]]\nhost = \"127.0.0.2\"\nport = 7100\n"),
              "node 'a' starts through the daemon of host '127.0.0.2' (line 7), inside "
              "the daemon's process: cpus cannot apply there");
  }
  SUBCASE("a loopback daemon needs no secret") {
    auto t = must_load("[[nodes]]\nname = \"a\"\nservices = [\"s\"]\n"
                       "host = \"127.0.0.2\"\nport = 7001\n"
                       "[[daemons]]\nhost = \"127.0.0.2\"\nport = 7100\n");
    CHECK(t.daemon_for(t.nodes[0]) != nullptr);
  }
  SUBCASE("another address needs a secret") {
    CHECK_HAS(error_of(nodes + "[[daemons]]\nhost = \"10.0.0.2\"\nport = 7100\n"),
              "t.toml:10:1: the daemon of host '10.0.0.2' is not on loopback and has "
              "no secret_file");
  }
  SUBCASE("host and port are required; one daemon per host") {
    CHECK_HAS(error_of(nodes + "[[daemons]]\nport = 7100\n"),
              "[[daemons]] entry without a host");
    CHECK_HAS(error_of(nodes + "[[daemons]]\nhost = \"127.0.0.1\"\n"),
              "[[daemons]] entry for host '127.0.0.1' without a port");
    CHECK_HAS(error_of(nodes + "[[daemons]]\nhost = \"10.0.0.2\"\nport = 7100\n"
                               "secret_file = \"" + secret + "\"\n"
                               "[[daemons]]\nhost = \"10.0.0.2\"\nport = 7101\n"
                               "secret_file = \"" + secret + "\"\n"),
              "a second [[daemons]] entry for host '10.0.0.2' (the first is at line 10)");
  }
  SUBCASE("a daemon for a host no node has") {
    CHECK_HAS(error_of(nodes + "[[daemons]]\nhost = \"10.0.0.3\"\nport = 7100\n"
                               "secret_file = \"" + secret + "\"\n"),
              "no node has host = \"10.0.0.3\", so this daemon starts nothing; did "
              "you mean '10.0.0.2'?");
  }
  SUBCASE("what cannot apply inside a daemon") {
    auto with = [&](const std::string& extra) {
      return error_of("[[nodes]]\nname = \"b\"\nservices = [\"t\"]\n"
                      "host = \"127.0.0.2\"\nport = 7001\n" + extra
                      + "[[daemons]]\nhost = \"127.0.0.2\"\nport = 7100\n");
    };
    CHECK_HAS(with("runtime = \"python\"\n"),
              "node 'b' starts through the daemon of host '127.0.0.2' (line 7), inside "
              "the daemon's process: a daemon runs C++ nodes only");
    CHECK_HAS(with("env = { A = \"1\" }\n"), "env cannot apply there");
    CHECK_HAS(with("workdir = \"/tmp\"\n"), "workdir cannot apply there");
  }
  SUBCASE("a daemon's keys are checked") {
    CHECK_HAS(error_of(nodes + "[[daemons]]\nhost = \"10.0.0.2\"\nprot = 7100\n"),
              "[[daemons]] unknown key 'prot'");
  }
  ::unlink(secret);
}

TEST_CASE("topology: service types must be registered by the node's binary") {
  auto t = must_load("binary = \"node-bin\"\n[[nodes]]\nname = \"a\"\n"
                     "services = [\"feed\"]\n[services.feed]\ntype = \"demo.fed\"\n");
  auto err = check_service_types(t, {{"node-bin", {"demo.feed", "demo.risk"}}});
  REQUIRE(err);
  auto text = render(err);
  CHECK_HAS(text, "/etc/demo/t.toml:6:8: service 'feed' has type 'demo.fed', which node "
                  "'a''s binary node-bin does not register; did you mean 'demo.feed'? "
                  "(it registers: demo.feed, demo.risk)");
  CHECK_FALSE(check_service_types(t, {{"node-bin", {"demo.fed"}}}));
  CHECK_FALSE(check_service_types(t, {})); // binary unknown: not checked
}

TEST_CASE("topology: routes follow hosts; links form a mesh that does not relay") {
  auto t = must_load(R"(
[[nodes]]
name = "md"
services = ["feed"]
endpoint = { kind = "shm" }
port = 7001

[[nodes]]
name = "alpha"
services = ["signal"]
port = 7002

[[nodes]]
name = "remote"
services = ["risk"]
host = "127.0.0.9"
port = 7009
)");
  auto p = plan_deployment(t);
  REQUIRE_MESSAGE(p, (p ? "" : render(p.error())));
  CHECK(p->start_order == std::vector<std::string>{"md", "alpha", "remote"});
  // alpha -> md (same host: md's shm endpoint); remote -> md and remote ->
  // alpha (another host: TCP to their ports on this host).
  REQUIRE(p->links.size() == 3);
  auto& l0 = p->links[0];
  CHECK(l0.connector == "alpha");
  CHECK(l0.listener == "md");
  CHECK(l0.config.kind == link_kind::shm);
  CHECK(l0.config.role == link_role::connect);
  CHECK(l0.config.address == t.socket_dir + "/md.sock");
  CHECK_FALSE(l0.config.relay);
  auto& l1 = p->links[1];
  CHECK(l1.connector == "remote");
  CHECK(l1.listener == "md");
  CHECK(l1.config.kind == link_kind::tcp);
  CHECK(l1.config.port == 7001);
  CHECK(p->links[2].config.port == 7002);
  CHECK(p->peers_of("md") == std::vector<std::string>{"alpha", "remote"});
  auto md = p->link_configs("md");
  REQUIRE(md.size() == 2); // shm listener for alpha, TCP listener for remote
  CHECK(md[0].role == link_role::listen);
}

TEST_CASE("topology: a node reached from another host needs a port") {
  auto t = must_load("[[nodes]]\nname = \"a\"\nservices = [\"s\"]\n"
                     "[[nodes]]\nname = \"b\"\nservices = [\"t\"]\nhost = \"10.0.0.2\"\n"
                     "port = 7002\n");
  auto p = plan_deployment(t);
  REQUIRE_FALSE(p);
  CHECK_HAS(render(p.error()), "node 'a' is reached over TCP from node 'b' on another "
                               "host but has no port: add port = N to node 'a'");
}

TEST_CASE("topology: per-link settings get their own listener; defaults apply everywhere") {
  auto t = must_load(R"(
[link_defaults]
wait = "busy_poll"

[[nodes]]
name = "a"
services = ["s"]

[[nodes]]
name = "b"
services = ["t"]

[[nodes]]
name = "c"
services = ["u"]

[[links]]
between = ["c", "a"]
overflow = "drop_newest"
)");
  auto p = plan_deployment(t);
  REQUIRE_MESSAGE(p, (p ? "" : render(p.error())));
  REQUIRE(p->links.size() == 3);
  for (auto& l : p->links)
    CHECK(l.config.wait == transports::wait_mode::busy_poll);
  auto& ba = p->links[0];
  auto& ca = p->links[1];
  CHECK(ba.config.address == t.socket_dir + "/a.sock");
  CHECK(ba.config.overflow == overflow_policy::block);
  CHECK(ca.config.address == t.socket_dir + "/a.sock.c");
  CHECK(ca.config.overflow == overflow_policy::drop_newest);
  CHECK(p->listeners[ca.listener_index].config.overflow == overflow_policy::drop_newest);
}

TEST_CASE("topology: the plan report lists nodes, services, links and types") {
  auto t = must_load("binary = \"node-bin\"\n[[nodes]]\nname = \"a\"\nservices = [\"s\"]\n"
                     "[[nodes]]\nname = \"b\"\nservices = [\"t\"]\n"
                     "[services.t]\nplacement = \"loop\"\n");
  auto p = plan_deployment(t);
  REQUIRE(p);
  service_interest interest{{"a", {{"s", {"fill", "mycelium.deployment_ready"}}}},
                            {"b", {{"t", {"quote"}}}}};
  auto text = plan_table(t, *p, interest);
  CHECK_HAS(text, "deployment 't' (/etc/demo/t.toml)");
  CHECK_HAS(text, "node-bin");
  CHECK_HAS(text, "loop");
  CHECK_HAS(text, "b -> a: fill; a -> b: quote"); // node-local types never cross
  auto json = plan_json(t, *p, interest);
  CHECK_HAS(json, "\"name\":\"t\"");
  CHECK_HAS(json, "\"placement\":\"loop\"");
  CHECK_HAS(json, "\"kind\":\"unix\"");
  CHECK_HAS(json, "\"types_to_listener\":[\"fill\"]");
  CHECK_HAS(json, "\"types_to_connector\":[\"quote\"]");
}

TEST_CASE("topology: command nodes get their links as text") {
  auto t = must_load("[[nodes]]\nname = \"a\"\nservices = [\"s\"]\nendpoint = { kind = \"shm\" }\n"
                     "[[nodes]]\nname = \"risk\"\nruntime = \"command\"\n"
                     "command = [\"risk-node\"]\nservices = [\"r\"]\ncontrol = true\n");
  CHECK(t.nodes[0].control);
  CHECK(t.nodes[1].control);
  auto p = plan_deployment(t);
  REQUIRE(p);
  auto text = p->links_text(t, "risk");
  CHECK(text == "name=risk->a role=connect kind=shm address=" + t.socket_dir
                  + "/a.sock port=0 peers=a wait=spin_then_block spin_us=100 "
                    "ring_capacity=4194304 overflow=block send_queue=4096 "
                    "max_payload=1048576 heartbeat_ms=100 peer_timeout_ms=1000 "
                    "secret_file=-\n");
  auto listen = p->links_text(t, "a");
  CHECK_HAS(listen, "name=a:shm role=listen kind=shm");
  CHECK_HAS(listen, "peers=risk ");
  // The command node's loop_wait applies to its links: the more eager wins.
  auto links_of = [](const std::string& risk_keys, const std::string& rest,
                     const std::string& node) {
    auto t = must_load("[[nodes]]\nname = \"a\"\nservices = [\"s\"]\n"
                       "[[nodes]]\nname = \"risk\"\nruntime = \"command\"\n"
                       "command = [\"risk-node\"]\nservices = [\"r\"]\n"
                       + risk_keys + rest);
    auto p = plan_deployment(t);
    REQUIRE(p);
    return p->links_text(t, node);
  };
  CHECK_HAS(links_of("loop_wait = \"busy_poll\"\n", "", "risk"), " wait=busy_poll spin_us=0 ");
  CHECK_HAS(links_of("loop_wait = \"busy_poll\"\n", "", "a"),
            " wait=spin_then_block spin_us=100 "); // the peer keeps the link's
  CHECK_HAS(links_of("loop_wait = \"spin_then_block\"\nloop_spin = \"2ms\"\n",
                     "[link_defaults]\nwait = \"block\"\n", "risk"),
            " wait=spin_then_block spin_us=2000 ");
  CHECK_HAS(links_of("loop_wait = \"block\"\n", "", "risk"),
            " wait=spin_then_block spin_us=100 ");
  auto plain = must_load("[[nodes]]\nname = \"x\"\nruntime = \"command\"\ncommand = [\"y\"]\n");
  CHECK_FALSE(plain.nodes[0].control);
}

TEST_CASE("topology: command nodes get their services and parameters as text") {
  auto t = must_load("[[nodes]]\nname = \"risk\"\nruntime = \"command\"\n"
                     "command = [\"risk-node\"]\nservices = [\"limits\", \"audit\"]\n"
                     "[services.limits]\ntype = \"demo.limits\"\nplacement = \"loop\"\n"
                     "params = { max_qty = 100, notional = 1.5e6, on = true, "
                     "desk = \"fx spot=1%\", symbols = [\"A\", \"B\"], nested = { k = 2 } }\n");
  CHECK(services_text(t, "risk")
        == "name=limits type=demo.limits placement=loop p.desk=fx%20spot%3D1%25 "
           "p.max_qty=100 p.nested.k=2 p.notional=1500000.0 p.on=true p.symbols=A,B\n"
           "name=audit type=audit placement=pool\n");
}

TEST_CASE("topology: services text encodes the keys of nested tables too") {
  // A blank in a nested table's key would split the line for the reader.
  auto t = must_load("[[nodes]]\nname = \"n\"\nruntime = \"command\"\n"
                     "command = [\"x\"]\nservices = [\"s\"]\n"
                     "[services.s]\ntype = \"t\"\n"
                     "params = { \"a b\" = { \"c=d\" = 1 } }\n");
  CHECK(services_text(t, "n") == "name=s type=t placement=pool p.a%20b.c%3Dd=1\n");
}
