// A backend-free front end for the `events` argument: parses JSON text (as a client sends it)
// and runs the same checks es.append runs on the parsed jsonb. Used by the fuzzer
// (test/fuzz) and by unit tests to feed raw bytes through the validator; the backend itself
// parses with PostgreSQL's jsonb.
#pragma once
#include <optional>
#include <string_view>
#include <vector>

#include "validation.hpp"

namespace es {

// Deepest nesting accepted; deeper documents are rejected rather than recursed into.
constexpr int kMaxJsonDepth = 512;

// Validates `text` as the `events` argument of es.append. On success fills `out` with one
// CheckedEvent per element. Problems: 22021 the text is not valid UTF-8, 22P02 it is not
// JSON (or nests deeper than kMaxJsonDepth), 22P05 it escapes a code point PostgreSQL's jsonb
// cannot store (\u0000), then the ES01x codes of check_events_payload and check_event.
// Duplicate object keys follow jsonb: the last one wins.
std::optional<Problem> check_events_text(std::string_view text, std::vector<CheckedEvent> &out);

}  // namespace es
