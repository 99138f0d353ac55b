#include "launcher.hpp"

#include "cpu_affinity.hpp"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/file.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <random>
#include <set>
#include <sstream>

#include <fmt/format.h>

#include "mycelium/detail/json.hpp"
#include "mycelium/errc.hpp"
#include "mycelium/transports/shm/segment.hpp"

namespace mycelium::run {

namespace fs = std::filesystem;
using detail::json_quote;
using namespace std::chrono_literals;

namespace {

std::string wall_time() {
  auto now = std::chrono::system_clock::now();
  auto t = std::chrono::system_clock::to_time_t(now);
  auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(
              now.time_since_epoch()).count() % 1000;
  std::tm tm{};
  ::localtime_r(&t, &tm);
  return fmt::format("{:02}:{:02}:{:02}.{:03}", tm.tm_hour, tm.tm_min, tm.tm_sec, ms);
}

double seconds_since(clock::time_point t) {
  return std::chrono::duration<double>(clock::now() - t).count();
}

/// Takes the deployment's lock; -1 and `holder` set when a live launcher
/// holds it.
int take_lock(const deployment_dir& dir, std::string& holder) {
  int fd = ::open(dir.lock_file().c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (fd < 0) {
    holder = fmt::format("cannot open {}: {}", dir.lock_file(), ::strerror(errno));
    return -1;
  }
  if (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
    char buf[32] = {};
    [[maybe_unused]] auto n = ::pread(fd, buf, sizeof(buf) - 1, 0);
    holder = fmt::format("a launcher (pid {}) is running this deployment; stop it "
                         "first, or use `mycelium-run status`", std::string{buf});
    ::close(fd);
    return -1;
  }
  auto pid = std::to_string(::getpid());
  [[maybe_unused]] auto r = ::ftruncate(fd, 0);
  [[maybe_unused]] auto w = ::pwrite(fd, pid.data(), pid.size(), 0);
  return fd;
}

/// Removes sockets and other leftovers of a deployment directory (not the
/// lock and not the logs).
std::vector<std::string> remove_leftovers(const deployment_dir& dir) {
  std::vector<std::string> out;
  std::error_code ec;
  for (auto& e : fs::directory_iterator(dir.root, ec)) {
    auto name = e.path().filename().string();
    if (name == "launcher.lock" || name == "logs")
      continue;
    if (e.is_socket(ec) || (name.size() > 5 && name.substr(name.size() - 5) == ".sock")) {
      fs::remove(e.path(), ec);
      if (!ec)
        out.push_back(e.path().string());
    }
  }
  for (auto& s : transports::shm::remove_stale_segments())
    out.push_back("/dev/shm/" + s);
  return out;
}

} // namespace

caf::expected<std::vector<std::string>> clean_deployment(const deployment_dir& dir) {
  std::error_code ec;
  if (!fs::exists(dir.root, ec))
    return std::vector<std::string>{};
  std::string holder;
  int fd = take_lock(dir, holder);
  if (fd < 0)
    return make_error(errc::config_invalid, holder);
  auto out = remove_leftovers(dir);
  ::unlink(dir.lock_file().c_str());
  ::close(fd);
  return out;
}

namespace {

/// What a pending `status` request waits for.
struct status_request {
  int client = -1;
  bool json = false;
  clock::time_point deadline{};
  std::set<std::string> waiting;
  std::map<std::string, std::string> replies;           ///< node -> JSON
  std::map<std::string, std::vector<std::string>> rows; ///< node -> link rows
};

class launcher {
public:
  launcher(const topology::topology& t, const topology::deployment_plan& p,
           const run_options& o)
    : t_(t), p_(p), o_(o) {
    dir_.root = t.socket_dir;
    for (auto& name : p.start_order) {
      nodes_.emplace_back();
      nodes_.back().spec = t.find_node(name);
    }
  }

  int run() {
    if (auto code = setup(); code != 0)
      return code;
    start_ = clock::now();
    say(fmt::format("starting deployment '{}' ({} nodes) from {}", t_.name,
                    nodes_.size(), t_.file));
    while (!done_) {
      start_due_nodes();
      poll_once();
      on_timers();
    }
    return finish();
  }

private:
  // -- set-up and tear-down -------------------------------------------------------

  int setup() {
    std::error_code ec;
    fs::create_directories(dir_.root, ec);
    if (ec) {
      std::cerr << "mycelium-run: error: cannot create " << dir_.root << ": "
                << ec.message() << "\n";
      return 2;
    }
    fs::permissions(dir_.root, fs::perms::owner_all, fs::perm_options::replace, ec);
    std::string holder;
    lock_fd_ = take_lock(dir_, holder);
    if (lock_fd_ < 0) {
      std::cerr << "mycelium-run: error: " << dir_.root << ": " << holder << "\n";
      return 2;
    }
    // What a crashed or killed earlier run left behind.
    for (auto& x : remove_leftovers(dir_))
      say("removed a leftover of an earlier run: " + x);
    log_dir_ = !o_.log_dir.empty() ? o_.log_dir
               : !t_.log_dir.empty() ? t_.log_dir
                                     : dir_.default_log_dir();
    fs::create_directories(log_dir_, ec);
    if (ec) {
      std::cerr << "mycelium-run: error: cannot create the log directory " << log_dir_
                << ": " << ec.message() << "\n";
      return 2;
    }
    for (auto& n : nodes_) {
      auto path = log_dir_ + "/" + n.spec->name + ".log";
      logs_[n.spec->name].open(path, std::ios::trunc);
    }
    logs_["mycelium-run"].open(log_dir_ + "/mycelium-run.log", std::ios::trunc);
    sigset_t sigs;
    sigemptyset(&sigs);
    for (int s : {SIGINT, SIGTERM, SIGHUP, SIGCHLD, SIGPIPE})
      sigaddset(&sigs, s);
    ::sigprocmask(SIG_BLOCK, &sigs, nullptr);
    sig_fd_ = ::signalfd(-1, &sigs, SFD_CLOEXEC | SFD_NONBLOCK);
    // The owner-only control socket that `mycelium-run status` talks to.
    listen_fd_ = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    auto path = dir_.control_socket();
    if (path.size() >= sizeof(addr.sun_path)) {
      std::cerr << "mycelium-run: error: control socket path too long: " << path << "\n";
      return 2;
    }
    std::strncpy(addr.sun_path, path.c_str(), sizeof(addr.sun_path) - 1);
    ::unlink(path.c_str());
    auto old = ::umask(077);
    int rc = ::bind(listen_fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr));
    ::umask(old);
    if (rc != 0 || ::listen(listen_fd_, 8) != 0) {
      std::cerr << "mycelium-run: error: cannot listen on " << path << ": "
                << ::strerror(errno) << "\n";
      return 2;
    }
    return 0;
  }

  int finish() {
    for (auto& n : nodes_) {
      if (n.out_fd >= 0)
        drain_output(n, n.out_fd, n.out_partial, "stdout", true);
      if (n.err_fd >= 0)
        drain_output(n, n.err_fd, n.err_partial, "stderr", true);
    }
    ::close(listen_fd_);
    ::unlink(dir_.control_socket().c_str());
    auto left = remove_leftovers(dir_);
    for (auto& x : left)
      say("removed " + x + " (left by a node that did not stop cleanly)");
    std::error_code ec;
    ::unlink(dir_.lock_file().c_str());
    ::close(lock_fd_);
    if (fs::is_empty(dir_.root, ec))
      fs::remove(dir_.root, ec);
    if (exit_code_ == 0)
      say(fmt::format("deployment '{}' stopped cleanly after {:.1f} s", t_.name,
                      seconds_since(start_)));
    else
      say(fmt::format("deployment '{}' failed: {}", t_.name, failure_));
    return exit_code_;
  }

  // -- logs ---------------------------------------------------------------------

  void emit(const std::string& node, const char* stream, const std::string& text) {
    auto ts = wall_time();
    if (o_.json)
      std::cout << fmt::format("{{\"time\":{},\"node\":{},\"stream\":{},\"text\":{}}}\n",
                               json_quote(ts), json_quote(node), json_quote(stream),
                               json_quote(text));
    else
      std::cout << "[" << node << "] " << text << "\n";
    std::cout.flush();
    if (auto i = logs_.find(node); i != logs_.end()) {
      i->second << ts << " " << text << "\n";
      i->second.flush();
    }
  }

  void say(const std::string& text) {
    if (!o_.quiet)
      emit("mycelium-run", "launcher", text);
    else if (auto i = logs_.find("mycelium-run"); i != logs_.end())
      i->second << wall_time() << " " << text << "\n" << std::flush;
  }

  /// Reads what a node wrote; emits complete lines (and the rest at EOF).
  void drain_output(node_process& n, int& fd, std::string& partial,
                    const char* stream, bool final_read = false) {
    std::vector<std::string> lines;
    bool eof = topology::read_lines(fd, partial, lines);
    for (auto& line : lines)
      emit(n.spec->name, stream, line);
    if (eof || final_read) {
      if (!partial.empty())
        emit(n.spec->name, stream, partial);
      partial.clear();
      if (eof) {
        ::close(fd);
        fd = -1;
      }
    }
  }

  // -- starting -------------------------------------------------------------------

  bool after_satisfied(const node_process& n) const {
    for (auto& a : n.spec->after)
      for (auto& m : nodes_)
        if (m.spec->name == a
            && !(m.state == node_state::started || m.state == node_state::linked
                 || m.state == node_state::ready))
          return false;
    return true;
  }

  /// With --shuffle: whether `n` is the next node of the random order and
  /// its random delay has passed.
  bool shuffled_turn(const node_process& n) {
    if (!o_.shuffle_seed)
      return after_satisfied(n);
    if (shuffled_.empty()) {
      std::mt19937_64 rng{*o_.shuffle_seed};
      for (auto& m : nodes_)
        shuffled_.push_back(m.spec->name);
      std::shuffle(shuffled_.begin(), shuffled_.end(), rng);
      std::string order;
      for (auto& s : shuffled_)
        order += (order.empty() ? "" : ", ") + s;
      say("--shuffle: starting nodes in the order " + order);
      rng_.seed(*o_.shuffle_seed + 1);
      next_start_ = clock::now();
    }
    if (next_index_ >= shuffled_.size() || shuffled_[next_index_] != n.spec->name
        || clock::now() < next_start_)
      return false;
    ++next_index_;
    next_start_ = clock::now() + std::chrono::milliseconds{rng_() % 51};
    return true;
  }

  void start_due_nodes() {
    if (stopping_)
      return;
    for (auto& n : nodes_) {
      bool due = (n.state == node_state::idle && shuffled_turn(n))
                 || (n.state == node_state::backoff && clock::now() >= n.restart_at);
      if (!due)
        continue;
      if (!n.spec->local() && t_.daemon_for(*n.spec) == nullptr) {
        fail(fmt::format("node '{}' is on host {}: start the node binary there as "
                         "its node daemon (`{} --serve {}:PORT --secret-file FILE`) "
                         "and add a [[daemons]] entry with host = \"{}\", that port "
                         "and secret_file (docs/topology.md section 7)",
                         n.spec->name, n.spec->host, n.spec->binary, n.spec->host,
                         n.spec->host));
        return;
      }
      std::vector<std::string> extra;
      if (n.spec->runtime == topology::node_runtime::cpp)
        extra = {"--ready-timeout", std::to_string(o_.ready_timeout.count())};
      auto restarted = n.state == node_state::backoff;
      std::vector<std::string> env;
      if (n.spec->runtime == topology::node_runtime::command)
        env.push_back("MYCELIUM_LINKS=" + p_.links_text(t_, n.spec->name));
      if (n.spec->runtime == topology::node_runtime::command)
        env.push_back("MYCELIUM_SERVICES=" + topology::services_text(t_, n.spec->name));
      if (auto err = spawn(n, t_, extra, env); !err.empty()) {
        fail(fmt::format("node '{}' did not start: {}", n.spec->name, err));
        return;
      }
      say(fmt::format("{} node '{}' (pid {}){}: {}", restarted ? "restarted" : "started",
                      n.spec->name, n.pid,
                      n.cpus.empty() ? "" : " on cpus " + cpu_list_text(n.cpus),
                      fmt::join(command_of(*n.spec, t_), " ")));
      if (!n.speaks_control) {
        // An external program: it counts as ready once it runs.
        n.state = node_state::ready;
        check_all_ready();
      }
    }
  }

  // -- the loop -------------------------------------------------------------------

  void poll_once() {
    std::vector<pollfd> fds;
    enum kind { sig, listener, client, ctl, out, err };
    std::vector<std::pair<kind, size_t>> what;
    auto add = [&](int fd, kind k, size_t i) {
      if (fd >= 0) {
        fds.push_back({fd, POLLIN, 0});
        what.emplace_back(k, i);
      }
    };
    add(sig_fd_, sig, 0);
    add(listen_fd_, listener, 0);
    for (size_t i = 0; i < clients_.size(); ++i)
      add(clients_[i], client, i);
    for (size_t i = 0; i < nodes_.size(); ++i) {
      add(nodes_[i].control.fd(), ctl, i);
      add(nodes_[i].out_fd, out, i);
      add(nodes_[i].err_fd, err, i);
    }
    int n = ::poll(fds.data(), fds.size(), static_cast<int>(next_timeout().count()));
    if (n <= 0)
      return;
    for (size_t k = 0; k < fds.size(); ++k) {
      if (fds[k].revents == 0)
        continue;
      auto [kd, i] = what[k];
      switch (kd) {
        case sig: on_signal(); break;
        case listener: on_accept(); break;
        case client: on_client(i); break;
        case ctl: on_control(nodes_[i]); break;
        case out: drain_output(nodes_[i], nodes_[i].out_fd, nodes_[i].out_partial, "stdout"); break;
        case err: drain_output(nodes_[i], nodes_[i].err_fd, nodes_[i].err_partial, "stderr"); break;
      }
    }
    // Clients that were answered are closed; drop them from the list.
    clients_.erase(std::remove(clients_.begin(), clients_.end(), -1), clients_.end());
  }

  std::chrono::milliseconds next_timeout() const {
    auto now = clock::now();
    auto best = now + 1s;
    auto consider = [&](clock::time_point t) { best = std::min(best, t); };
    for (auto& n : nodes_) {
      if (n.state == node_state::backoff)
        consider(n.restart_at);
      if (n.state == node_state::stopping)
        consider(n.kill_at);
    }
    if (deadline_)
      consider(*deadline_);
    if (o_.shuffle_seed && next_index_ < shuffled_.size())
      consider(next_start_);
    if (status_)
      consider(status_->deadline);
    auto d = std::chrono::duration_cast<std::chrono::milliseconds>(best - now);
    return std::max(d, 0ms);
  }

  void on_signal() {
    signalfd_siginfo si{};
    while (::read(sig_fd_, &si, sizeof(si)) == sizeof(si)) {
      if (si.ssi_signo == SIGCHLD) {
        reap();
      } else if (si.ssi_signo != SIGPIPE) {
        if (!stopping_) {
          say(fmt::format("{}: stopping the deployment", ::strsignal(si.ssi_signo)));
          begin_stop();
        } else if (si.ssi_signo == SIGINT) {
          say("second interrupt: killing every node now");
          for (auto& n : nodes_)
            if (n.alive())
              ::kill(-n.pid, SIGKILL);
        }
      }
    }
  }

  void reap() {
    int st = 0;
    pid_t pid;
    while ((pid = ::waitpid(-1, &st, WNOHANG)) > 0) {
      for (auto& n : nodes_)
        if (n.pid == pid)
          on_exit(n, st);
    }
  }

  void on_exit(node_process& n, int st) {
    // Collect its last words before judging.
    if (n.out_fd >= 0)
      drain_output(n, n.out_fd, n.out_partial, "stdout", true);
    if (n.err_fd >= 0)
      drain_output(n, n.err_fd, n.err_partial, "stderr", true);
    bool closed = false;
    for (auto& line : n.control.receive(closed))
      on_control_line(n, line);
    n.control.close();
    ::kill(-n.pid, SIGKILL); // whatever the node left in its group
    n.pid = -1;
    n.last_status = st;
    bool clean = WIFEXITED(st) && WEXITSTATUS(st) == 0;
    auto how = describe_status(st);
    if (stopping_) {
      if (!clean && exit_code_ == 0 && !n.killed_by_us) {
        exit_code_ = 1;
        failure_ = fmt::format("node '{}' did not stop cleanly ({})", n.spec->name, how);
      }
      say(fmt::format("node '{}' stopped ({})", n.spec->name, how));
      n.state = node_state::exited;
      advance_stop();
      return;
    }
    auto why = n.last_error.empty() ? how : how + ": " + n.last_error;
    say(fmt::format("node '{}' exited ({})", n.spec->name, why));
    auto mode = n.spec->restart.mode;
    if (mode == topology::restart_mode::never
        || (mode == topology::restart_mode::on_failure && clean)) {
      n.state = node_state::exited;
      if (!clean) {
        fail(fmt::format("node '{}' failed ({}) and its restart policy is never", n.spec->name, why));
        return;
      }
      if (std::all_of(nodes_.begin(), nodes_.end(),
                      [](auto& m) { return m.state == node_state::exited; })) {
        say("every node has exited");
        done_ = true;
      }
      return;
    }
    auto now = clock::now();
    auto& r = n.restarts;
    while (!r.empty() && now - r.front() > n.spec->restart.window)
      r.pop_front();
    if (r.size() >= n.spec->restart.max_restarts) {
      fail(fmt::format("node '{}' failed {} time(s) within {} s ({}); past its "
                       "max_restarts = {}, the deployment stops",
                       n.spec->name, r.size() + 1, n.spec->restart.window.count() / 1000,
                       why, n.spec->restart.max_restarts));
      n.state = node_state::exited;
      return;
    }
    auto backoff = n.spec->restart.backoff_min * (1 << std::min<size_t>(r.size(), 16));
    backoff = std::min(backoff, n.spec->restart.backoff_max);
    r.push_back(now);
    ++n.restart_count;
    n.state = node_state::backoff;
    n.restart_at = now + backoff;
    say(fmt::format("restarting node '{}' in {} ms (restart {} of at most {} "
                    "within {} s)", n.spec->name, backoff.count(), r.size(),
                    n.spec->restart.max_restarts, n.spec->restart.window.count() / 1000));
  }

  // -- the control channel ----------------------------------------------------------

  void on_control(node_process& n) {
    bool closed = false;
    for (auto& line : n.control.receive(closed))
      on_control_line(n, line);
    if (closed)
      n.control.close(); // the exit itself arrives as SIGCHLD
  }

  void on_control_line(node_process& n, const std::string& line) {
    auto [verb, arg] = topology::split_verb(line);
    if (verb == "started") {
      if (n.state == node_state::starting)
        n.state = node_state::started;
    } else if (verb == "links-up") {
      n.interest.clear();
      std::stringstream ss{arg};
      std::string id;
      while (std::getline(ss, id, ','))
        if (!id.empty())
          n.interest.push_back(static_cast<uint32_t>(std::stoul(id)));
      n.has_interest = true;
      n.state = node_state::linked;
      send_go();
    } else if (verb == "ready") {
      n.state = node_state::ready;
      if (all_ready_) // a restarted node: the others are ready already
        n.control.send(fmt::format("all-ready {}", nodes_.size()));
      check_all_ready();
    } else if (verb == "error") {
      n.last_error = arg.substr(arg.find(' ') + 1);
    } else if (verb == "service-done") {
      if (!o_.until_exit.empty() && arg == o_.until_exit && !stopping_) {
        say(fmt::format("service '{}' finished: stopping the deployment", arg));
        begin_stop();
      }
    } else if (verb == "link") {
      if (status_)
        status_->rows[n.spec->name].push_back(arg);
    } else if (verb == "status") {
      if (status_) {
        status_->replies[n.spec->name] = arg;
        status_->waiting.erase(n.spec->name);
        if (status_->waiting.empty())
          answer_status();
      }
    } else if (verb == "stopped") {
      // the exit follows
    } else {
      say(fmt::format("node '{}' sent an unknown control line: {}", n.spec->name, line));
    }
  }

  /// Tells every linked node what its peers subscribe to, then "go", once
  /// those peers reported.
  void send_go() {
    for (auto& n : nodes_) {
      if (n.state != node_state::linked || n.go_sent_for == n.pid)
        continue;
      auto peers = p_.peers_of(n.spec->name);
      bool all_known = true;
      for (auto& peer : peers)
        for (auto& m : nodes_)
          if (m.spec->name == peer && m.speaks_control && !m.has_interest)
            all_known = false;
      if (!all_known)
        continue;
      for (auto& peer : peers)
        for (auto& m : nodes_)
          if (m.spec->name == peer && m.speaks_control) {
            std::string ids;
            for (auto id : m.interest)
              ids += (ids.empty() ? "" : ",") + std::to_string(id);
            n.control.send("expect " + peer + " " + ids);
          }
      n.control.send("go");
      n.go_sent_for = n.pid;
    }
  }

  void check_all_ready() {
    if (all_ready_ || stopping_)
      return;
    for (auto& n : nodes_)
      if (n.state != node_state::ready)
        return;
    all_ready_ = true;
    say(fmt::format("all {} nodes ready in {:.0f} ms", nodes_.size(),
                    seconds_since(start_) * 1000));
    for (auto& n : nodes_)
      if (n.speaks_control)
        n.control.send(fmt::format("all-ready {}", nodes_.size()));
    if (o_.duration)
      deadline_ = clock::now() + *o_.duration;
  }

  // -- stopping -------------------------------------------------------------------

  void fail(const std::string& why) {
    if (exit_code_ == 0) {
      exit_code_ = 1;
      failure_ = why;
    }
    say("error: " + why);
    begin_stop();
  }

  void begin_stop() {
    if (stopping_)
      return;
    stopping_ = true;
    deadline_.reset();
    for (auto& n : nodes_)
      if (n.state == node_state::idle || n.state == node_state::backoff)
        n.state = node_state::exited;
    advance_stop();
  }

  /// Stops the next live node in reverse start order; done when none is
  /// left.
  void advance_stop() {
    for (auto it = nodes_.rbegin(); it != nodes_.rend(); ++it) {
      auto& n = *it;
      if (!n.alive())
        continue;
      if (n.state == node_state::stopping)
        return; // wait for it
      n.state = node_state::stopping;
      n.kill_at = clock::now() + o_.stop_timeout;
      if (!(n.speaks_control && n.control.send("stop")))
        ::kill(-n.pid, SIGTERM);
      return;
    }
    done_ = true;
  }

  void on_timers() {
    auto now = clock::now();
    if (deadline_ && now >= *deadline_ && !stopping_) {
      say(fmt::format("--duration reached: stopping the deployment"));
      begin_stop();
    }
    if (!all_ready_ && !stopping_ && now - start_ > o_.ready_timeout + 5s) {
      std::string waiting;
      for (auto& n : nodes_)
        if (n.state != node_state::ready)
          waiting += fmt::format("{}{} ({})", waiting.empty() ? "" : ", ",
                                 n.spec->name, to_string(n.state));
      fail(fmt::format("not every node was ready within {} ms: {}",
                       o_.ready_timeout.count() + 5000, waiting));
    }
    for (auto& n : nodes_)
      if (n.state == node_state::stopping && n.alive() && now >= n.kill_at) {
        say(fmt::format("node '{}' did not stop within {} ms: killing it",
                        n.spec->name, o_.stop_timeout.count()));
        ::kill(-n.pid, SIGKILL);
        n.killed_by_us = true;
        if (exit_code_ == 0) {
          exit_code_ = 1;
          failure_ = fmt::format("node '{}' did not stop within {} ms and was killed",
                                 n.spec->name, o_.stop_timeout.count());
        }
        n.kill_at = now + 1h;
      }
    if (status_ && now >= status_->deadline)
      answer_status();
  }

  // -- status ---------------------------------------------------------------------

  void on_accept() {
    for (;;) {
      int fd = ::accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK);
      if (fd < 0)
        return;
      clients_.push_back(fd);
    }
  }

  void on_client(size_t i) {
    int& fd = clients_[i];
    char buf[256];
    auto r = ::read(fd, buf, sizeof(buf));
    if (r <= 0) {
      ::close(fd);
      fd = -1;
      return;
    }
    std::string req(buf, static_cast<size_t>(r));
    if (status_) {
      const char busy[] = "busy: another status request is being answered\n";
      [[maybe_unused]] auto w = ::write(fd, busy, sizeof(busy) - 1);
      ::close(fd);
      fd = -1;
      return;
    }
    status_ = status_request{};
    status_->client = fd;
    status_->json = req.find("json") != std::string::npos;
    status_->deadline = clock::now() + 1s;
    fd = -1; // owned by the request now
    for (auto& n : nodes_)
      if (n.alive() && n.speaks_control && n.control.send("status"))
        status_->waiting.insert(n.spec->name);
    if (status_->waiting.empty())
      answer_status();
  }

  void answer_status() {
    auto& s = *status_;
    std::string out;
    auto state = stopping_ ? "stopping" : all_ready_ ? "running" : "starting";
    if (s.json) {
      out = fmt::format("{{\"deployment\":{},\"file\":{},\"state\":{},\"uptime_s\":{:.3f},"
                        "\"launcher_pid\":{},\"nodes\":[",
                        json_quote(t_.name), json_quote(t_.file), json_quote(state),
                        seconds_since(start_), ::getpid());
      bool first = true;
      for (auto& n : nodes_) {
        auto rep = s.replies.find(n.spec->name);
        out += fmt::format("{}{{\"name\":{},\"pid\":{},\"state\":{},\"uptime_s\":{:.3f},"
                           "\"restarts\":{},\"host\":{},\"runtime\":{},\"status\":{}}}",
                           first ? "" : ",", json_quote(n.spec->name),
                           n.alive() ? n.pid : 0, json_quote(to_string(n.state)),
                           n.alive() ? seconds_since(n.started_at) : 0.0, n.restart_count,
                           json_quote(n.spec->host.empty() ? "localhost" : n.spec->host),
                           json_quote(to_string(n.spec->runtime)),
                           rep == s.replies.end() ? "null" : rep->second);
        first = false;
      }
      out += "]}\n";
    } else {
      out = fmt::format("deployment '{}' {} for {:.1f} s (launcher pid {})\n\n", t_.name,
                        state, seconds_since(start_), ::getpid());
      out += fmt::format("{:<16} {:>8} {:<9} {:>10} {:>8}\n", "NODE", "PID", "STATE",
                         "UPTIME", "RESTARTS");
      for (auto& n : nodes_)
        out += fmt::format("{:<16} {:>8} {:<9} {:>9.1f}s {:>8}\n", n.spec->name,
                           n.alive() ? std::to_string(n.pid) : "-", to_string(n.state),
                           n.alive() ? seconds_since(n.started_at) : 0.0,
                           n.restart_count);
      out += fmt::format("\n{:<16} {:<22} {:<8} {:>5} {:>10} {:>10} {:>8} {:>8}\n", "NODE",
                         "LINK", "STATE", "PEERS", "IN", "OUT", "DROPS", "BACKLOG");
      for (auto& n : nodes_)
        for (auto& row : s.rows[n.spec->name]) {
          // name state peers in out drops backlog (tab-separated)
          std::vector<std::string> f;
          std::stringstream ss{row};
          std::string x;
          while (std::getline(ss, x, '\t'))
            f.push_back(x);
          f.resize(7);
          out += fmt::format("{:<16} {:<22} {:<8} {:>5} {:>10} {:>10} {:>8} {:>8}\n",
                             n.spec->name, f[0], f[1], f[2], f[3], f[4], f[5], f[6]);
        }
    }
    size_t off = 0;
    while (off < out.size()) {
      auto w = ::send(s.client, out.data() + off, out.size() - off, MSG_NOSIGNAL);
      if (w <= 0) {
        if (w < 0 && (errno == EAGAIN || errno == EINTR)) {
          pollfd pfd{s.client, POLLOUT, 0};
          ::poll(&pfd, 1, 100);
          continue;
        }
        break;
      }
      off += static_cast<size_t>(w);
    }
    ::close(s.client);
    status_.reset();
  }

  const topology::topology& t_;
  const topology::deployment_plan& p_;
  const run_options& o_;
  deployment_dir dir_;
  std::vector<node_process> nodes_; ///< in start order
  std::map<std::string, std::ofstream> logs_;
  std::string log_dir_;
  int lock_fd_ = -1;
  int sig_fd_ = -1;
  int listen_fd_ = -1;
  std::vector<int> clients_;
  std::optional<status_request> status_;
  clock::time_point start_{};
  std::optional<clock::time_point> deadline_;
  std::vector<std::string> shuffled_; ///< --shuffle order
  size_t next_index_ = 0;
  clock::time_point next_start_{};
  std::mt19937_64 rng_;
  bool all_ready_ = false;
  bool stopping_ = false;
  bool done_ = false;
  int exit_code_ = 0;
  std::string failure_;
};

} // namespace

int run_deployment(const topology::topology& t, const topology::deployment_plan& p,
                   const run_options& o) {
  launcher l{t, p, o};
  return l.run();
}

} // namespace mycelium::run
