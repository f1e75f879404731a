#include "filters/kafka/codec/messages.h"

#include <algorithm>

#include "filters/kafka/codec/api_keys.h"

namespace evmesh::kafka {
namespace {

constexpr int16_t kUnsupportedVersion = 35;

// Versions above what a decoder knows have unknown layouts: refuse them
// (the header was parsed; the filter passes such a frame untouched).
bool unsupported(int16_t version, int16_t max, size_t base, Error* err) {
  if (version >= 0 && version <= max) return false;
  *err = Error{base, "unsupported api version"};
  return true;
}

bool finish(Reader& r, size_t* consumed, Error* err) {
  if (!r.ok()) {
    *err = r.error();
    return false;
  }
  *consumed = r.pos();
  return true;
}

// Skips an array of int32 (replica lists and the like).
void skip_i32_array(Reader& r, bool flex, bool nullable) {
  int32_t n = 0;
  if (r.array(flex, nullable, 4, &n) && n > 0) r.skip(static_cast<size_t>(n) * 4);
}

// Raw tagged fields (count included) as a view, for byte-exact re-encoding.
std::string_view tagged_raw(Reader& r) {
  const size_t at = r.pos();
  if (!r.tagged_fields()) return {};
  return r.buffer().substr(at, r.pos() - at);
}

void write_tagged(Writer& w, std::string_view raw) {
  if (raw.empty()) {
    w.no_tagged_fields();
  } else {
    w.raw(raw);
  }
}

// The broker array shared by Metadata and DescribeCluster.
bool read_brokers(Reader& r, bool flex, int16_t rack_from, int16_t fenced_from, int16_t version,
                  std::vector<BrokerEndpoint>* out) {
  int32_t n = 0;
  if (!r.array(flex, false, 10, &n)) return false;
  for (int32_t i = 0; i < n && r.ok(); ++i) {
    BrokerEndpoint b;
    r.i32(&b.node_id);
    r.string(flex, false, &b.host);
    r.i32(&b.port);
    if (version >= rack_from) r.string(flex, true, &b.rack);
    if (fenced_from >= 0 && version >= fenced_from) r.boolean(&b.is_fenced);
    if (flex) b.tagged = tagged_raw(r);
    out->push_back(b);
  }
  return r.ok();
}

void write_brokers(Writer& w, bool flex, int16_t rack_from, int16_t fenced_from, int16_t version,
                   const std::vector<BrokerEndpoint>& brokers) {
  w.array(flex, static_cast<int32_t>(brokers.size()));
  for (const BrokerEndpoint& b : brokers) {
    w.i32(b.node_id);
    w.string(flex, b.host);
    w.i32(b.port);
    if (version >= rack_from) w.string(flex, b.rack);
    if (fenced_from >= 0 && version >= fenced_from) w.boolean(b.is_fenced);
    if (flex) write_tagged(w, b.tagged);
  }
}

}  // namespace

// ---- ApiVersions -------------------------------------------------------------

bool decode_api_versions_response(std::string_view body, int16_t version, ApiVersionsResponse* out, Error* err,
                                  size_t base) {
  *out = ApiVersionsResponse{};
  if (unsupported(version, 4, base, err)) return false;
  if (version >= 1 && body.size() >= 2 && static_cast<int16_t>(load_be16(body.data())) == kUnsupportedVersion) {
    version = 0;  // the broker refused the version and fell back to a v0 body
  }
  out->version = version;
  const bool flex = version >= 3;
  Reader r(body, base);
  r.i16(&out->error_code);
  int32_t n = 0;
  r.array(flex, false, 6, &n);
  for (int32_t i = 0; i < n && r.ok(); ++i) {
    ApiVersionRange a;
    r.i16(&a.api_key);
    r.i16(&a.min_version);
    a.max_version_offset = r.pos();
    r.i16(&a.max_version);
    if (flex) r.tagged_fields();
    out->api_keys.push_back(a);
  }
  if (version >= 1) r.i32(&out->throttle_time_ms);
  if (flex) r.tagged_fields();
  return finish(r, &out->consumed, err);
}

bool cap_api_version(std::string* body, const ApiVersionsResponse& r, int16_t api_key, int16_t max) {
  for (const ApiVersionRange& a : r.api_keys) {
    if (a.api_key != api_key) continue;
    if (a.max_version_offset + 2 > body->size()) return false;
    if (a.max_version > max) store_be16(body->data() + a.max_version_offset, static_cast<uint16_t>(max));
    return true;
  }
  return false;
}

int cap_to_decodable(std::string* body, const ApiVersionsResponse& r, int16_t max_produce_fetch) {
  int n = 0;
  for (const ApiVersionRange& a : r.api_keys) {
    int16_t max = std::max(max_decodable_version(a.api_key, true), max_decodable_version(a.api_key, false));
    if (max < 0) continue;
    if (max_produce_fetch >= 0 && (a.api_key == api::kProduce || a.api_key == api::kFetch)) {
      max = std::min(max, max_produce_fetch);
    }
    if (a.max_version > max && a.min_version <= max) {
      cap_api_version(body, r, a.api_key, max);
      ++n;
    }
  }
  return n;
}

// ---- Metadata ----------------------------------------------------------------

bool decode_metadata_response(std::string_view body, int16_t version, bool with_topics, MetadataResponse* out,
                              Error* err, size_t base) {
  *out = MetadataResponse{};
  if (unsupported(version, 13, base, err)) return false;
  out->version = version;
  const bool flex = version >= 9;
  Reader r(body, base);
  if (version >= 3) r.i32(&out->throttle_time_ms);
  const size_t brokers_at = r.pos();
  read_brokers(r, flex, 1, -1, version, &out->brokers);
  const size_t brokers_end = r.pos();
  if (version >= 2) r.string(flex, true, &out->cluster_id);
  if (version >= 1) r.i32(&out->controller_id);
  int32_t nt = 0;
  r.array(flex, false, 4, &nt);
  for (int32_t i = 0; i < nt && r.ok(); ++i) {
    MetadataTopic t;
    r.i16(&t.error_code);
    r.string(flex, version >= 12, &t.name);
    if (version >= 10) r.uuid(&t.topic_id);
    if (version >= 1) r.boolean(&t.is_internal);
    int32_t np = 0;
    r.array(flex, false, 10, &np);
    for (int32_t j = 0; j < np && r.ok(); ++j) {
      MetadataPartition p;
      r.i16(&p.error_code);
      r.i32(&p.partition_index);
      r.i32(&p.leader_id);
      if (version >= 7) r.i32(&p.leader_epoch);
      skip_i32_array(r, flex, false);  // replica nodes
      skip_i32_array(r, flex, false);  // isr nodes
      if (version >= 5) skip_i32_array(r, flex, false);  // offline replicas
      if (flex) r.tagged_fields();
      if (with_topics) t.partitions.push_back(p);
    }
    if (version >= 8) {
      int32_t ops = 0;
      r.i32(&ops);
    }
    if (flex) r.tagged_fields();
    if (with_topics) out->topics.push_back(std::move(t));
  }
  if (version >= 8 && version <= 10) {
    int32_t ops = 0;
    r.i32(&ops);
  }
  if (version >= 13) r.i16(&out->error_code);
  if (flex) r.tagged_fields();
  if (!finish(r, &out->consumed, err)) return false;
  out->before_brokers = body.substr(0, brokers_at);
  out->after_brokers = body.substr(brokers_end, out->consumed - brokers_end);
  return true;
}

std::string encode_metadata_response(const MetadataResponse& m) {
  std::string out;
  out.reserve(m.before_brokers.size() + m.after_brokers.size() + 64 * m.brokers.size());
  Writer w(&out);
  w.raw(m.before_brokers);
  write_brokers(w, m.version >= 9, 1, -1, m.version, m.brokers);
  w.raw(m.after_brokers);
  return out;
}

void TopicNames::learn(const MetadataResponse& m) {
  for (const MetadataTopic& t : m.topics) {
    if (t.topic_id.is_zero() || t.name.null || t.error_code != 0) continue;
    auto [it, inserted] = names_.insert_or_assign(t.topic_id, std::string(t.name.v));
    if (!inserted) continue;
    order_.push_back(t.topic_id);
    if (names_.size() > max_) {
      names_.erase(order_.front());
      order_.pop_front();
    }
  }
}

const std::string* TopicNames::find(const Uuid& id) const {
  auto it = names_.find(id);
  return it == names_.end() ? nullptr : &it->second;
}

// ---- FindCoordinator ---------------------------------------------------------

bool decode_find_coordinator_response(std::string_view body, int16_t version, FindCoordinatorResponse* out,
                                      Error* err, size_t base) {
  *out = FindCoordinatorResponse{};
  if (unsupported(version, 6, base, err)) return false;
  out->version = version;
  const bool flex = version >= 3;
  Reader r(body, base);
  if (version >= 1) r.i32(&out->throttle_time_ms);
  if (version <= 3) {
    Coordinator c;
    r.i16(&c.error_code);
    if (version >= 1) r.string(flex, true, &c.error_message);
    r.i32(&c.node.node_id);
    r.string(flex, false, &c.node.host);
    r.i32(&c.node.port);
    out->coordinators.push_back(c);
  } else {
    int32_t n = 0;
    r.array(true, false, 14, &n);
    for (int32_t i = 0; i < n && r.ok(); ++i) {
      Coordinator c;
      r.string(true, false, &c.key);
      r.i32(&c.node.node_id);
      r.string(true, false, &c.node.host);
      r.i32(&c.node.port);
      r.i16(&c.error_code);
      r.string(true, true, &c.error_message);
      c.node.tagged = tagged_raw(r);
      out->coordinators.push_back(c);
    }
  }
  if (flex) out->tagged = tagged_raw(r);
  return finish(r, &out->consumed, err);
}

std::string encode_find_coordinator_response(const FindCoordinatorResponse& f) {
  std::string out;
  Writer w(&out);
  const int16_t v = f.version;
  const bool flex = v >= 3;
  if (v >= 1) w.i32(f.throttle_time_ms);
  if (v <= 3) {
    const Coordinator c = f.coordinators.empty() ? Coordinator{} : f.coordinators[0];
    w.i16(c.error_code);
    if (v >= 1) w.string(flex, c.error_message);
    w.i32(c.node.node_id);
    w.string(flex, c.node.host);
    w.i32(c.node.port);
  } else {
    w.array(true, static_cast<int32_t>(f.coordinators.size()));
    for (const Coordinator& c : f.coordinators) {
      w.string(true, c.key);
      w.i32(c.node.node_id);
      w.string(true, c.node.host);
      w.i32(c.node.port);
      w.i16(c.error_code);
      w.string(true, c.error_message);
      write_tagged(w, c.node.tagged);
    }
  }
  if (flex) write_tagged(w, f.tagged);
  return out;
}

// ---- DescribeCluster ---------------------------------------------------------

bool decode_describe_cluster_response(std::string_view body, int16_t version, DescribeClusterResponse* out,
                                      Error* err, size_t base) {
  *out = DescribeClusterResponse{};
  if (unsupported(version, 2, base, err)) return false;
  out->version = version;
  Reader r(body, base);
  r.i32(&out->throttle_time_ms);
  r.i16(&out->error_code);
  r.string(true, true, &out->error_message);
  if (version >= 1) r.i8(&out->endpoint_type);
  r.string(true, false, &out->cluster_id);
  r.i32(&out->controller_id);
  const size_t brokers_at = r.pos();
  read_brokers(r, true, 0, 2, version, &out->brokers);
  const size_t brokers_end = r.pos();
  int32_t ops = 0;
  r.i32(&ops);
  r.tagged_fields();
  if (!finish(r, &out->consumed, err)) return false;
  out->before_brokers = body.substr(0, brokers_at);
  out->after_brokers = body.substr(brokers_end, out->consumed - brokers_end);
  return true;
}

std::string encode_describe_cluster_response(const DescribeClusterResponse& d) {
  std::string out;
  Writer w(&out);
  w.raw(d.before_brokers);
  write_brokers(w, true, 0, 2, d.version, d.brokers);
  w.raw(d.after_brokers);
  return out;
}

// ---- address rewrite ---------------------------------------------------------

namespace {

// Applies map to one endpoint; new hosts are kept in `store` (stable addresses).
bool map_endpoint(const AddressMapper& map, BrokerEndpoint* b, std::vector<std::string>* store) {
  std::string host;
  int32_t port = b->port;
  if (!map(b->node_id, b->host.v, b->port, &host, &port)) return false;
  store->push_back(std::move(host));
  const bool changed = store->back() != b->host.v || port != b->port;
  b->port = port;
  return changed;
}

}  // namespace

Rewrite rewrite_broker_addresses(int16_t api_key, int16_t version, std::string_view body, const AddressMapper& map,
                                 std::string* out, Error* err, size_t base) {
  // Hosts are stored first and pointed to afterwards (the vector must not
  // reallocate under the views): reserve one per endpoint before mapping.
  if (api_key == api::kMetadata || api_key == api::kFindCoordinator || api_key == api::kDescribeCluster) {
    if (version < 0 || version > max_decodable_version(api_key, true)) return Rewrite::kUnsupportedVersion;
  }
  std::vector<std::string> store;
  bool changed = false;
  auto apply = [&](std::vector<BrokerEndpoint*>& eps) {
    store.reserve(eps.size());
    for (BrokerEndpoint* b : eps) {
      if (map_endpoint(map, b, &store)) {
        b->host = Str::of(store.back());
        changed = true;
      }
    }
  };
  switch (api_key) {
    case api::kMetadata: {
      MetadataResponse m;
      if (!decode_metadata_response(body, version, false, &m, err, base)) return Rewrite::kError;
      std::vector<BrokerEndpoint*> eps;
      for (auto& b : m.brokers) eps.push_back(&b);
      apply(eps);
      if (changed) *out = encode_metadata_response(m);
      break;
    }
    case api::kFindCoordinator: {
      FindCoordinatorResponse f;
      if (!decode_find_coordinator_response(body, version, &f, err, base)) return Rewrite::kError;
      std::vector<BrokerEndpoint*> eps;
      for (auto& c : f.coordinators) {
        if (c.error_code == 0) eps.push_back(&c.node);
      }
      apply(eps);
      if (changed) *out = encode_find_coordinator_response(f);
      break;
    }
    case api::kDescribeCluster: {
      DescribeClusterResponse d;
      if (!decode_describe_cluster_response(body, version, &d, err, base)) return Rewrite::kError;
      std::vector<BrokerEndpoint*> eps;
      for (auto& b : d.brokers) eps.push_back(&b);
      apply(eps);
      if (changed) *out = encode_describe_cluster_response(d);
      break;
    }
    default:
      return Rewrite::kNotApplicable;
  }
  return changed ? Rewrite::kRewritten : Rewrite::kUnchanged;
}

// ---- Produce request ---------------------------------------------------------

namespace {

void produce_prologue(Reader& r, int16_t version, ProduceRequest* p) {
  const bool flex = version >= 9;
  if (version >= 3) r.string(flex, true, &p->transactional_id);
  r.i16(&p->acks);
  r.i32(&p->timeout_ms);
}

}  // namespace

bool decode_produce_request(std::string_view body, int16_t version, ProduceRequest* out, Error* err, size_t base) {
  *out = ProduceRequest{};
  if (unsupported(version, 13, base, err)) return false;
  const bool flex = version >= 9;
  Reader r(body, base);
  produce_prologue(r, version, out);
  int32_t nt = 0;
  r.array(flex, false, 2, &nt);
  for (int32_t i = 0; i < nt && r.ok(); ++i) {
    ProduceTopic t;
    if (version >= 13) {
      r.uuid(&t.topic_id);
    } else {
      r.string(flex, false, &t.name);
    }
    int32_t np = 0;
    r.array(flex, false, 5, &np);
    for (int32_t j = 0; j < np && r.ok(); ++j) {
      ProducePartition p;
      r.i32(&p.index);
      r.bytes(flex, true, &p.records);
      p.records_offset = p.records.null ? 0 : static_cast<size_t>(p.records.v.data() - body.data());
      if (flex) r.tagged_fields();
      t.partitions.push_back(p);
    }
    if (flex) r.tagged_fields();
    out->topics.push_back(std::move(t));
  }
  if (flex) r.tagged_fields();
  return finish(r, &out->consumed, err);
}

bool produce_acks(std::string_view body, int16_t version, int16_t* acks, Error* err, size_t base) {
  *acks = 0;
  if (unsupported(version, 13, base, err)) return false;
  ProduceRequest p;
  Reader r(body, base);
  produce_prologue(r, version, &p);
  *acks = p.acks;
  if (!r.ok()) *err = r.error();
  return r.ok();
}

std::string encode_produce_request(const ProduceRequest& p, int16_t version) {
  const bool flex = version >= 9;
  std::string out;
  Writer w(&out);
  if (version >= 3) w.string(flex, p.transactional_id);
  w.i16(p.acks);
  w.i32(p.timeout_ms);
  w.array(flex, static_cast<int32_t>(p.topics.size()));
  for (const ProduceTopic& t : p.topics) {
    if (version >= 13) {
      w.uuid(t.topic_id);
    } else {
      w.string(flex, t.name);
    }
    w.array(flex, static_cast<int32_t>(t.partitions.size()));
    for (const ProducePartition& part : t.partitions) {
      w.i32(part.index);
      w.bytes(flex, part.records);
      if (flex) w.no_tagged_fields();
    }
    if (flex) w.no_tagged_fields();
  }
  if (flex) w.no_tagged_fields();
  return out;
}

// ---- Produce response --------------------------------------------------------

bool decode_produce_response(std::string_view body, int16_t version, ProduceResponse* out, Error* err,
                             size_t base) {
  *out = ProduceResponse{};
  if (unsupported(version, 13, base, err)) return false;
  const bool flex = version >= 9;
  Reader r(body, base);
  int32_t nt = 0;
  r.array(flex, false, 2, &nt);
  for (int32_t i = 0; i < nt && r.ok(); ++i) {
    ProduceTopicResponse t;
    if (version >= 13) {
      r.uuid(&t.topic_id);
    } else {
      r.string(flex, false, &t.name);
    }
    int32_t np = 0;
    r.array(flex, false, 14, &np);
    for (int32_t j = 0; j < np && r.ok(); ++j) {
      ProducePartitionResponse p;
      r.i32(&p.index);
      r.i16(&p.error_code);
      r.i64(&p.base_offset);
      if (version >= 2) r.i64(&p.log_append_time_ms);
      if (version >= 5) r.i64(&p.log_start_offset);
      if (version >= 8) {
        const size_t at = r.pos();
        int32_t ne = 0;
        r.array(flex, false, 5, &ne);
        for (int32_t k = 0; k < ne && r.ok(); ++k) {
          int32_t batch_index = 0;
          Str msg;
          r.i32(&batch_index);
          r.string(flex, true, &msg);
          if (flex) r.tagged_fields();
        }
        if (r.ok()) p.record_errors = body.substr(at, r.pos() - at);
        r.string(flex, true, &p.error_message);
      }
      if (flex) p.tagged = tagged_raw(r);
      t.partitions.push_back(p);
    }
    if (flex) t.tagged = tagged_raw(r);
    out->topics.push_back(std::move(t));
  }
  if (version >= 1) {
    out->throttle_time_offset = r.pos();
    r.i32(&out->throttle_time_ms);
  }
  if (flex) out->tagged = tagged_raw(r);
  return finish(r, &out->consumed, err);
}

std::string encode_produce_response(const ProduceResponse& pr, int16_t version) {
  const bool flex = version >= 9;
  std::string out;
  Writer w(&out);
  w.array(flex, static_cast<int32_t>(pr.topics.size()));
  for (const ProduceTopicResponse& t : pr.topics) {
    if (version >= 13) {
      w.uuid(t.topic_id);
    } else {
      w.string(flex, t.name);
    }
    w.array(flex, static_cast<int32_t>(t.partitions.size()));
    for (const ProducePartitionResponse& p : t.partitions) {
      w.i32(p.index);
      w.i16(p.error_code);
      w.i64(p.base_offset);
      if (version >= 2) w.i64(p.log_append_time_ms);
      if (version >= 5) w.i64(p.log_start_offset);
      if (version >= 8) {
        if (p.record_errors.empty()) {
          w.array(flex, 0);
        } else {
          w.raw(p.record_errors);
        }
        w.string(flex, p.error_message);
      }
      if (flex) write_tagged(w, p.tagged);
    }
    if (flex) write_tagged(w, t.tagged);
  }
  if (version >= 1) w.i32(pr.throttle_time_ms);
  if (flex) write_tagged(w, pr.tagged);
  return out;
}

ProduceResponse produce_error_response(const ProduceRequest& req, int16_t error_code) {
  ProduceResponse r;
  for (const ProduceTopic& t : req.topics) {
    ProduceTopicResponse tr;
    tr.name = t.name;
    tr.topic_id = t.topic_id;
    for (const ProducePartition& p : t.partitions) {
      ProducePartitionResponse pr;
      pr.index = p.index;
      pr.error_code = error_code;
      tr.partitions.push_back(pr);
    }
    r.topics.push_back(std::move(tr));
  }
  return r;
}

bool patch_throttle_time(std::string* body, size_t offset, int32_t throttle_ms) {
  if (offset + 4 > body->size()) return false;
  store_be32(body->data() + offset, static_cast<uint32_t>(throttle_ms));
  return true;
}

// ---- array splicing ------------------------------------------------------------

namespace {

// Reads an array count, recording its position, for ArraySpan.
bool span_count(Reader& r, bool flex, size_t min_elem, ArraySpan* a, int32_t* n) {
  a->count_offset = r.pos();
  a->compact = flex;
  const bool ok = r.array(flex, false, min_elem, n);
  a->count_size = r.pos() - a->count_offset;
  return ok;
}

}  // namespace

std::string splice_array(std::string_view body, const ArraySpan& a, const std::vector<bool>& keep,
                         std::string_view append, int32_t appended) {
  std::string out;
  out.reserve(body.size() + append.size());
  Writer w(&out);
  w.raw(body.substr(0, a.count_offset));
  int32_t n = appended;
  for (size_t i = 0; i < a.elements.size(); ++i) n += (i >= keep.size() || keep[i]) ? 1 : 0;
  w.array(a.compact, n);
  for (size_t i = 0; i < a.elements.size(); ++i) {
    if (i < keep.size() && !keep[i]) continue;
    w.raw(body.substr(a.elements[i].first, a.elements[i].second - a.elements[i].first));
  }
  w.raw(append);
  w.raw(body.substr(a.end));
  return out;
}

// ---- Fetch request -------------------------------------------------------------

bool decode_fetch_request(std::string_view body, int16_t version, FetchRequest* out, Error* err, size_t base) {
  *out = FetchRequest{};
  if (unsupported(version, 17, base, err)) return false;
  const bool flex = version >= 12;
  Reader r(body, base);
  int32_t replica = 0;
  if (version <= 14) r.i32(&replica);
  r.i32(&out->max_wait_ms);
  r.i32(&out->min_bytes);
  if (version >= 3) r.i32(&out->max_bytes);
  if (version >= 4) r.i8(&out->isolation_level);
  if (version >= 7) {
    out->session_offset = r.pos();
    r.i32(&out->session_id);
    r.i32(&out->session_epoch);
  }
  int32_t nt = 0;
  span_count(r, flex, 2, &out->topics_span, &nt);
  for (int32_t i = 0; i < nt && r.ok(); ++i) {
    const size_t begin = r.pos();
    FetchRequestTopic t;
    if (version >= 13) {
      r.uuid(&t.topic_id);
    } else {
      r.string(flex, false, &t.name);
    }
    int32_t np = 0;
    r.array(flex, false, 16, &np);
    for (int32_t j = 0; j < np && r.ok(); ++j) {
      FetchRequestPartition p;
      int32_t skip32 = 0;
      int64_t skip64 = 0;
      r.i32(&p.partition);
      if (version >= 9) r.i32(&skip32);  // current leader epoch
      r.i64(&p.fetch_offset);
      if (version >= 12) r.i32(&skip32);  // last fetched epoch
      if (version >= 5) r.i64(&skip64);   // log start offset
      r.i32(&p.partition_max_bytes);
      if (flex) r.tagged_fields();
      t.partitions.push_back(p);
    }
    if (flex) r.tagged_fields();
    out->topics_span.elements.emplace_back(begin, r.pos());
    out->topics.push_back(std::move(t));
  }
  out->topics_span.end = r.pos();
  if (version >= 7) {
    int32_t nf = 0;
    r.array(flex, false, 2, &nf);
    for (int32_t i = 0; i < nf && r.ok(); ++i) {
      TopicRef t;
      if (version >= 13) {
        r.uuid(&t.id);
      } else {
        r.string(flex, false, &t.name);
      }
      int32_t np = 0;
      if (r.array(flex, false, 4, &np) && np > 0) r.skip(static_cast<size_t>(np) * 4);
      if (flex) r.tagged_fields();
      out->forgotten.push_back(t);
    }
  }
  if (version >= 11) {
    Str rack;
    r.string(flex, false, &rack);
  }
  if (flex) r.tagged_fields();
  return finish(r, &out->consumed, err);
}

std::string fetch_error_topics(const std::vector<FetchRequestTopic>& topics, int16_t version, int16_t error_code) {
  const bool flex = version >= 12;
  std::string out;
  Writer w(&out);
  for (const FetchRequestTopic& t : topics) {
    if (version >= 13) {
      w.uuid(t.topic_id);
    } else {
      w.string(flex, t.name);
    }
    w.array(flex, static_cast<int32_t>(t.partitions.size()));
    for (const FetchRequestPartition& p : t.partitions) {
      w.i32(p.partition);
      w.i16(error_code);
      w.i64(-1);                       // high watermark
      if (version >= 4) w.i64(-1);     // last stable offset
      if (version >= 5) w.i64(-1);     // log start offset
      if (version >= 4) w.array(flex, -1);  // aborted transactions: null
      if (version >= 11) w.i32(-1);    // preferred read replica
      w.bytes(flex, Str::of(""));      // no records
      if (flex) w.no_tagged_fields();
    }
    if (flex) w.no_tagged_fields();
  }
  return out;
}

// ---- Fetch response ----------------------------------------------------------

bool decode_fetch_response(std::string_view body, int16_t version, FetchResponse* out, Error* err, size_t base) {
  *out = FetchResponse{};
  if (unsupported(version, 17, base, err)) return false;
  const bool flex = version >= 12;
  Reader r(body, base);
  if (version >= 1) {
    out->throttle_time_offset = r.pos();
    r.i32(&out->throttle_time_ms);
  }
  if (version >= 7) {
    r.i16(&out->error_code);
    r.i32(&out->session_id);
  }
  int32_t nt = 0;
  span_count(r, flex, 2, &out->topics_span, &nt);
  for (int32_t i = 0; i < nt && r.ok(); ++i) {
    const size_t begin = r.pos();
    FetchTopic t;
    if (version >= 13) {
      r.uuid(&t.topic_id);
    } else {
      r.string(flex, false, &t.name);
    }
    int32_t np = 0;
    r.array(flex, false, 18, &np);
    for (int32_t j = 0; j < np && r.ok(); ++j) {
      FetchPartition p;
      int64_t skip64 = 0;
      r.i32(&p.index);
      r.i16(&p.error_code);
      r.i64(&p.high_watermark);
      if (version >= 4) r.i64(&skip64);  // last stable offset
      if (version >= 5) r.i64(&skip64);  // log start offset
      if (version >= 4) {
        int32_t na = 0;  // aborted transactions
        r.array(flex, true, 16, &na);
        for (int32_t k = 0; k < na && r.ok(); ++k) {
          r.skip(16);
          if (flex) r.tagged_fields();
        }
      }
      if (version >= 11) {
        int32_t replica = 0;
        r.i32(&replica);  // preferred read replica
      }
      r.bytes(flex, true, &p.records);
      if (flex) r.tagged_fields();
      t.partitions.push_back(p);
    }
    if (flex) r.tagged_fields();
    out->topics_span.elements.emplace_back(begin, r.pos());
    out->topics.push_back(std::move(t));
  }
  out->topics_span.end = r.pos();
  if (flex) r.tagged_fields();
  return finish(r, &out->consumed, err);
}

int16_t max_decodable_version(int16_t api_key, bool response) {
  switch (api_key) {
    case api::kProduce:
      return 13;
    case api::kFetch:
      return 17;
    case api::kMetadata:
      return response ? 13 : -1;
    case api::kFindCoordinator:
      return response ? 6 : -1;
    case api::kApiVersions:
      return response ? 4 : -1;
    case api::kDescribeCluster:
      return response ? 2 : -1;
    default:
      return -1;
  }
}

}  // namespace evmesh::kafka
