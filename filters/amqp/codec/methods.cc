#include "filters/amqp/codec/methods.h"

#include <algorithm>
#include <iterator>

#include "filters/amqp/codec/field_table.h"
#include "filters/amqp/codec/wire.h"

namespace evmesh::amqp {

// One argument slot: its wire type follows from the slot.
enum class Slot : uint8_t {
  // octet
  kVersionMajor, kVersionMinor,
  // short
  kTicket, kReplyCode, kFailedClass, kFailedMethod, kChannelMax, kHeartbeat, kPrefetchCount,
  // long
  kFrameMax, kPrefetchSize, kMessageCount, kConsumerCount,
  // longlong
  kDeliveryTag,
  // short string
  kExchange, kExchangeType, kRoutingKey, kQueue, kConsumerTag, kDestination, kSource, kReplyText, kVhost,
  kMechanism, kLocale, kReason, kReservedShort,
  // long string
  kMechanisms, kLocales, kResponse, kReservedLong,
  // table
  kArguments, kProperties,
  // bit
  kPassive, kDurable, kAutoDelete, kInternal, kNoWait, kExclusive, kIfUnused, kIfEmpty, kNoLocal, kNoAck,
  kMandatory, kImmediate, kRedelivered, kMultiple, kRequeue, kGlobal, kActive, kInsist,
};

struct MethodSpec {
  uint32_t id;
  const char* name;
  uint8_t n;
  Slot slots[10];
};

namespace {

using S = Slot;

// Sorted by id (class << 16 | method). Argument lists follow the AMQP 0-9-1
// specification (amqp0-9-1.xml) plus RabbitMQ's extensions (exchange.bind,
// basic.nack, confirm.*, connection.blocked).
constexpr MethodSpec kSpecs[] = {
    {kConnectionStart, "connection.start", 5, {S::kVersionMajor, S::kVersionMinor, S::kProperties, S::kMechanisms, S::kLocales}},
    {kConnectionStartOk, "connection.start-ok", 4, {S::kProperties, S::kMechanism, S::kResponse, S::kLocale}},
    {kConnectionSecure, "connection.secure", 1, {S::kResponse}},
    {kConnectionSecureOk, "connection.secure-ok", 1, {S::kResponse}},
    {kConnectionTune, "connection.tune", 3, {S::kChannelMax, S::kFrameMax, S::kHeartbeat}},
    {kConnectionTuneOk, "connection.tune-ok", 3, {S::kChannelMax, S::kFrameMax, S::kHeartbeat}},
    {kConnectionOpen, "connection.open", 3, {S::kVhost, S::kReservedShort, S::kInsist}},
    {kConnectionOpenOk, "connection.open-ok", 1, {S::kReservedShort}},
    {kConnectionClose, "connection.close", 4, {S::kReplyCode, S::kReplyText, S::kFailedClass, S::kFailedMethod}},
    {kConnectionCloseOk, "connection.close-ok", 0, {}},
    {kConnectionBlocked, "connection.blocked", 1, {S::kReason}},
    {kConnectionUnblocked, "connection.unblocked", 0, {}},
    {kChannelOpen, "channel.open", 1, {S::kReservedShort}},
    {kChannelOpenOk, "channel.open-ok", 1, {S::kReservedLong}},
    {kChannelFlow, "channel.flow", 1, {S::kActive}},
    {kChannelFlowOk, "channel.flow-ok", 1, {S::kActive}},
    {kChannelClose, "channel.close", 4, {S::kReplyCode, S::kReplyText, S::kFailedClass, S::kFailedMethod}},
    {kChannelCloseOk, "channel.close-ok", 0, {}},
    {kExchangeDeclare, "exchange.declare", 9,
     {S::kTicket, S::kExchange, S::kExchangeType, S::kPassive, S::kDurable, S::kAutoDelete, S::kInternal, S::kNoWait,
      S::kArguments}},
    {kExchangeDeclareOk, "exchange.declare-ok", 0, {}},
    {kExchangeDelete, "exchange.delete", 4, {S::kTicket, S::kExchange, S::kIfUnused, S::kNoWait}},
    {kExchangeDeleteOk, "exchange.delete-ok", 0, {}},
    {kExchangeBind, "exchange.bind", 6,
     {S::kTicket, S::kDestination, S::kSource, S::kRoutingKey, S::kNoWait, S::kArguments}},
    {kExchangeBindOk, "exchange.bind-ok", 0, {}},
    {kExchangeUnbind, "exchange.unbind", 6,
     {S::kTicket, S::kDestination, S::kSource, S::kRoutingKey, S::kNoWait, S::kArguments}},
    {kExchangeUnbindOk, "exchange.unbind-ok", 0, {}},
    {kQueueDeclare, "queue.declare", 8,
     {S::kTicket, S::kQueue, S::kPassive, S::kDurable, S::kExclusive, S::kAutoDelete, S::kNoWait, S::kArguments}},
    {kQueueDeclareOk, "queue.declare-ok", 3, {S::kQueue, S::kMessageCount, S::kConsumerCount}},
    {kQueueBind, "queue.bind", 6, {S::kTicket, S::kQueue, S::kExchange, S::kRoutingKey, S::kNoWait, S::kArguments}},
    {kQueueBindOk, "queue.bind-ok", 0, {}},
    {kQueuePurge, "queue.purge", 3, {S::kTicket, S::kQueue, S::kNoWait}},
    {kQueuePurgeOk, "queue.purge-ok", 1, {S::kMessageCount}},
    {kQueueDelete, "queue.delete", 5, {S::kTicket, S::kQueue, S::kIfUnused, S::kIfEmpty, S::kNoWait}},
    {kQueueDeleteOk, "queue.delete-ok", 1, {S::kMessageCount}},
    {kQueueUnbind, "queue.unbind", 5, {S::kTicket, S::kQueue, S::kExchange, S::kRoutingKey, S::kArguments}},
    {kQueueUnbindOk, "queue.unbind-ok", 0, {}},
    {kBasicQos, "basic.qos", 3, {S::kPrefetchSize, S::kPrefetchCount, S::kGlobal}},
    {kBasicQosOk, "basic.qos-ok", 0, {}},
    {kBasicConsume, "basic.consume", 8,
     {S::kTicket, S::kQueue, S::kConsumerTag, S::kNoLocal, S::kNoAck, S::kExclusive, S::kNoWait, S::kArguments}},
    {kBasicConsumeOk, "basic.consume-ok", 1, {S::kConsumerTag}},
    {kBasicCancel, "basic.cancel", 2, {S::kConsumerTag, S::kNoWait}},
    {kBasicCancelOk, "basic.cancel-ok", 1, {S::kConsumerTag}},
    {kBasicPublish, "basic.publish", 5, {S::kTicket, S::kExchange, S::kRoutingKey, S::kMandatory, S::kImmediate}},
    {kBasicReturn, "basic.return", 4, {S::kReplyCode, S::kReplyText, S::kExchange, S::kRoutingKey}},
    {kBasicDeliver, "basic.deliver", 5,
     {S::kConsumerTag, S::kDeliveryTag, S::kRedelivered, S::kExchange, S::kRoutingKey}},
    {kBasicGet, "basic.get", 3, {S::kTicket, S::kQueue, S::kNoAck}},
    {kBasicGetOk, "basic.get-ok", 5, {S::kDeliveryTag, S::kRedelivered, S::kExchange, S::kRoutingKey, S::kMessageCount}},
    {kBasicGetEmpty, "basic.get-empty", 1, {S::kReservedShort}},
    {kBasicAck, "basic.ack", 2, {S::kDeliveryTag, S::kMultiple}},
    {kBasicReject, "basic.reject", 2, {S::kDeliveryTag, S::kRequeue}},
    {kBasicRecoverAsync, "basic.recover-async", 1, {S::kRequeue}},
    {kBasicRecover, "basic.recover", 1, {S::kRequeue}},
    {kBasicRecoverOk, "basic.recover-ok", 0, {}},
    {kBasicNack, "basic.nack", 3, {S::kDeliveryTag, S::kMultiple, S::kRequeue}},
    {kConfirmSelect, "confirm.select", 1, {S::kNoWait}},
    {kConfirmSelectOk, "confirm.select-ok", 0, {}},
    {kTxSelect, "tx.select", 0, {}},
    {kTxSelectOk, "tx.select-ok", 0, {}},
    {kTxCommit, "tx.commit", 0, {}},
    {kTxCommitOk, "tx.commit-ok", 0, {}},
    {kTxRollback, "tx.rollback", 0, {}},
    {kTxRollbackOk, "tx.rollback-ok", 0, {}},
};

constexpr bool sorted() {
  for (size_t i = 1; i < std::size(kSpecs); ++i) {
    if (kSpecs[i - 1].id >= kSpecs[i].id) return false;
  }
  return true;
}
static_assert(sorted(), "kSpecs must be sorted by id");

const MethodSpec* find_spec(uint32_t id) {
  const MethodSpec* end = kSpecs + std::size(kSpecs);
  const MethodSpec* it =
      std::lower_bound(kSpecs, end, id, [](const MethodSpec& s, uint32_t v) { return s.id < v; });
  return (it != end && it->id == id) ? it : nullptr;
}

bool is_bit(Slot s) { return s >= Slot::kPassive; }

uint32_t bit_of(Slot s) { return 1u << (static_cast<uint32_t>(s) - static_cast<uint32_t>(Slot::kPassive)); }

std::string_view* short_target(Method* m, Slot s) {
  switch (s) {
    case S::kExchange: return &m->exchange;
    case S::kExchangeType: return &m->exchange_type;
    case S::kRoutingKey: return &m->routing_key;
    case S::kQueue: return &m->queue;
    case S::kConsumerTag: return &m->consumer_tag;
    case S::kDestination: return &m->destination;
    case S::kSource: return &m->source;
    case S::kReplyText: return &m->reply_text;
    case S::kVhost: return &m->vhost;
    case S::kMechanism: return &m->mechanism;
    case S::kLocale: return &m->locale;
    case S::kReason: return &m->reason;
    default: return nullptr;
  }
}

bool fail(MethodError* err, size_t at, const char* reason) {
  err->at = at;
  err->reason = reason;
  return false;
}

}  // namespace

const char* method_name(uint16_t class_id, uint16_t method_id) {
  const MethodSpec* s = find_spec((static_cast<uint32_t>(class_id) << 16) | method_id);
  return s ? s->name : "unknown";
}

const char* Method::name() const { return spec ? spec->name : "unknown"; }

bool decode_method(std::string_view payload, Method* m, MethodError* err) {
  static_assert(static_cast<uint32_t>(Slot::kInsist) - static_cast<uint32_t>(Slot::kPassive) == 17, "bit slots");
  Reader r(payload);
  if (!r.u16(&m->class_id) || !r.u16(&m->method_id)) return fail(err, 0, "method frame shorter than 4 bytes");
  m->spec = find_spec(m->id());
  if (m->spec == nullptr) return true;

  uint8_t bit_octet = 0;
  int bit_index = 8;  // 8: the next bit starts a new octet
  for (uint8_t i = 0; i < m->spec->n; ++i) {
    const Slot s = m->spec->slots[i];
    const size_t at = r.pos();
    if (is_bit(s)) {
      if (bit_index == 8) {
        if (!r.u8(&bit_octet)) return fail(err, at, "truncated method arguments");
        bit_index = 0;
      }
      if (bit_octet & (1u << bit_index)) m->bits |= bit_of(s);
      ++bit_index;
      continue;
    }
    bit_index = 8;
    bool ok = true;
    if (s <= S::kVersionMinor) {
      ok = r.u8(s == S::kVersionMajor ? &m->version_major : &m->version_minor);
    } else if (s <= S::kPrefetchCount) {
      uint16_t v = 0;
      ok = r.u16(&v);
      switch (s) {
        case S::kReplyCode: m->reply_code = v; break;
        case S::kFailedClass: m->failed_class_id = v; break;
        case S::kFailedMethod: m->failed_method_id = v; break;
        case S::kChannelMax: m->channel_max = v; break;
        case S::kHeartbeat: m->heartbeat = v; break;
        case S::kPrefetchCount: m->prefetch_count = v; break;
        default: break;  // ticket: reserved
      }
    } else if (s <= S::kConsumerCount) {
      uint32_t v = 0;
      ok = r.u32(&v);
      switch (s) {
        case S::kFrameMax: m->frame_max = v; break;
        case S::kPrefetchSize: m->prefetch_size = v; break;
        case S::kMessageCount: m->message_count = v; break;
        default: m->consumer_count = v; break;
      }
    } else if (s == S::kDeliveryTag) {
      ok = r.u64(&m->delivery_tag);
    } else if (s <= S::kReservedShort) {
      std::string_view v;
      ok = r.shortstr(&v);
      if (std::string_view* t = short_target(m, s)) *t = v;
    } else if (s <= S::kReservedLong) {
      std::string_view v;
      ok = r.longstr(&v);
      if (s == S::kMechanisms) m->mechanisms = v;
      if (s == S::kLocales) m->locales = v;
      if (s == S::kResponse) m->response = v;
    } else {  // table
      std::string_view v;
      if (!r.longstr(&v)) return fail(err, at, "truncated field table");
      FieldError fe;
      if (!validate_table(v, 1, &fe)) return fail(err, at + 4 + fe.at, fe.reason);
      (s == S::kArguments ? m->arguments : m->properties) = v;
    }
    if (!ok) return fail(err, at, "truncated method arguments");
  }
  if (!r.empty()) return fail(err, r.pos(), "unexpected bytes after method arguments");
  return true;
}

}  // namespace evmesh::amqp
