#include "validation.hpp"

#include "limits.hpp"

namespace es {

const char *json_kind_name(JsonKind kind) {
  switch (kind) {
    case JsonKind::Absent: return "absent";
    case JsonKind::Null: return "null";
    case JsonKind::String: return "a string";
    case JsonKind::Number: return "a number";
    case JsonKind::Bool: return "a boolean";
    case JsonKind::Object: return "an object";
    case JsonKind::Array: return "an array";
  }
  return "unknown";
}

static Problem problem(const char *state, std::string message, std::string detail = {},
                       std::string hint = {}) {
  return Problem{state, std::move(message), std::move(detail), std::move(hint)};
}

std::optional<Problem> check_stream_id(bool is_null, std::string_view stream_id) {
  if (is_null)
    return problem(sqlstate::kInvalidStreamId, "stream id must not be NULL");
  if (stream_id.empty())
    return problem(sqlstate::kInvalidStreamId, "stream id must not be empty");
  if (stream_id.size() > kMaxStreamIdBytes)
    return problem(sqlstate::kInvalidStreamId, "stream id is too long",
                   "The stream id has " + std::to_string(stream_id.size()) +
                       " bytes; the limit is " + std::to_string(kMaxStreamIdBytes) + ".");
  return std::nullopt;
}

std::optional<Problem> check_idempotency_key(std::string_view key) {
  if (key.empty())
    return problem(sqlstate::kInvalidIdempotencyKey, "idempotency key must not be empty",
                   {}, "Pass NULL for an append without a key.");
  if (key.size() > kMaxIdempotencyKeyBytes)
    return problem(sqlstate::kInvalidIdempotencyKey, "idempotency key is too long",
                   "The key has " + std::to_string(key.size()) + " bytes; the limit is " +
                       std::to_string(kMaxIdempotencyKeyBytes) + ".");
  return std::nullopt;
}

std::optional<Problem> check_events_payload(JsonKind payload, std::size_t count) {
  if (payload == JsonKind::Absent || payload == JsonKind::Null)
    return problem(sqlstate::kInvalidEventsPayload, "events must not be NULL",
                   {}, "Pass a JSON array of event objects.");
  if (payload != JsonKind::Array)
    return problem(sqlstate::kInvalidEventsPayload, "events must be a JSON array",
                   std::string("The events argument is ") + json_kind_name(payload) + ".",
                   "Pass a JSON array of event objects.");
  if (count == 0)
    return problem(sqlstate::kEmptyEvents, "events must not be an empty array");
  return std::nullopt;
}

std::optional<Problem> check_event(std::size_t index, const EventShape &shape,
                                   CheckedEvent &out) {
  const std::string where = "Event " + std::to_string(index) + " of the batch";
  if (shape.element != JsonKind::Object)
    return problem(sqlstate::kInvalidEvent, "event must be a JSON object",
                   where + " is " + json_kind_name(shape.element) + ".");
  if (shape.type_kind == JsonKind::Absent || shape.type_kind == JsonKind::Null)
    return problem(sqlstate::kInvalidEventType, "event has no type",
                   where + " has no \"type\" key.");
  if (shape.type_kind != JsonKind::String)
    return problem(sqlstate::kInvalidEventType, "event type must be a string",
                   where + " has a type that is " + json_kind_name(shape.type_kind) + ".");
  if (shape.type.empty())
    return problem(sqlstate::kInvalidEventType, "event type must not be empty",
                   where + " has an empty type.");
  if (shape.type.size() > kMaxEventTypeBytes)
    return problem(sqlstate::kInvalidEventType, "event type is too long",
                   where + " has a type of " + std::to_string(shape.type.size()) +
                       " bytes; the limit is " + std::to_string(kMaxEventTypeBytes) + ".");
  if (shape.metadata_kind != JsonKind::Absent && shape.metadata_kind != JsonKind::Null &&
      shape.metadata_kind != JsonKind::Object)
    return problem(sqlstate::kInvalidEventMetadata, "event metadata must be a JSON object",
                   where + " has metadata that is " + json_kind_name(shape.metadata_kind) +
                       ".");
  out.has_id = false;
  if (shape.id_kind == JsonKind::Absent || shape.id_kind == JsonKind::Null) return std::nullopt;
  if (shape.id_kind != JsonKind::String)
    return problem(sqlstate::kInvalidEventId, "event id must be a UUID string",
                   where + " has an id that is " + json_kind_name(shape.id_kind) + ".");
  if (!parse_uuid(shape.id, out.id))
    return problem(sqlstate::kInvalidEventId, "event id is not a valid UUID",
                   where + " has id \"" + std::string(shape.id.substr(0, 64)) + "\".");
  out.has_id = true;
  return std::nullopt;
}

std::optional<Problem> check_expected_version_argument(std::int64_t expected) {
  if (expected < -1)
    return problem(sqlstate::kInvalidArgument, "expected_version must be NULL, -1, 0 or positive",
                   "expected_version is " + std::to_string(expected) + ".",
                   "NULL: any; 0: the stream must not exist; -1: the stream must exist; "
                   "n: the stream's last version must be n.");
  return std::nullopt;
}

bool expected_version_matches(std::optional<std::int64_t> expected, std::int64_t actual) {
  if (!expected) return true;
  if (*expected == -1) return actual > 0;
  return *expected == actual;
}

Problem version_conflict(std::string_view stream_id, std::int64_t expected, std::int64_t actual) {
  std::string hint;
  if (expected == -1)
    hint = "expected_version -1 requires the stream to exist.";
  else if (expected == 0)
    hint = "expected_version 0 requires the stream not to exist.";
  else
    hint = "Read the stream again and retry with its current version.";
  return problem(sqlstate::kWrongExpectedVersion,
                 "wrong expected version for stream \"" + std::string(stream_id) + "\"",
                 "Stream \"" + std::string(stream_id) + "\": expected " +
                     std::to_string(expected) + ", actual " + std::to_string(actual) + ".",
                 hint);
}

void Fingerprint::add(const void *data, std::size_t len) {
  const auto *bytes = static_cast<const std::uint8_t *>(data);
  for (std::size_t i = 0; i < len; ++i) {
    hash_ ^= bytes[i];
    hash_ *= 1099511628211ull;
  }
}

}  // namespace es
