#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include <caf/message.hpp>

#include "mycelium/codec.hpp"
#include "mycelium/errc.hpp"
#include "mycelium/transports/frame_reader.hpp"
#include "mycelium/transports/frame_writer.hpp"
#include "mycelium/transports/link_listener.hpp"
#include "mycelium/transports/reassembly_buffer.hpp"
#include "mycelium/wire/handshake.hpp"

namespace mycelium::transports {

/// Who a link says it is in its hello.
struct link_identity {
  std::string node;
  std::string service;
  uint32_t pid = 0;
};

/// The transport-independent half of every link (sans-I/O), and with
/// `frame_reader` and `frame_writer` the whole link core: the handshake
/// with schema digest and challenge-response authentication (with a shared
/// secret, each side answers the peer's hello nonce with an `auth` frame and
/// is established only once the peer's answer verified), sequence numbers, interest
/// (subscribe / unsubscribe) and heartbeat frames, and decoding of data
/// frames. A transport feeds it received bytes and writes out what it
/// appends to its output buffer. A shared-memory link runs its handshake and
/// control over it too, and its rings through the same `frame_reader` and
/// `frame_writer`, which is what makes every transport speak one protocol.
///
/// Thread-safety: none; owned by one link actor.
class link_protocol {
public:
  /// What the protocol reports to its transport while consuming bytes.
  using listener = link_listener;

  /// `awaiting_auth`: the peer's hello passed and our `auth` frame is out;
  /// only the peer's `auth` (or `refuse`) may come next. Only with a secret.
  enum class state : uint8_t { awaiting_hello, awaiting_auth, established, closed };

  /// Fills a hello nonce; the default is `random_nonce` (auth.hpp).
  using nonce_source = std::function<void(wire::digest128&)>;

  link_protocol(schema_descriptor schema, link_identity self,
                std::string secret, uint32_t max_payload);
  // The frame reader and writer point at `schema_`.
  link_protocol(const link_protocol&) = delete;
  link_protocol& operator=(const link_protocol&) = delete;

  /// Replaces the nonce source for the following `start` calls. Only for
  /// tests and the fuzz target, which need reproducible handshakes; a fixed
  /// nonce makes a captured `auth` frame replayable.
  void set_nonce_source(nonce_source f) { nonce_source_ = std::move(f); }

  /// Starts a new connection: fresh sequence numbers and nonce, empty
  /// buffers. Appends our hello to `out`.
  void start(std::vector<uint8_t>& out);

  /// Consumes received bytes (any split). Returns false once the connection
  /// must close (after `on_refusing`, `on_refused`, `on_goodbye` or
  /// `on_error`).
  bool consume(const uint8_t* data, size_t n, std::vector<uint8_t>& out,
               listener& l);

  /// Appends a data frame holding `msg` (one generated struct). Returns
  /// `frame_too_large` (nothing appended) over `max_payload`, and
  /// `unknown_type` for a message that is not of this schema.
  [[nodiscard]] errc write_data(const caf::message& msg, std::vector<uint8_t>& out) {
    return writer_.write_message(msg, out);
  }

  /// Same for `*value`, a generated struct of `type_id` (no schema search).
  [[nodiscard]] errc write_value(uint32_t type_id, const void* value,
                                 std::vector<uint8_t>& out) {
    return writer_.write_value(type_id, value, out);
  }

  /// Type id and payload size of the last `write_data` call (for errors).
  uint32_t last_type_id() const noexcept { return writer_.last_type_id(); }
  size_t last_payload_size() const noexcept { return writer_.last_payload_size(); }

  void write_interest(uint32_t type_id, bool add, std::vector<uint8_t>& out);
  void write_heartbeat(std::vector<uint8_t>& out);
  void write_shm_attach(const wire::shm_attach& x, std::vector<uint8_t>& out);
  /// Announces a clean close; nothing may follow it.
  void write_goodbye(std::vector<uint8_t>& out);

  state current() const noexcept { return state_; }
  const wire::hello& peer() const noexcept { return peer_; }
  const schema_descriptor& schema() const noexcept { return schema_; }
  uint32_t max_payload() const noexcept { return max_payload_; }

  /// "node 'a' service 'b' (pid 1)" of the peer, or "<no hello yet>".
  std::string peer_name() const;

  /// The hello `start` sent (with its nonce).
  const wire::hello& local_hello() const noexcept { return local_; }

private:
  /// Handles one complete frame; false when the connection must close.
  bool handle(const wire::frame_header& h, const uint8_t* payload,
              std::vector<uint8_t>& out, listener& l);
  /// Handles the frame that must be the peer's hello.
  bool handle_hello(const wire::frame_header& h, const uint8_t* payload,
                    std::vector<uint8_t>& out, listener& l);
  /// Handles the frame that must be the peer's `auth`.
  bool handle_auth(const wire::frame_header& h, const uint8_t* payload,
                   std::vector<uint8_t>& out, listener& l);
  /// The authentication rules on the peer's hello; reason `none` if it passes.
  wire::refuse check_auth_hello(const wire::hello& remote) const;
  /// Closes an established link: the byte stream is broken (on_error).
  bool fail(errc code, const std::string& text, listener& l);
  /// Closes a link that is not established yet with a refuse frame, so the
  /// peer learns why (on_refusing).
  bool refuse_peer(errc code, std::string text, std::vector<uint8_t>& out,
                   listener& l);
  /// `fail` once established, `refuse_peer` before.
  bool reject(errc code, std::string text, std::vector<uint8_t>& out,
              listener& l);

  schema_descriptor schema_;
  link_identity self_;
  std::string secret_;
  uint32_t max_payload_;
  state state_ = state::awaiting_hello;
  wire::hello local_;
  wire::hello peer_;
  frame_writer writer_;
  frame_reader reader_;
  std::string peer_text_; ///< peer_name(), kept for error texts
  reassembly_buffer pending_; ///< bytes of an incomplete frame
  nonce_source nonce_source_;
};

} // namespace mycelium::transports
