#pragma once

#include <atomic>
#include <condition_variable>
#include <mutex>

namespace mycelium::python {

/// Guards a C++ runtime that Python threads call into: calls that started
/// finish before the runtime is torn down, and later calls are refused (a
/// daemon thread still publishing while the interpreter exits must not
/// reach an actor system being destroyed). A call costs two atomic
/// increments; closing never starves behind a stream of calls.
///
/// Thread-safety: every member function is thread-safe.
class runtime_gate {
public:
  /// Held for the length of one call into the runtime.
  class pass {
  public:
    explicit pass(runtime_gate* g) : g_(g) {
      if (g_ == nullptr)
        return;
      g_->in_flight_.fetch_add(1); // seq_cst: pairs with close()
      if (g_->closed_.load()) {
        g_->leave();
        g_ = nullptr;
        refused_ = true;
      }
    }
    ~pass() {
      if (g_ != nullptr)
        g_->leave();
    }
    pass(const pass&) = delete;
    pass& operator=(const pass&) = delete;
    pass(pass&& other) noexcept : g_(other.g_), refused_(other.refused_) {
      other.g_ = nullptr;
    }

    /// Whether the runtime still runs (the call may proceed).
    explicit operator bool() const noexcept { return !refused_; }

  private:
    runtime_gate* g_;
    bool refused_ = false;
  };

  /// Whether `close` began (a long call, such as a wait that runs the I/O
  /// loop, should end soon).
  bool closing() const noexcept { return closed_.load(std::memory_order_relaxed); }

  /// Refuses calls from now on and waits for those in flight.
  void close() {
    closed_.store(true); // seq_cst: a call either sees it or is counted
    std::unique_lock<std::mutex> guard{mtx_};
    cv_.wait(guard, [this] { return in_flight_.load() == 0; });
  }

private:
  void leave() {
    if (in_flight_.fetch_sub(1) == 1 && closed_.load()) {
      std::lock_guard<std::mutex> guard{mtx_};
      cv_.notify_all();
    }
  }

  std::atomic<size_t> in_flight_{0};
  std::atomic<bool> closed_{false};
  std::mutex mtx_;
  std::condition_variable cv_;
};

} // namespace mycelium::python
