#pragma once

// A real child process for multi-process tests: stdin and stdout are pipes,
// stderr goes to a file the test can read. The destructor closes stdin
// (well-behaved peers exit on EOF), kills what is still running after 5 s and
// reaps it, so a failing test never leaves a process behind.

#include <chrono>
#include <csignal>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

#include <fcntl.h>
#include <poll.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

extern char** environ;

namespace mycelium::conformance {

class child_process {
public:
  child_process(const std::vector<std::string>& argv, std::string stderr_path)
    : stderr_path_(std::move(stderr_path)) {
    int in[2];
    int out[2];
    if (::pipe2(in, O_CLOEXEC) != 0 || ::pipe2(out, O_CLOEXEC) != 0)
      throw std::runtime_error("pipe failed");
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
    int rc = ::posix_spawn(&pid_, args[0], &fa, nullptr, args.data(), environ);
    posix_spawn_file_actions_destroy(&fa);
    ::close(in[0]);
    ::close(out[1]);
    stdin_ = in[1];
    stdout_ = out[0];
    if (rc != 0) {
      pid_ = -1;
      throw std::runtime_error("cannot start " + argv[0]);
    }
  }

  ~child_process() {
    // Closing stdin asks a peer to exit cleanly (so sanitizers can report
    // at exit); one that does not within 5 s is killed.
    close_stdin();
    if (wait_exit(std::chrono::seconds(5)) < 0) {
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
};

} // namespace mycelium::conformance
