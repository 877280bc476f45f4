#include "events_text.hpp"

#include <string>

namespace es {
namespace {

struct SyntaxError {
  const char *sqlstate;
  std::string message;
};

// Whether `s` is well-formed UTF-8 (no overlongs, no surrogates, nothing above U+10FFFF).
bool valid_utf8(std::string_view s) {
  std::size_t i = 0;
  const auto byte = [&](std::size_t k) { return static_cast<unsigned char>(s[k]); };
  while (i < s.size()) {
    unsigned char c = byte(i);
    if (c < 0x80) {
      if (c == 0) return false;  // PostgreSQL text never holds NUL
      ++i;
      continue;
    }
    std::size_t len;
    unsigned char lo = 0x80, hi = 0xBF;
    if (c >= 0xC2 && c <= 0xDF) len = 2;
    else if (c == 0xE0) { len = 3; lo = 0xA0; }
    else if (c == 0xED) { len = 3; hi = 0x9F; }
    else if (c >= 0xE1 && c <= 0xEF) len = 3;
    else if (c == 0xF0) { len = 4; lo = 0x90; }
    else if (c >= 0xF1 && c <= 0xF3) len = 4;
    else if (c == 0xF4) { len = 4; hi = 0x8F; }
    else return false;
    if (s.size() - i < len) return false;
    if (byte(i + 1) < lo || byte(i + 1) > hi) return false;
    for (std::size_t k = 2; k < len; ++k)
      if (byte(i + k) < 0x80 || byte(i + k) > 0xBF) return false;
    i += len;
  }
  return true;
}

void append_utf8(std::string &out, std::uint32_t cp) {
  if (cp < 0x80) {
    out.push_back(static_cast<char>(cp));
  } else if (cp < 0x800) {
    out.push_back(static_cast<char>(0xC0 | (cp >> 6)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else if (cp < 0x10000) {
    out.push_back(static_cast<char>(0xE0 | (cp >> 12)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else {
    out.push_back(static_cast<char>(0xF0 | (cp >> 18)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  }
}

// A strict RFC 8259 reader that reports only what the validator needs: the kind of each
// value, and the decoded text of the strings it asks for.
class JsonReader {
 public:
  explicit JsonReader(std::string_view text) : s_(text) {}

  // The kind of the next value, without consuming it.
  JsonKind peek_kind() {
    skip_ws();
    if (at_end()) fail("the input ends where a value should start");
    switch (s_[pos_]) {
      case '{': return JsonKind::Object;
      case '[': return JsonKind::Array;
      case '"': return JsonKind::String;
      case 't': case 'f': return JsonKind::Bool;
      case 'n': return JsonKind::Null;
      default: return JsonKind::Number;
    }
  }

  // Consumes one value; a string's decoded text goes to `*text` when given.
  JsonKind value(int depth, std::string *text = nullptr) {
    JsonKind kind = peek_kind();
    switch (kind) {
      case JsonKind::Object:
        object(depth, [&](const std::string &, int d) { value(d); });
        break;
      case JsonKind::Array:
        array(depth, [&](std::size_t, int d) { value(d); });
        break;
      case JsonKind::String: {
        std::string scratch;
        string(text ? *text : scratch);
        break;
      }
      case JsonKind::Bool:
        if (!literal("true") && !literal("false")) fail("invalid literal");
        break;
      case JsonKind::Null:
        if (!literal("null")) fail("invalid literal");
        break;
      default:
        number();
        break;
    }
    return kind;
  }

  // Consumes an object, calling `member(key, depth)` with the reader at each member's value.
  template <class Member>
  void object(int depth, Member &&member) {
    enter(depth);
    expect('{');
    skip_ws();
    if (take('}')) return;
    for (;;) {
      skip_ws();
      if (at_end() || s_[pos_] != '"') fail("an object key must be a string");
      std::string key;
      string(key);
      skip_ws();
      expect(':');
      member(key, depth + 1);
      skip_ws();
      if (take('}')) return;
      expect(',');
    }
  }

  // Consumes an array, calling `element(index, depth)` with the reader at each element.
  template <class Element>
  void array(int depth, Element &&element) {
    enter(depth);
    expect('[');
    skip_ws();
    if (take(']')) return;
    for (std::size_t i = 0;; ++i) {
      element(i, depth + 1);
      skip_ws();
      if (take(']')) return;
      expect(',');
    }
  }

  void finish() {
    skip_ws();
    if (!at_end()) fail("unexpected text after the JSON value");
  }

  [[noreturn]] void fail(const std::string &what, const char *state = "22P02") {
    throw SyntaxError{state, "invalid input syntax for type json: " + what + " at byte " +
                                 std::to_string(pos_)};
  }

 private:
  bool at_end() const { return pos_ >= s_.size(); }
  void skip_ws() {
    while (!at_end() && (s_[pos_] == ' ' || s_[pos_] == '\t' || s_[pos_] == '\n' ||
                         s_[pos_] == '\r'))
      ++pos_;
  }
  bool take(char c) {
    if (at_end() || s_[pos_] != c) return false;
    ++pos_;
    return true;
  }
  void expect(char c) {
    if (!take(c)) fail(std::string("expected '") + c + "'");
  }
  void enter(int depth) {
    if (depth >= kMaxJsonDepth) fail("nesting is deeper than " + std::to_string(kMaxJsonDepth));
  }
  bool literal(std::string_view word) {
    if (s_.substr(pos_, word.size()) != word) return false;
    pos_ += word.size();
    return true;
  }
  bool digits() {
    std::size_t start = pos_;
    while (!at_end() && s_[pos_] >= '0' && s_[pos_] <= '9') ++pos_;
    return pos_ > start;
  }
  void number() {
    take('-');
    if (take('0')) {
    } else if (!at_end() && s_[pos_] >= '1' && s_[pos_] <= '9') {
      digits();
    } else {
      fail("invalid number");
    }
    if (take('.') && !digits()) fail("a decimal point needs digits after it");
    if (take('e') || take('E')) {
      if (!take('+')) take('-');
      if (!digits()) fail("an exponent needs digits");
    }
  }
  std::uint32_t hex4() {
    std::uint32_t v = 0;
    for (int i = 0; i < 4; ++i) {
      if (at_end()) fail("truncated \\u escape");
      char c = s_[pos_++];
      v <<= 4;
      if (c >= '0' && c <= '9') v |= static_cast<std::uint32_t>(c - '0');
      else if (c >= 'a' && c <= 'f') v |= static_cast<std::uint32_t>(c - 'a' + 10);
      else if (c >= 'A' && c <= 'F') v |= static_cast<std::uint32_t>(c - 'A' + 10);
      else fail("invalid \\u escape");
    }
    return v;
  }
  void string(std::string &out) {
    expect('"');
    for (;;) {
      if (at_end()) fail("unterminated string");
      unsigned char c = static_cast<unsigned char>(s_[pos_++]);
      if (c == '"') return;
      if (c < 0x20) fail("control character in a string");
      if (c != '\\') {
        out.push_back(static_cast<char>(c));
        continue;
      }
      if (at_end()) fail("unterminated escape");
      char e = s_[pos_++];
      switch (e) {
        case '"': out.push_back('"'); break;
        case '\\': out.push_back('\\'); break;
        case '/': out.push_back('/'); break;
        case 'b': out.push_back('\b'); break;
        case 'f': out.push_back('\f'); break;
        case 'n': out.push_back('\n'); break;
        case 'r': out.push_back('\r'); break;
        case 't': out.push_back('\t'); break;
        case 'u': {
          std::uint32_t cp = hex4();
          if (cp == 0) fail("\\u0000 cannot be converted to text", "22P05");
          if (cp >= 0xDC00 && cp <= 0xDFFF) fail("a low surrogate without a high one");
          if (cp >= 0xD800 && cp <= 0xDBFF) {
            if (!take('\\') || !take('u')) fail("a high surrogate without a low one");
            std::uint32_t low = hex4();
            if (low < 0xDC00 || low > 0xDFFF) fail("a high surrogate without a low one");
            cp = 0x10000 + ((cp - 0xD800) << 10) + (low - 0xDC00);
          }
          append_utf8(out, cp);
          break;
        }
        default:
          fail("invalid escape");
      }
    }
  }

  std::string_view s_;
  std::size_t pos_ = 0;
};

// What one element of the array holds, with its strings decoded (EventShape views into it).
struct ElementText {
  EventShape shape;
  std::string type, id;
};

void read_element(JsonReader &reader, int depth, ElementText &el) {
  el.shape.element = reader.peek_kind();
  if (el.shape.element != JsonKind::Object) {
    reader.value(depth);
    return;
  }
  reader.object(depth, [&](const std::string &key, int d) {
    if (key == "type") {
      el.type.clear();
      el.shape.type_kind = reader.value(d, &el.type);
    } else if (key == "id") {
      el.id.clear();
      el.shape.id_kind = reader.value(d, &el.id);
    } else if (key == "metadata") {
      el.shape.metadata_kind = reader.value(d);
    } else {
      reader.value(d);
    }
  });
}

}  // namespace

std::optional<Problem> check_events_text(std::string_view text, std::vector<CheckedEvent> &out) {
  out.clear();
  if (!valid_utf8(text))
    return Problem{"22021", "invalid byte sequence for encoding \"UTF8\"", {}, {}};
  std::vector<ElementText> elements;
  JsonKind payload;
  try {
    JsonReader reader(text);
    payload = reader.peek_kind();
    if (payload == JsonKind::Array) {
      reader.array(0, [&](std::size_t, int depth) {
        elements.emplace_back();
        read_element(reader, depth, elements.back());
      });
    } else {
      reader.value(0);
    }
    reader.finish();
  } catch (const SyntaxError &e) {
    return Problem{e.sqlstate, e.message, {}, {}};
  }
  if (auto p = check_events_payload(payload, elements.size())) return p;
  out.resize(elements.size());
  for (std::size_t i = 0; i < elements.size(); ++i) {
    ElementText &el = elements[i];
    if (el.shape.type_kind == JsonKind::String) el.shape.type = el.type;
    if (el.shape.id_kind == JsonKind::String) el.shape.id = el.id;
    if (auto p = check_event(i + 1, el.shape, out[i])) {
      out.clear();
      return p;
    }
  }
  return std::nullopt;
}

}  // namespace es
