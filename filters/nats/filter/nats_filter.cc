#include "filters/nats/filter/nats_filter.h"

#include <nlohmann/json.hpp>

namespace evmesh::nats {

// ---------------------------------------------------------------- config

std::unique_ptr<FilterConfig> make_nats_config(evm_config_envoy_ptr config_envoy, std::string_view json,
                                               std::string* error) {
  std::optional<NatsConfig> cfg = parse_nats_config(json, error);
  if (!cfg) return nullptr;
  MetricsBuilder b(config_envoy, "nats." + cfg->stat_prefix + ".");
  NatsMetrics m;
  static_cast<ConnectionMetrics&>(m) = define_connection_metrics(b);
  m.payload_too_large = b.counter("payload_too_large");
  m.c2s_carried = b.counter("c2s.carried_lines");
  m.server_errors = b.counter("server_errors");
  for (size_t i = 0; i < cfg->groups.size(); ++i) {
    const std::string g = "subject." + cfg->groups.name(i) + ".";
    m.groups.push_back({b.counter(g + "published_msgs"), b.counter(g + "published_bytes"),
                        b.counter(g + "delivered_msgs"), b.counter(g + "delivered_bytes"),
                        b.counter(g + "publish_denied"), b.counter(g + "subscribe_denied")});
  }
  if (!b.ok()) {
    *error = b.error();
    return nullptr;
  }
  auto out = std::make_unique<NatsFilterConfig>(b.take(), std::move(m));
  if (!out->pol().setup(std::move(*cfg), json, {"acl", "max_payload"}, &parse_nats_config, error)) return nullptr;
  return out;
}

std::unique_ptr<NetworkFilter> NatsFilterConfig::create(evm_filter_envoy_ptr f) const {
  return std::make_unique<NatsFilter>(*this, f);
}

// ---------------------------------------------------------------- filter

namespace {
constexpr uint64_t kServerPayloadBound = 64ull << 20;
}

NatsFilter::NatsFilter(const NatsFilterConfig& config, evm_filter_envoy_ptr f)
    : config_(config),
      conn_(f),
      deltas_(config.table()),
      // No payload bound in the parser: the filter enforces max_payload itself
      // (payloads are skipped by count, never buffered).
      c2s_(Dir::kClientToServer, Limits{config.cfg().max_control_line, UINT64_MAX}),
      s2c_(Dir::kServerToClient, Limits{config.cfg().max_control_line > 65536 ? config.cfg().max_control_line : 65536,
                                         kServerPayloadBound}),
      max_payload_(config.cfg().max_payload) {
  pol_ = config_.pol().get(&pol_gen_);
  max_payload_ = pol_->max_payload;
  deltas_.add(config_.m().connections_total);
}

NatsFilter::~NatsFilter() {
  if (scheduler_ != nullptr) envoy_dynamic_module_callback_network_filter_scheduler_delete(scheduler_);
}

void NatsFilter::on_event(int event) {
  if (event == EVM_EVENT_REMOTE_CLOSE || event == EVM_EVENT_LOCAL_CLOSE) {
    if (!gauge_closed_) {
      gauge_closed_ = true;
      gauge_add(conn_.raw(), config_.table(), config_.m().connections_active, -1);
    }
    flush_counters();
  }
}

int NatsFilter::on_new_connection() {
  gauge_add(conn_.raw(), config_.table(), config_.m().connections_active, 1);
  deltas_.flush(conn_.raw());
  return EVM_NET_CONTINUE;
}

void NatsFilter::apply_policy() {
  pol_ = config_.pol().get(&pol_gen_);
  const uint64_t configured = pol_->max_payload;
  max_payload_ = (server_max_payload_ != 0 && server_max_payload_ < configured) ? server_max_payload_ : configured;
  last_subject_.clear();  // the cached verdict belongs to the old ACL
  last_allowed_ = true;
  last_group_ = 0;
}

int NatsFilter::on_read(size_t /*length*/, bool end_stream) {
  if (closed_) return EVM_NET_STOP_ITERATION;
  refresh_policy();
  if (closing_) {
    // After a fatal client error nothing more from the client is forwarded.
    conn_.read_chunks(chunks_.views());
    conn_.drain_read(chunks_.total());
    return EVM_NET_STOP_ITERATION;
  }
  if (!carry_.empty()) {
    // The undecided control line drained at the end of the previous read goes
    // back in front of the new bytes; the parser has already seen it.
    conn_.prepend_read(carry_);
    held_ = carry_.size();
    carry_.clear();
  }
  conn_.read_chunks(chunks_.views());
  const size_t total = chunks_.total();
  const uint64_t fed_start = c2s_.offset();
  const uint64_t base = fed_start - held_;  // stream offset of buffer position 0
  drops_.clear();
  if (drop_until_ > fed_start) drops_.push_back({fed_start, drop_until_});
  payload_violation_ = false;

  const bool ok = chunks_.for_each_from(held_, [this](std::string_view piece) {
    return c2s_.feed(piece, [this](const Frame& f) { on_client_frame(f); }) && !payload_violation_;
  });
  deltas_.add(config_.m().c2s_bytes, c2s_.offset() - fed_start);

  // A fatal client error: like nats-server, the frames before it still count
  // (they are forwarded), the client gets -ERR, and the connection closes.
  uint64_t fatal_at = UINT64_MAX;
  if (!ok && c2s_.failed()) {
    deltas_.add(config_.m().c2s_protocol_errors);
    log(EVM_LOG_WARN, "evmesh nats[" + config_.cfg().stat_prefix + "] connection " + std::to_string(conn_.id()) +
                          ": malformed client-to-server frame at " + c2s_.error() + "; closing the connection");
    pending_ += "-ERR '";
    pending_ += c2s_.error_reply();
    pending_ += "'\r\n";
    fatal_at = c2s_.error_offset();
  } else if (payload_violation_) {
    deltas_.add(config_.m().payload_too_large);
    log(EVM_LOG_INFO, "evmesh nats[" + config_.cfg().stat_prefix + "] connection " + std::to_string(conn_.id()) +
                          ": payload above max_payload " + std::to_string(max_payload_) + "; closing");
    pending_ += "-ERR 'Maximum Payload Violation'\r\n";
    fatal_at = violation_start_;
  }
  if (fatal_at != UINT64_MAX) {
    closing_ = true;
    held_ = 0;
    drops_.push_back({fatal_at > base ? fatal_at : base, UINT64_MAX});
  }

  size_t kept_total = total;
  bool rebuilt = false;
  if (!drops_.empty()) {
    const uint64_t end = base + total;
    std::vector<codec::Range> pos;
    for (const auto& d : drops_) {
      if (d.begin < base) {
        // Part of this frame was already forwarded: dropping the rest would
        // corrupt the upstream stream. The hold logic rules this out.
        log(EVM_LOG_ERROR, "evmesh nats[" + config_.cfg().stat_prefix + "] connection " +
                               std::to_string(conn_.id()) + ": internal error: frame to drop was partly forwarded; closing");
        closed_ = true;
        conn_.close(EVM_CLOSE_NO_FLUSH);
        flush_counters();
        return EVM_NET_STOP_ITERATION;
      }
      const uint64_t e = d.end < end ? d.end : end;
      if (d.begin < e) pos.push_back({static_cast<size_t>(d.begin - base), static_cast<size_t>(e - base)});
      if (d.end > end && d.end > drop_until_) drop_until_ = d.end;
    }
    if (!pos.empty()) {
      rebuilt = true;
      if (pos.size() == 1 && pos[0].begin == 0) {
        conn_.drain_read(pos[0].end);  // the tail of an earlier dropped frame: cheap front drain
        kept_total = total - pos[0].end;
      } else {
        const std::string kept = codec::collect_kept(chunks_, total, pos);
        conn_.drain_read(total);
        conn_.append_read(kept);
        kept_total = kept.size();
      }
    }
  }

  if (closing_) {
    flush_pending_to_client();       // now, if the server-to-client stream is at a frame boundary
    if (pending_.empty()) schedule_close();  // else on_write inserts it at the next boundary
    flush_counters();
    return kept_total > 0 ? EVM_NET_CONTINUE : EVM_NET_STOP_ITERATION;
  }

  int status = EVM_NET_CONTINUE;
  held_ = 0;
  if (c2s_.in_control_line() && !end_stream && partial_may_be_dropped(c2s_.partial_line())) {
    // The last control line is incomplete and may yet be denied: it must not
    // reach the broker before its verdict. Small buffers are held in place
    // (zero copy); past the threshold the complete prefix is forwarded and
    // only the line is carried, so the read buffer never reaches its high
    // watermark (which would stop reads for good).
    const size_t line = c2s_.partial_line().size();
    if (kept_total <= hold_threshold() || line >= kept_total) {
      if (line >= kept_total) {
        carry_.assign(c2s_.partial_line());
        conn_.drain_read(kept_total);
      } else {
        held_ = kept_total;
      }
      status = EVM_NET_STOP_ITERATION;
    } else {
      if (rebuilt) conn_.read_chunks(chunks_.views());
      std::string prefix;
      prefix.reserve(kept_total - line);
      chunks_.copy_range(0, kept_total - line, &prefix);
      carry_.assign(c2s_.partial_line());
      conn_.drain_read(kept_total);
      conn_.append_read(prefix);
      deltas_.add(config_.m().c2s_carried);
    }
  }
  flush_pending_to_client();
  flush_counters();
  return status;
}

bool NatsFilter::partial_may_be_dropped(std::string_view line) const {
  const Acl& acl = pol().acl;
  const bool pub = acl.restricts_publish(), sub = acl.restricts_subscribe();
  if (!pub && !sub) return false;
  size_t i = 0;
  while (i < line.size() && line[i] != ' ' && line[i] != '\t') ++i;
  const std::string_view op = line.substr(0, i);
  const auto is = [&](std::string_view name) {  // case-insensitive; a prefix while the op is incomplete
    if (op.size() > name.size() || (i == line.size() ? false : op.size() != name.size())) return false;
    for (size_t k = 0; k < op.size(); ++k) {
      if ((op[k] | 0x20) != name[k]) return false;
    }
    return true;
  };
  const bool is_pub = pub && (is("pub") || is("hpub"));
  const bool is_sub = sub && is("sub");
  if (!is_pub && !is_sub) return false;
  if (i == line.size()) return true;  // the op itself is incomplete
  while (i < line.size() && (line[i] == ' ' || line[i] == '\t')) ++i;
  size_t j = i;
  while (j < line.size() && line[j] != ' ' && line[j] != '\t' && line[j] != '\r') ++j;
  if (j == line.size()) return true;  // the subject may still grow
  const std::string_view subject = line.substr(i, j - i);
  return is_pub ? !acl.allow_publish(subject) : !acl.allow_subscribe(subject);
}

size_t NatsFilter::hold_threshold() const {
  constexpr size_t kMaxHold = 16 * 1024;
  const uint32_t limit = conn_.buffer_limit();
  return (limit != 0 && limit / 2 < kMaxHold) ? limit / 2 : kMaxHold;
}

void NatsFilter::flush_counters() {
  const NatsMetrics& m = config_.m();
  if (c2s_frames_) deltas_.add(m.c2s_frames, c2s_frames_);
  if (s2c_frames_) deltas_.add(m.s2c_frames, s2c_frames_);
  c2s_frames_ = s2c_frames_ = 0;
  deltas_.flush(conn_.raw());
}

void NatsFilter::on_client_frame(const Frame& f) {
  if (payload_violation_) return;
  const NatsMetrics& m = config_.m();
  ++c2s_frames_;
  switch (f.op) {
    case Op::kPub:
    case Op::kHpub: {
      if (f.payload_len > max_payload_) {
        payload_violation_ = true;
        violation_start_ = f.start;
        return;
      }
      if (f.subject != last_subject_) {
        last_subject_.assign(f.subject.data(), f.subject.size());
        last_allowed_ = pol().acl.allow_publish(f.subject);
        last_group_ = config_.cfg().groups.classify(f.subject);
      }
      const NatsMetrics::Group& g = m.groups[last_group_];
      if (!last_allowed_) {
        deltas_.add(g.publish_denied);
        deny(f, "Permissions Violation for Publish to \"" + std::string(f.subject) + "\"");
      } else {
        deltas_.add(g.published_msgs);
        deltas_.add(g.published_bytes, f.payload_len);
      }
      break;
    }
    case Op::kSub:
      if (!pol().acl.allow_subscribe(f.subject)) {
        deltas_.add(m.groups[config_.cfg().groups.classify(f.subject)].subscribe_denied);
        std::string text = "Permissions Violation for Subscription to \"" + std::string(f.subject) + "\"";
        if (!f.queue.empty()) text += " using queue \"" + std::string(f.queue) + "\"";
        deny(f, std::move(text));
      }
      break;
    default:
      break;
  }
}

void NatsFilter::deny(const Frame& f, std::string reply_text) {
  drops_.push_back({f.start, f.start + f.frame_len()});
  pending_ += "-ERR '";
  pending_ += reply_text;
  pending_ += "'\r\n";
  if (log_enabled(EVM_LOG_DEBUG)) {
    log(EVM_LOG_DEBUG, "evmesh nats[" + config_.cfg().stat_prefix + "] connection " + std::to_string(conn_.id()) +
                           ": denied " + op_name(f.op) + " " + std::string(f.subject));
  }
}

void NatsFilter::flush_pending_to_client() {
  if (pending_.empty() || !s2c_.at_frame_boundary()) return;
  in_local_write_ = true;
  conn_.write_to_client(pending_);
  in_local_write_ = false;
  pending_.clear();
}

void NatsFilter::server_protocol_error() {
  deltas_.add(config_.m().s2c_protocol_errors);
  log(EVM_LOG_WARN, "evmesh nats[" + config_.cfg().stat_prefix + "] connection " + std::to_string(conn_.id()) +
                        ": malformed server-to-client frame at " + s2c_.error() + "; closing the connection");
  closed_ = true;
  conn_.close(EVM_CLOSE_NO_FLUSH);
  flush_counters();
}

void NatsFilter::schedule_close() {
  if (scheduler_ == nullptr) scheduler_ = envoy_dynamic_module_callback_network_filter_scheduler_new(conn_.raw());
  envoy_dynamic_module_callback_network_filter_scheduler_commit(scheduler_, kCloseEvent);
}

void NatsFilter::on_scheduled(uint64_t event_id) {
  if (event_id == kCloseEvent && !closed_) {
    closed_ = true;
    conn_.close(EVM_CLOSE_FLUSH_WRITE);  // the -ERR and the forwarded frames go out first
    flush_counters();
  }
}

int NatsFilter::on_write(size_t /*length*/, bool /*end_stream*/) {
  refresh_policy();
  if (in_local_write_) return EVM_NET_CONTINUE;  // our own -ERR, already accounted for
  if (closed_) return EVM_NET_STOP_ITERATION;
  conn_.write_chunks(chunks_.views());
  const size_t total = chunks_.total();
  if (closing_ && pending_.empty()) {
    conn_.drain_write(total);  // the final -ERR is out: nothing after it reaches the client
    return EVM_NET_CONTINUE;
  }
  const uint64_t base = s2c_.offset();
  info_rewrite_ = false;
  auto sink = [this, base](const Frame& f) { on_server_frame(f, base); };
  bool ok = true;
  size_t insert_at = std::string::npos;  // where pending -ERR lines go: the first frame boundary
  if (pending_.empty()) {
    ok = chunks_.for_each_from(0, [this, &sink](std::string_view piece) { return s2c_.feed(piece, sink); });
  } else {
    size_t pos = 0;
    if (s2c_.at_frame_boundary()) insert_at = 0;
    for (const auto& v : chunks_.views()) {
      std::string_view piece(v.ptr, v.length);
      if (insert_at == std::string::npos && !piece.empty()) {
        size_t used = 0;
        ok = s2c_.feed_to_boundary(piece, sink, &used);
        pos += used;
        piece.remove_prefix(used);
        if (ok && s2c_.at_frame_boundary()) insert_at = pos;
      }
      if (!ok || (closing_ && insert_at != std::string::npos)) break;  // closing: the rest is not sent
      if (!piece.empty()) {
        ok = s2c_.feed(piece, sink);
        pos += piece.size();
      }
      if (!ok) break;
    }
  }
  deltas_.add(config_.m().s2c_bytes, s2c_.offset() - base);
  if (!ok && s2c_.failed()) {
    server_protocol_error();
    return EVM_NET_STOP_ITERATION;
  }
  if (info_rewrite_ || insert_at != std::string::npos) {
    struct Edit {
      size_t pos, len;
      std::string_view text;
    };
    Edit edits[2];
    size_t n = 0;
    const bool truncate = closing_ && insert_at != std::string::npos;
    if (insert_at != std::string::npos) edits[n++] = {insert_at, truncate ? total - insert_at : 0, pending_};
    if (info_rewrite_ && !(truncate && info_pos_ >= insert_at)) {
      const Edit info{info_pos_, info_len_, info_line_};
      if (n == 1 && info.pos < edits[0].pos) {
        edits[1] = edits[0];
        edits[0] = info;
      } else {
        edits[n] = info;
      }
      ++n;
    }
    std::string out;
    out.reserve(total + 64);
    size_t cur = 0;
    for (size_t i = 0; i < n; ++i) {
      chunks_.copy_range(cur, edits[i].pos, &out);
      out.append(edits[i].text);
      cur = edits[i].pos + edits[i].len;
    }
    chunks_.copy_range(cur, total, &out);
    conn_.drain_write(total);
    conn_.append_write(out);
    if (insert_at != std::string::npos) {
      pending_.clear();
      if (closing_) schedule_close();
    }
  }
  flush_counters();
  return EVM_NET_CONTINUE;
}

void NatsFilter::on_server_frame(const Frame& f, uint64_t base) {
  const NatsMetrics& m = config_.m();
  ++s2c_frames_;
  switch (f.op) {
    case Op::kMsg:
    case Op::kHmsg: {
      if (f.subject != last_msg_subject_) {
        last_msg_subject_.assign(f.subject.data(), f.subject.size());
        last_msg_group_ = config_.cfg().groups.classify(f.subject);
      }
      const NatsMetrics::Group& g = m.groups[last_msg_group_];
      deltas_.add(g.delivered_msgs);
      deltas_.add(g.delivered_bytes, f.payload_len);
      break;
    }
    case Op::kErr:
      deltas_.add(m.server_errors);
      break;
    case Op::kInfo:
      on_info(f, base);
      break;
    default:
      break;
  }
}

void NatsFilter::on_info(const Frame& f, uint64_t base) {
  auto info = nlohmann::ordered_json::parse(f.arg.begin(), f.arg.end(), nullptr, /*allow_exceptions=*/false);
  if (info.is_discarded() || !info.is_object()) {
    log(EVM_LOG_WARN, "evmesh nats[" + config_.cfg().stat_prefix + "]: server INFO is not a JSON object");
    return;
  }
  const uint64_t configured = pol().max_payload;
  uint64_t server = 0;
  auto it = info.find("max_payload");
  if (it != info.end() && it->is_number_unsigned()) server = it->get<uint64_t>();
  if (it != info.end() && it->is_number_integer() && it->get<int64_t>() > 0) server = it->get<int64_t>();
  max_payload_ = (server != 0 && server < configured) ? server : configured;
  server_max_payload_ = server;
  auto tls = info.find("tls_required");
  if (tls != info.end() && tls->is_boolean() && tls->get<bool>()) {
    log(EVM_LOG_WARN, "evmesh nats[" + config_.cfg().stat_prefix +
                          "]: the server requires TLS; the sidecar cannot inspect TLS-wrapped NATS and will close "
                          "the connection at the first encrypted frame");
  }
  // Cluster peers announced in connect_urls would let clients reconnect
  // around the sidecar (and its ACL): they are removed.
  bool changed = info.erase("connect_urls") > 0;
  changed = info.erase("ws_connect_urls") > 0 || changed;
  if (server == 0 || server > configured) {
    info["max_payload"] = configured;  // announce the effective limit
    changed = true;
  }
  if (!changed) return;
  if (f.start < base) {
    // The line began in an earlier write and is already on its way: the
    // limit is still enforced, only the announcement could not be changed.
    log(EVM_LOG_WARN, "evmesh nats[" + config_.cfg().stat_prefix +
                          "]: server INFO split across writes; forwarded without rewriting");
    return;
  }
  info_line_ = "INFO " + info.dump() + "\r\n";
  info_pos_ = static_cast<size_t>(f.start - base);
  info_len_ = f.line_len;
  info_rewrite_ = true;
}

}  // namespace evmesh::nats
