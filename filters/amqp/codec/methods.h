// AMQP 0-9-1 methods: ids, names and a table-driven argument decoder that
// reads a method frame's arguments in place (views into the payload).
//
// Each known method is described by its list of argument slots (see
// methods.cc); a slot names both the wire type and the Method member it
// fills. Unknown class/method ids are not an error: the Method is reported
// with spec == nullptr and the frame passes untouched.
#pragma once

#include <cstdint>
#include <string_view>

namespace evmesh::amqp {


// Class ids.
enum : uint16_t { kConnection = 10, kChannel = 20, kExchange = 40, kQueue = 50, kBasic = 60, kConfirm = 85, kTx = 90 };

// (class << 16 | method) of the methods the filters act on.
enum MethodId : uint32_t {
  kConnectionStart = (10u << 16) | 10, kConnectionStartOk = (10u << 16) | 11,
  kConnectionSecure = (10u << 16) | 20, kConnectionSecureOk = (10u << 16) | 21,
  kConnectionTune = (10u << 16) | 30, kConnectionTuneOk = (10u << 16) | 31,
  kConnectionOpen = (10u << 16) | 40, kConnectionOpenOk = (10u << 16) | 41,
  kConnectionClose = (10u << 16) | 50, kConnectionCloseOk = (10u << 16) | 51,
  kConnectionBlocked = (10u << 16) | 60, kConnectionUnblocked = (10u << 16) | 61,
  kChannelOpen = (20u << 16) | 10, kChannelOpenOk = (20u << 16) | 11,
  kChannelFlow = (20u << 16) | 20, kChannelFlowOk = (20u << 16) | 21,
  kChannelClose = (20u << 16) | 40, kChannelCloseOk = (20u << 16) | 41,
  kExchangeDeclare = (40u << 16) | 10, kExchangeDeclareOk = (40u << 16) | 11,
  kExchangeDelete = (40u << 16) | 20, kExchangeDeleteOk = (40u << 16) | 21,
  kExchangeBind = (40u << 16) | 30, kExchangeBindOk = (40u << 16) | 31,
  kExchangeUnbind = (40u << 16) | 40, kExchangeUnbindOk = (40u << 16) | 51,
  kQueueDeclare = (50u << 16) | 10, kQueueDeclareOk = (50u << 16) | 11,
  kQueueBind = (50u << 16) | 20, kQueueBindOk = (50u << 16) | 21,
  kQueuePurge = (50u << 16) | 30, kQueuePurgeOk = (50u << 16) | 31,
  kQueueDelete = (50u << 16) | 40, kQueueDeleteOk = (50u << 16) | 41,
  kQueueUnbind = (50u << 16) | 50, kQueueUnbindOk = (50u << 16) | 51,
  kBasicQos = (60u << 16) | 10, kBasicQosOk = (60u << 16) | 11,
  kBasicConsume = (60u << 16) | 20, kBasicConsumeOk = (60u << 16) | 21,
  kBasicCancel = (60u << 16) | 30, kBasicCancelOk = (60u << 16) | 31,
  kBasicPublish = (60u << 16) | 40, kBasicReturn = (60u << 16) | 50,
  kBasicDeliver = (60u << 16) | 60, kBasicGet = (60u << 16) | 70,
  kBasicGetOk = (60u << 16) | 71, kBasicGetEmpty = (60u << 16) | 72,
  kBasicAck = (60u << 16) | 80, kBasicReject = (60u << 16) | 90,
  kBasicRecoverAsync = (60u << 16) | 100, kBasicRecover = (60u << 16) | 110,
  kBasicRecoverOk = (60u << 16) | 111, kBasicNack = (60u << 16) | 120,
  kConfirmSelect = (85u << 16) | 10, kConfirmSelectOk = (85u << 16) | 11,
  kTxSelect = (90u << 16) | 10, kTxSelectOk = (90u << 16) | 11,
  kTxCommit = (90u << 16) | 20, kTxCommitOk = (90u << 16) | 21,
  kTxRollback = (90u << 16) | 30, kTxRollbackOk = (90u << 16) | 31,
};

// Bit arguments, as flags in Method::bits.
enum Bit : uint32_t {
  kPassive = 1u << 0, kDurable = 1u << 1, kAutoDelete = 1u << 2, kInternal = 1u << 3, kNoWait = 1u << 4,
  kExclusive = 1u << 5, kIfUnused = 1u << 6, kIfEmpty = 1u << 7, kNoLocal = 1u << 8, kNoAck = 1u << 9,
  kMandatory = 1u << 10, kImmediate = 1u << 11, kRedelivered = 1u << 12, kMultiple = 1u << 13,
  kRequeue = 1u << 14, kGlobal = 1u << 15, kActive = 1u << 16, kInsist = 1u << 17,
};

struct MethodSpec;

struct Method {
  uint16_t class_id = 0;
  uint16_t method_id = 0;
  const MethodSpec* spec = nullptr;  // null: unknown method, passed through
  uint32_t id() const { return (static_cast<uint32_t>(class_id) << 16) | method_id; }
  bool known() const { return spec != nullptr; }
  const char* name() const;  // "basic.publish", or "unknown"

  // Short strings.
  std::string_view exchange, exchange_type, routing_key, queue, consumer_tag, destination, source, reply_text,
      vhost, mechanism, locale, reason;
  // Long strings.
  std::string_view mechanisms, locales, response;
  // Field tables: the content after the 32-bit length (validated).
  std::string_view arguments, properties;
  uint8_t version_major = 0, version_minor = 0;
  uint16_t reply_code = 0, failed_class_id = 0, failed_method_id = 0, channel_max = 0, heartbeat = 0,
           prefetch_count = 0;
  uint32_t frame_max = 0, prefetch_size = 0, message_count = 0, consumer_count = 0;
  uint64_t delivery_tag = 0;
  uint32_t bits = 0;
  bool bit(Bit b) const { return (bits & b) != 0; }
};

struct MethodError {
  size_t at = 0;  // offset in the method payload
  const char* reason = "";
};

// Decodes a method frame payload (class id, method id, arguments).
// Unknown ids: true with spec == nullptr. Known ids: every argument must be
// present, tables well formed, and no bytes left over.
bool decode_method(std::string_view payload, Method* m, MethodError* err);

const char* method_name(uint16_t class_id, uint16_t method_id);

}  // namespace evmesh::amqp
