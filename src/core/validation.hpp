// Validation of append arguments: stream ids, event batch elements, expected versions.
// The backend layer extracts the shape of each JSON element; the rules live here so they
// can be unit-tested and fuzzed without a server.
#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "uuid.hpp"

namespace es {

enum class JsonKind { Absent, Null, String, Number, Bool, Object, Array };

const char *json_kind_name(JsonKind kind);

// A rejected input: SQLSTATE, message, detail and hint for the user.
struct Problem {
  const char *sqlstate;
  std::string message;
  std::string detail;
  std::string hint;
};

// The parts of one element of the `events` array that validation looks at.
struct EventShape {
  JsonKind element = JsonKind::Absent;
  JsonKind type_kind = JsonKind::Absent;
  std::string_view type;
  JsonKind id_kind = JsonKind::Absent;
  std::string_view id;
  JsonKind metadata_kind = JsonKind::Absent;
};

// What validation learnt about an event that passed.
struct CheckedEvent {
  bool has_id = false;
  Uuid id{};
};

std::optional<Problem> check_stream_id(bool is_null, std::string_view stream_id);
std::optional<Problem> check_idempotency_key(std::string_view key);
// `payload` is the kind of the whole `events` argument; `count` its length when an array.
std::optional<Problem> check_events_payload(JsonKind payload, std::size_t count);
std::optional<Problem> check_event(std::size_t index, const EventShape &shape,
                                   CheckedEvent &out);
std::optional<Problem> check_expected_version_argument(std::int64_t expected);

// Whether a stream at `actual` satisfies `expected` (nullopt = any, 0 = absent,
// -1 = exists, n > 0 = exactly n).
bool expected_version_matches(std::optional<std::int64_t> expected, std::int64_t actual);
Problem version_conflict(std::string_view stream_id, std::int64_t expected, std::int64_t actual);

// 64-bit FNV-1a, fed piecewise; used to fingerprint idempotent requests.
class Fingerprint {
 public:
  void add(const void *data, std::size_t len);
  void add_tag(std::uint8_t tag) { add(&tag, 1); }
  std::uint64_t value() const { return hash_; }

 private:
  std::uint64_t hash_ = 14695981039346656037ull;
};

}  // namespace es
