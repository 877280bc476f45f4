#include <gtest/gtest.h>

#include <string>

#include "limits.hpp"
#include "validation.hpp"

using es::EventShape;
using es::JsonKind;

namespace {
EventShape good_event() {
  EventShape s;
  s.element = JsonKind::Object;
  s.type_kind = JsonKind::String;
  s.type = "Deposited";
  return s;
}
const char *state_of(const std::optional<es::Problem> &p) { return p ? p->sqlstate : "ok"; }
}  // namespace

TEST(StreamId, RulesAndLimit) {
  EXPECT_STREQ(state_of(es::check_stream_id(true, "")), "ES010");
  EXPECT_STREQ(state_of(es::check_stream_id(false, "")), "ES010");
  EXPECT_STREQ(state_of(es::check_stream_id(false, "account-1")), "ok");
  std::string at_limit(es::kMaxStreamIdBytes, 'x');
  EXPECT_STREQ(state_of(es::check_stream_id(false, at_limit)), "ok");
  EXPECT_STREQ(state_of(es::check_stream_id(false, at_limit + "x")), "ES010");
}

TEST(EventsPayload, ShapeAndEmptiness) {
  EXPECT_STREQ(state_of(es::check_events_payload(JsonKind::Null, 0)), "ES011");
  EXPECT_STREQ(state_of(es::check_events_payload(JsonKind::Object, 0)), "ES011");
  EXPECT_STREQ(state_of(es::check_events_payload(JsonKind::String, 0)), "ES011");
  EXPECT_STREQ(state_of(es::check_events_payload(JsonKind::Array, 0)), "ES012");
  EXPECT_STREQ(state_of(es::check_events_payload(JsonKind::Array, 3)), "ok");
}

TEST(Event, EachRuleHasItsState) {
  es::CheckedEvent out;
  EventShape e = good_event();
  EXPECT_STREQ(state_of(es::check_event(1, e, out)), "ok");
  EXPECT_FALSE(out.has_id);

  EventShape not_object = e;
  not_object.element = JsonKind::Array;
  EXPECT_STREQ(state_of(es::check_event(1, not_object, out)), "ES016");

  EventShape no_type = e;
  no_type.type_kind = JsonKind::Absent;
  EXPECT_STREQ(state_of(es::check_event(1, no_type, out)), "ES013");
  no_type.type_kind = JsonKind::Number;
  EXPECT_STREQ(state_of(es::check_event(1, no_type, out)), "ES013");
  EventShape empty_type = e;
  empty_type.type = "";
  EXPECT_STREQ(state_of(es::check_event(1, empty_type, out)), "ES013");
  std::string long_type(es::kMaxEventTypeBytes + 1, 't');
  EventShape too_long = e;
  too_long.type = long_type;
  EXPECT_STREQ(state_of(es::check_event(1, too_long, out)), "ES013");

  EventShape bad_meta = e;
  bad_meta.metadata_kind = JsonKind::Array;
  EXPECT_STREQ(state_of(es::check_event(1, bad_meta, out)), "ES015");
  bad_meta.metadata_kind = JsonKind::Object;
  EXPECT_STREQ(state_of(es::check_event(1, bad_meta, out)), "ok");

  EventShape bad_id = e;
  bad_id.id_kind = JsonKind::String;
  bad_id.id = "nope";
  EXPECT_STREQ(state_of(es::check_event(1, bad_id, out)), "ES014");
  bad_id.id_kind = JsonKind::Number;
  EXPECT_STREQ(state_of(es::check_event(1, bad_id, out)), "ES014");
  EventShape good_id = e;
  good_id.id_kind = JsonKind::String;
  good_id.id = "0190f5a4-1c2b-7d3e-8f40-0123456789ab";
  EXPECT_STREQ(state_of(es::check_event(1, good_id, out)), "ok");
  EXPECT_TRUE(out.has_id);
}

TEST(ExpectedVersion, Modes) {
  EXPECT_TRUE(es::expected_version_matches(std::nullopt, 0));
  EXPECT_TRUE(es::expected_version_matches(std::nullopt, 7));
  EXPECT_TRUE(es::expected_version_matches(0, 0));
  EXPECT_FALSE(es::expected_version_matches(0, 3));
  EXPECT_TRUE(es::expected_version_matches(-1, 1));
  EXPECT_FALSE(es::expected_version_matches(-1, 0));
  EXPECT_TRUE(es::expected_version_matches(3, 3));
  EXPECT_FALSE(es::expected_version_matches(3, 4));
  EXPECT_STREQ(state_of(es::check_expected_version_argument(-2)), "ES018");
  EXPECT_STREQ(state_of(es::check_expected_version_argument(-1)), "ok");
}

TEST(ExpectedVersion, ConflictDetailGivesNumbers) {
  es::Problem p = es::version_conflict("order-1", 0, 3);
  EXPECT_STREQ(p.sqlstate, "ES001");
  EXPECT_NE(p.detail.find("expected 0, actual 3"), std::string::npos);
  EXPECT_NE(p.detail.find("order-1"), std::string::npos);
}

TEST(Fingerprint, OrderAndContentSensitive) {
  es::Fingerprint a, b, c;
  a.add("ab", 2);
  b.add("ba", 2);
  c.add("ab", 2);
  EXPECT_NE(a.value(), b.value());
  EXPECT_EQ(a.value(), c.value());
}
