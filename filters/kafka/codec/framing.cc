#include "filters/kafka/codec/framing.h"

#include "filters/kafka/codec/api_keys.h"

namespace evmesh::kafka {

Status decode_request_header(std::string_view payload, bool is_whole_payload, RequestHeader* h, Error* err) {
  *h = RequestHeader{};
  // Errors carry frame offsets (after the size prefix). A prefix may be
  // followed by more of the frame: a read past it asks for more, while a
  // malformed field (negative length) is an error at once.
  Reader r(payload, 4, is_whole_payload ? 0 : uint64_t{1} << 31);
  r.i16(&h->api_key);
  r.i16(&h->api_version);
  r.i32(&h->correlation_id);
  if (r.ok()) {
    h->known = find_api(h->api_key) != nullptr;
    h->header_version = request_header_version(h->api_key, h->api_version);
    // The client id keeps the old int16 length even in header v2.
    if (h->header_version >= 1) r.string(false, true, &h->client_id);
    if (h->header_version >= 2) r.tagged_fields();
  }
  if (!r.ok()) {
    if (r.need_more()) return Status::kNeedMore;
    *err = r.error();
    return Status::kError;
  }
  if (h->api_version < 0) {
    *err = Error{4 + 2, "negative api version"};
    return Status::kError;
  }
  h->size = static_cast<uint32_t>(r.pos());
  return Status::kOk;
}

void encode_request_header(const RequestHeader& h, std::string* out) {
  Writer w(out);
  w.i16(h.api_key);
  w.i16(h.api_version);
  w.i32(h.correlation_id);
  if (h.header_version >= 1) w.string(false, h.client_id);
  if (h.header_version >= 2) w.no_tagged_fields();
}

Status decode_response_header(std::string_view payload, int header_version, ResponseHeader* h, Error* err) {
  *h = ResponseHeader{};
  Reader r(payload, 4);
  r.i32(&h->correlation_id);
  if (header_version >= 1) r.tagged_fields();
  if (!r.ok()) {
    *err = r.error();
    return Status::kError;
  }
  h->size = static_cast<uint32_t>(r.pos());
  return Status::kOk;
}

void encode_response_header(int32_t correlation_id, int header_version, std::string* out) {
  Writer w(out);
  w.i32(correlation_id);
  if (header_version >= 1) w.no_tagged_fields();
}

std::string make_frame(std::string_view header, std::string_view body) {
  std::string out;
  out.reserve(4 + header.size() + body.size());
  Writer w(&out);
  w.i32(static_cast<int32_t>(header.size() + body.size()));
  w.raw(header);
  w.raw(body);
  return out;
}

}  // namespace evmesh::kafka
