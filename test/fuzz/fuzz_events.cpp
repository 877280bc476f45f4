// libFuzzer target: raw bytes as the `events` argument of es.append, through the backend-free
// JSON front end (src/core/events_text) into the event validator (src/core/validation), and
// through the stream-id, key and UUID checks. Besides the sanitizers' own findings it traps
// on broken invariants: every problem carries a known SQLSTATE class and a message, every
// accepted id survives a format/parse round trip. Build and run: test/fuzz/run.sh.
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

#include "events_text.hpp"
#include "limits.hpp"
#include "uuid.hpp"
#include "validation.hpp"

namespace {

void require(bool ok, const char *what) {
  if (!ok) {
    fprintf(stderr, "invariant broken: %s\n", what);
    abort();
  }
}

void check_problem(const es::Problem &p) {
  require(p.sqlstate != nullptr && std::strlen(p.sqlstate) == 5, "SQLSTATE has five characters");
  std::string_view state(p.sqlstate);
  require(state.substr(0, 2) == "ES" || state.substr(0, 2) == "22", "SQLSTATE class is ES or 22");
  require(!p.message.empty(), "a problem has a message");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t *data, std::size_t size) {
  std::string_view text(reinterpret_cast<const char *>(data), size);

  std::vector<es::CheckedEvent> events;
  if (auto p = es::check_events_text(text, events)) {
    check_problem(*p);
    require(events.empty(), "a rejected batch yields no events");
  } else {
    require(!events.empty(), "an accepted batch is not empty");
    for (const es::CheckedEvent &ev : events) {
      if (!ev.has_id) continue;
      es::Uuid again{};
      require(es::parse_uuid(es::format_uuid(ev.id), again) && again == ev.id,
              "an accepted id round-trips");
    }
  }

  // The same bytes as a stream id, an idempotency key and an event id.
  if (auto p = es::check_stream_id(false, text)) check_problem(*p);
  else require(!text.empty() && text.size() <= es::kMaxStreamIdBytes, "stream id limits hold");
  if (auto p = es::check_idempotency_key(text)) check_problem(*p);
  es::Uuid id{};
  if (es::parse_uuid(text, id)) {
    es::Uuid again{};
    require(es::parse_uuid(es::format_uuid(id), again) && again == id, "a UUID round-trips");
  }

  // A single event whose type is these bytes (es.append_event's path).
  es::EventShape shape;
  shape.element = es::JsonKind::Object;
  shape.type_kind = es::JsonKind::String;
  shape.type = text;
  es::CheckedEvent checked;
  if (auto p = es::check_event(1, shape, checked)) check_problem(*p);
  return 0;
}
