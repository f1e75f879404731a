#include "filters/nats/codec/parser.h"

#include <array>

namespace evmesh::nats {

const char* op_name(Op op) {
  switch (op) {
    case Op::kConnect: return "CONNECT";
    case Op::kPub: return "PUB";
    case Op::kHpub: return "HPUB";
    case Op::kSub: return "SUB";
    case Op::kUnsub: return "UNSUB";
    case Op::kPing: return "PING";
    case Op::kPong: return "PONG";
    case Op::kInfo: return "INFO";
    case Op::kMsg: return "MSG";
    case Op::kHmsg: return "HMSG";
    case Op::kOk: return "+OK";
    case Op::kErr: return "-ERR";
  }
  return "?";
}

uint64_t Parser::payload_remaining() const {
  switch (state_) {
    case State::kPayload: return remaining_ + 2;
    case State::kPayloadCR: return 2;
    case State::kPayloadLF: return 1;
    default: return 0;
  }
}

void Parser::remember(std::string_view line, const Frame& f) {
  constexpr size_t kMaxCachedLine = 256;
  if (line.size() > kMaxCachedLine) {
    cached_line_.clear();
    return;
  }
  cached_line_.assign(line.data(), line.size());
  cached_frame_ = f;
  const auto rebase = [&](std::string_view v) {
    return v.empty() ? std::string_view() : std::string_view(cached_line_.data() + (v.data() - line.data()), v.size());
  };
  cached_frame_.subject = rebase(f.subject);
  cached_frame_.reply = rebase(f.reply);
  cached_frame_.sid = rebase(f.sid);
  cached_frame_.queue = rebase(f.queue);
  cached_frame_.arg = rebase(f.arg);
}

bool Parser::fail_at(uint64_t at, const char* reason, const char* reply, std::string_view near) {
  error_offset_ = at;
  error_ = "offset " + std::to_string(at) + ": " + reason + "; near '";
  for (size_t i = 0; i < near.size() && i < 32; ++i) {
    const unsigned char c = static_cast<unsigned char>(near[i]);
    if (c >= 0x20 && c < 0x7f && c != '\'' && c != '\\') {
      error_ += static_cast<char>(c);
    } else {
      static const char* hex = "0123456789abcdef";
      error_ += "\\x";
      error_ += hex[c >> 4];
      error_ += hex[c & 15];
    }
  }
  error_ += "'";
  error_reply_ = reply;
  state_ = State::kFailed;
  return false;
}

namespace {

bool is_space(char c) { return c == ' ' || c == '\t'; }

char lower(char c) { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c + 32) : c; }

bool op_equals(std::string_view word, std::string_view lower_op) {
  if (word.size() != lower_op.size()) return false;
  for (size_t i = 0; i < word.size(); ++i) {
    if (lower(word[i]) != lower_op[i]) return false;
  }
  return true;
}

// Decimal size field: digits only, at most 19 of them.
bool parse_size(std::string_view s, uint64_t* out) {
  if (s.empty() || s.size() > 19) return false;
  uint64_t v = 0;
  for (char c : s) {
    if (c < '0' || c > '9') return false;
    v = v * 10 + static_cast<uint64_t>(c - '0');
  }
  *out = v;
  return true;
}

constexpr size_t kMaxArgs = 6;

// Splits `args` on spaces/tabs into at most kMaxArgs words; returns the count
// or kMaxArgs + 1 when there are more.
size_t split_args(std::string_view args, std::array<std::string_view, kMaxArgs>& out) {
  size_t n = 0, i = 0;
  while (i < args.size()) {
    while (i < args.size() && is_space(args[i])) ++i;
    if (i == args.size()) break;
    size_t j = i;
    while (j < args.size() && !is_space(args[j])) ++j;
    if (n == kMaxArgs) return kMaxArgs + 1;
    out[n++] = args.substr(i, j - i);
    i = j;
  }
  return n;
}

std::string_view trim_left(std::string_view s) {
  while (!s.empty() && is_space(s.front())) s.remove_prefix(1);
  return s;
}

}  // namespace

bool Parser::parse_line(std::string_view line, uint64_t start, Frame* f) {
  f->start = start;
  f->line_len = static_cast<uint32_t>(line.size());
  // Strip the line end: "\r\n" or a bare "\n".
  std::string_view body = line.substr(0, line.size() - 1);
  if (!body.empty() && body.back() == '\r') body.remove_suffix(1);

  size_t op_end = 0;
  while (op_end < body.size() && !is_space(body[op_end])) ++op_end;
  const std::string_view word = body.substr(0, op_end);
  const std::string_view rest = body.substr(op_end);
  const bool c2s = dir_ == Dir::kClientToServer;

  std::array<std::string_view, kMaxArgs> a;
  const auto unknown = [&] { return fail_at(start, "unknown protocol operation", "Unknown Protocol Operation", line); };
  const auto bad_args = [&](const char* what) { return fail_at(start, what, "Unknown Protocol Operation", line); };

  if (word.empty()) return unknown();
  switch (lower(word[0])) {
    case 'p':
      if (op_equals(word, "pub") && c2s) {
        const size_t n = split_args(rest, a);
        if (n != 2 && n != 3) return bad_args("PUB needs: subject [reply] size");
        f->op = Op::kPub;
        f->subject = a[0];
        if (n == 3) f->reply = a[1];
        if (!parse_size(a[n - 1], &f->payload_len)) return bad_args("PUB size is not a number");
        f->has_payload = true;
      } else if (op_equals(word, "ping")) {
        if (!trim_left(rest).empty()) return bad_args("PING takes no arguments");
        f->op = Op::kPing;
      } else if (op_equals(word, "pong")) {
        if (!trim_left(rest).empty()) return bad_args("PONG takes no arguments");
        f->op = Op::kPong;
      } else {
        return unknown();
      }
      break;
    case 'h':
      if (op_equals(word, c2s ? "hpub" : "hmsg")) {
        const size_t n = split_args(rest, a);
        if (c2s) {
          if (n != 3 && n != 4) return bad_args("HPUB needs: subject [reply] header_size total_size");
          f->op = Op::kHpub;
          f->subject = a[0];
          if (n == 4) f->reply = a[1];
        } else {
          if (n != 4 && n != 5) return bad_args("HMSG needs: subject sid [reply] header_size total_size");
          f->op = Op::kHmsg;
          f->subject = a[0];
          f->sid = a[1];
          if (n == 5) f->reply = a[2];
        }
        if (!parse_size(a[n - 2], &f->header_len) || !parse_size(a[n - 1], &f->payload_len)) {
          return bad_args("header or total size is not a number");
        }
        if (f->header_len > f->payload_len) return bad_args("header size larger than total size");
        f->has_payload = true;
      } else {
        return unknown();
      }
      break;
    case 's':
      if (op_equals(word, "sub") && c2s) {
        const size_t n = split_args(rest, a);
        if (n != 2 && n != 3) return bad_args("SUB needs: subject [queue] sid");
        f->op = Op::kSub;
        f->subject = a[0];
        if (n == 3) f->queue = a[1];
        f->sid = a[n - 1];
      } else {
        return unknown();
      }
      break;
    case 'u':
      if (op_equals(word, "unsub") && c2s) {
        const size_t n = split_args(rest, a);
        if (n != 1 && n != 2) return bad_args("UNSUB needs: sid [max_msgs]");
        uint64_t max = 0;
        if (n == 2 && !parse_size(a[1], &max)) return bad_args("UNSUB max_msgs is not a number");
        f->op = Op::kUnsub;
        f->sid = a[0];
        if (n == 2) f->arg = a[1];
      } else {
        return unknown();
      }
      break;
    case 'c':
      if (op_equals(word, "connect") && c2s) {
        f->op = Op::kConnect;
        f->arg = trim_left(rest);
      } else {
        return unknown();
      }
      break;
    case 'i':
      if (op_equals(word, "info") && !c2s) {
        f->op = Op::kInfo;
        f->arg = trim_left(rest);
      } else {
        return unknown();
      }
      break;
    case 'm':
      if (op_equals(word, "msg") && !c2s) {
        const size_t n = split_args(rest, a);
        if (n != 3 && n != 4) return bad_args("MSG needs: subject sid [reply] size");
        f->op = Op::kMsg;
        f->subject = a[0];
        f->sid = a[1];
        if (n == 4) f->reply = a[2];
        if (!parse_size(a[n - 1], &f->payload_len)) return bad_args("MSG size is not a number");
        f->has_payload = true;
      } else {
        return unknown();
      }
      break;
    case '+':
      if (op_equals(word, "+ok") && !c2s) {
        f->op = Op::kOk;
      } else {
        return unknown();
      }
      break;
    case '-':
      if (op_equals(word, "-err") && !c2s) {
        f->op = Op::kErr;
        f->arg = trim_left(rest);
      } else {
        return unknown();
      }
      break;
    default:
      return unknown();
  }
  if (f->has_payload && f->payload_len > limits_.max_payload) {
    return fail_at(start, "payload size above the parser's bound", "Maximum Payload Violation", line);
  }
  return true;
}

}  // namespace evmesh::nats
