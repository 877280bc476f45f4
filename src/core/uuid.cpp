#include "uuid.hpp"

namespace es {

Uuid make_uuidv7(std::uint64_t unix_ms, const std::uint8_t random_bytes[10]) {
  Uuid u{};
  for (int i = 0; i < 6; ++i)
    u[i] = static_cast<std::uint8_t>(unix_ms >> (8 * (5 - i)));
  for (int i = 0; i < 10; ++i) u[6 + i] = random_bytes[i];
  u[6] = static_cast<std::uint8_t>(0x70 | (u[6] & 0x0F));  // version 7
  u[8] = static_cast<std::uint8_t>(0x80 | (u[8] & 0x3F));  // RFC 4122 variant
  return u;
}

static int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

bool parse_uuid(std::string_view text, Uuid &out) {
  if (text.size() == 38 && text.front() == '{' && text.back() == '}')
    text = text.substr(1, 36);
  if (text.size() != 36) return false;
  std::size_t byte = 0;
  for (std::size_t i = 0; i < text.size();) {
    if (i == 8 || i == 13 || i == 18 || i == 23) {
      if (text[i] != '-') return false;
      ++i;
      continue;
    }
    int hi = hex_value(text[i]);
    int lo = i + 1 < text.size() ? hex_value(text[i + 1]) : -1;
    if (hi < 0 || lo < 0) return false;
    out[byte++] = static_cast<std::uint8_t>(hi << 4 | lo);
    i += 2;
  }
  return byte == 16;
}

std::string format_uuid(const Uuid &uuid) {
  static const char digits[] = "0123456789abcdef";
  std::string s;
  s.reserve(36);
  for (std::size_t i = 0; i < uuid.size(); ++i) {
    if (i == 4 || i == 6 || i == 8 || i == 10) s.push_back('-');
    s.push_back(digits[uuid[i] >> 4]);
    s.push_back(digits[uuid[i] & 0x0F]);
  }
  return s;
}

}  // namespace es
