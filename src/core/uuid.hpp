// UUID parsing, formatting and time-ordered UUIDv7 generation (RFC 9562), backend-free.
#pragma once
#include <array>
#include <cstdint>
#include <string>
#include <string_view>

namespace es {

using Uuid = std::array<std::uint8_t, 16>;

// Builds a UUIDv7 from a Unix time in milliseconds and 10 random bytes.
Uuid make_uuidv7(std::uint64_t unix_ms, const std::uint8_t random_bytes[10]);

// Accepts the canonical 8-4-4-4-12 form, upper or lower case, optionally in braces.
bool parse_uuid(std::string_view text, Uuid &out);

// Lower-case canonical form.
std::string format_uuid(const Uuid &uuid);

}  // namespace es
