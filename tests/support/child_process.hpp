#pragma once

// Real child processes for multi-process tests and benchmarks, and the
// scratch directories they work in. A child's stdin and stdout are pipes,
// stderr goes to a file the caller can read. The destructor closes stdin
// (well-behaved peers exit on EOF), kills what is still running after the
// exit grace period (5 s unless given) and reaps it, so a failing test never
// leaves a process behind. Not thread-safe; one owner per object.

#include <chrono>
#include <csignal>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <system_error>

#include <fcntl.h>
#include <poll.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

extern char** environ;

namespace mycelium::test_support {

class child_process {
public:
  /// Starts `exe` (default: `argv[0]`) with `argv`; throws
  /// std::runtime_error naming the program if that fails.
  child_process(const std::vector<std::string>& argv, std::string stderr_path,
                std::string exe = {},
                std::chrono::milliseconds exit_grace = std::chrono::seconds(5))
    : stderr_path_(std::move(stderr_path)), exit_grace_(exit_grace) {
    if (exe.empty())
      exe = argv.at(0);
    int in[2];
    int out[2];
    if (::pipe2(in, O_CLOEXEC) != 0 || ::pipe2(out, O_CLOEXEC) != 0)
      throw std::runtime_error(std::string{"pipe2: "} + std::strerror(errno));
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, in[0], STDIN_FILENO);
    posix_spawn_file_actions_adddup2(&fa, out[1], STDOUT_FILENO);
    posix_spawn_file_actions_addopen(&fa, STDERR_FILENO, stderr_path_.c_str(),
                                     O_WRONLY | O_CREAT | O_TRUNC, 0600);
    std::vector<char*> args;
    for (auto& a : argv)
      args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    int rc = ::posix_spawn(&pid_, exe.c_str(), &fa, nullptr, args.data(), environ);
    posix_spawn_file_actions_destroy(&fa);
    ::close(in[0]);
    ::close(out[1]);
    stdin_ = in[1];
    stdout_ = out[0];
    if (rc != 0) {
      pid_ = -1;
      throw std::runtime_error("cannot start " + exe + ": " + std::strerror(rc));
    }
  }

  ~child_process() {
    // Closing stdin asks a peer to exit cleanly (so sanitizers can report
    // at exit); one that does not within 5 s is killed.
    close_stdin();
    if (wait_exit(exit_grace_) < 0) {
      kill(SIGCONT);
      kill(SIGKILL);
      wait_exit(std::chrono::seconds(10));
    }
    if (stdout_ >= 0)
      ::close(stdout_);
  }

  child_process(const child_process&) = delete;
  child_process& operator=(const child_process&) = delete;

  pid_t pid() const noexcept { return pid_; }

  /// Reads one line from the child's stdout; "" on timeout or EOF.
  std::string read_line(std::chrono::milliseconds timeout) {
    auto deadline = std::chrono::steady_clock::now() + timeout;
    for (;;) {
      auto nl = buf_.find('\n');
      if (nl != std::string::npos) {
        auto line = buf_.substr(0, nl);
        buf_.erase(0, nl + 1);
        return line;
      }
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
      if (left.count() <= 0)
        return {};
      pollfd p{stdout_, POLLIN, 0};
      if (::poll(&p, 1, static_cast<int>(left.count())) <= 0)
        return {};
      char tmp[512];
      auto n = ::read(stdout_, tmp, sizeof(tmp));
      if (n <= 0)
        return {};
      buf_.append(tmp, static_cast<size_t>(n));
    }
  }

  void kill(int sig) {
    if (pid_ > 0 && !exited_)
      ::kill(pid_, sig);
  }

  void close_stdin() {
    if (stdin_ >= 0) {
      ::close(stdin_);
      stdin_ = -1;
    }
  }

  /// Waits for the exit; returns the exit code, 128+signal, or -1 on timeout.
  int wait_exit(std::chrono::milliseconds timeout) {
    if (pid_ <= 0)
      return -1;
    if (exited_)
      return status_;
    auto deadline = std::chrono::steady_clock::now() + timeout;
    for (;;) {
      int st = 0;
      auto r = ::waitpid(pid_, &st, WNOHANG);
      if (r == pid_) {
        exited_ = true;
        status_ = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
        return status_;
      }
      if (std::chrono::steady_clock::now() >= deadline)
        return -1;
      // waitpid has no timeout: poll the child's state every millisecond.
      ::usleep(1000);
    }
  }

  /// The child's stderr so far.
  std::string stderr_text() const {
    std::ifstream in{stderr_path_};
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
  }

private:
  pid_t pid_ = -1;
  int stdin_ = -1;
  int stdout_ = -1;
  bool exited_ = false;
  int status_ = -1;
  std::string buf_;
  std::string stderr_path_;
  std::chrono::milliseconds exit_grace_;
};

/// A fresh directory `<tmp>/<prefix>XXXXXX`, removed with everything in it
/// on destruction. Throws std::runtime_error if it cannot be created.
struct temp_dir {
  std::filesystem::path path;

  explicit temp_dir(const std::string& prefix) {
    auto tmpl = (std::filesystem::temp_directory_path() / (prefix + "XXXXXX")).string();
    if (::mkdtemp(tmpl.data()) == nullptr) // mkdtemp fills in the Xs
      throw std::runtime_error("mkdtemp " + tmpl + ": " + std::strerror(errno));
    path = tmpl;
  }

  ~temp_dir() {
    std::error_code ec;
    std::filesystem::remove_all(path, ec);
  }

  temp_dir(const temp_dir&) = delete;
  temp_dir& operator=(const temp_dir&) = delete;
};

} // namespace mycelium::test_support
