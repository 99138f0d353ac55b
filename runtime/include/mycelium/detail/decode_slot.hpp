#pragma once

#include <cstddef>
#include <cstdint>

#include "mycelium/codec.hpp"
#include "mycelium/errc.hpp"

namespace mycelium::detail {

/// One reused value of a generated message type per thread, for the receive
/// paths that decode a frame, hand the value to a visitor and forget it
/// (`schema_descriptor::visit`). Decoding into the same value again keeps
/// the buffers of its `bytes`, `string` and vector members, so a link that
/// delivers to loop services allocates nothing per message once those
/// buffers are as large as the frames (a fresh value allocated one buffer
/// per such field and frame). A visitor that moves the value out (boxing it
/// for a mailbox) takes the buffers with it; the next frame allocates again.
///
/// Each thread keeps, per type it decoded, the largest buffers it has seen:
/// at most the schema's `max` per field.
///
/// Thread-safety: thread-local. A nested use on the same thread (a visitor
/// that decodes the same type again before it returns) gets a fresh value.
template <class T>
class decode_slot {
public:
  /// Decodes `n` bytes at `p` into this thread's value of `T` and calls
  /// `f(T&)` with it; the value is valid until `f` returns. Returns the
  /// decode error (then `f` is not called).
  template <class F>
  static errc visit(const uint8_t* p, size_t n, F&& f) {
    auto& s = instance();
    if (s.busy_) {
      T x;
      auto e = decode_payload(p, n, x);
      if (e == errc::none)
        f(x);
      return e;
    }
    s.busy_ = true;
    struct release {
      decode_slot& s;
      ~release() { s.busy_ = false; }
    } guard{s};
    auto e = decode_payload(p, n, s.value_);
    if (e == errc::none)
      f(s.value_);
    return e;
  }

private:
  static decode_slot& instance() {
    thread_local decode_slot s;
    return s;
  }

  T value_;
  bool busy_ = false;
};

} // namespace mycelium::detail
