#include "filters/amqp/codec/content_header.h"

#include "filters/amqp/codec/field_table.h"
#include "filters/amqp/codec/wire.h"

namespace evmesh::amqp {

namespace {
bool fail(HeaderError* err, size_t at, const char* reason) {
  err->at = at;
  err->reason = reason;
  return false;
}
}  // namespace

bool decode_content_header(std::string_view payload, ContentHeader* h, HeaderError* err) {
  Reader r(payload);
  if (!r.u16(&h->class_id) || !r.u16(&h->weight) || !r.u64(&h->body_size)) {
    return fail(err, 0, "content header shorter than 12 bytes");
  }
  h->raw_properties = payload.substr(12);
  // Property flags: 15 flags per word; bit 0 says another word follows.
  uint16_t flags = 0;
  {
    const size_t at = r.pos();
    if (!r.u16(&flags)) return fail(err, at, "truncated property flags");
    uint16_t more = flags;
    while (more & 1) {
      const size_t at2 = r.pos();
      if (!r.u16(&more)) return fail(err, at2, "truncated property flags");
      if (h->class_id == 60) return fail(err, at2, "basic has no properties beyond the first flag word");
    }
  }
  if (h->class_id != 60) return true;  // opaque properties
  if (flags & 0x0002) return fail(err, 12, "reserved basic property flag set");
  BasicProperties& p = h->props;
  p.flags = flags;
  struct Str {
    BasicFlag flag;
    std::string_view* out;
  };
  // In wire order.
  const Str before_headers[] = {{kContentType, &p.content_type}, {kContentEncoding, &p.content_encoding}};
  for (const Str& s : before_headers) {
    const size_t at = r.pos();
    if ((flags & s.flag) && !r.shortstr(s.out)) return fail(err, at, "truncated property");
  }
  if (flags & kHeaders) {
    const size_t at = r.pos();
    if (!r.longstr(&p.headers)) return fail(err, at, "truncated headers table");
    FieldError fe;
    if (!validate_table(p.headers, 1, &fe)) return fail(err, at + 4 + fe.at, fe.reason);
  }
  {
    const size_t at = r.pos();
    if ((flags & kDeliveryMode) && !r.u8(&p.delivery_mode)) return fail(err, at, "truncated property");
  }
  {
    const size_t at = r.pos();
    if ((flags & kPriority) && !r.u8(&p.priority)) return fail(err, at, "truncated property");
  }
  const Str mid[] = {{kCorrelationId, &p.correlation_id}, {kReplyTo, &p.reply_to}, {kExpiration, &p.expiration},
                     {kMessageId, &p.message_id}};
  for (const Str& s : mid) {
    const size_t at = r.pos();
    if ((flags & s.flag) && !r.shortstr(s.out)) return fail(err, at, "truncated property");
  }
  {
    const size_t at = r.pos();
    if ((flags & kTimestamp) && !r.u64(&p.timestamp)) return fail(err, at, "truncated property");
  }
  const Str tail[] = {{kType, &p.type}, {kUserId, &p.user_id}, {kAppId, &p.app_id}, {kClusterId, &p.cluster_id}};
  for (const Str& s : tail) {
    const size_t at = r.pos();
    if ((flags & s.flag) && !r.shortstr(s.out)) return fail(err, at, "truncated property");
  }
  if (!r.empty()) return fail(err, r.pos(), "unexpected bytes after properties");
  return true;
}

}  // namespace evmesh::amqp
