#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "events_text.hpp"
#include "uuid.hpp"

namespace {
std::string state_of(std::string_view text) {
  std::vector<es::CheckedEvent> out;
  auto p = es::check_events_text(text, out);
  return p ? p->sqlstate : "ok:" + std::to_string(out.size());
}
}  // namespace

TEST(EventsText, AcceptsWhatAppendAccepts) {
  EXPECT_EQ(state_of(R"([{"type":"A"}])"), "ok:1");
  EXPECT_EQ(state_of(R"( [ {"type":"A","data":{"x":[1,2.5e3,-0,true,null]}}, {"type":"B","metadata":null} ] )"),
            "ok:2");
  EXPECT_EQ(state_of(R"([{"type":"\u00e9\ud83d\ude00"}])"), "ok:1");
}

TEST(EventsText, PayloadProblems) {
  EXPECT_EQ(state_of("null"), "ES011");
  EXPECT_EQ(state_of(R"({"type":"A"})"), "ES011");
  EXPECT_EQ(state_of("42"), "ES011");
  EXPECT_EQ(state_of("[]"), "ES012");
}

TEST(EventsText, ElementProblems) {
  EXPECT_EQ(state_of("[1]"), "ES016");
  EXPECT_EQ(state_of(R"([{"data":1}])"), "ES013");
  EXPECT_EQ(state_of(R"([{"type":""}])"), "ES013");
  EXPECT_EQ(state_of(R"([{"type":7}])"), "ES013");
  EXPECT_EQ(state_of(R"([{"type":"A","metadata":[]}])"), "ES015");
  EXPECT_EQ(state_of(R"([{"type":"A","id":"nope"}])"), "ES014");
  EXPECT_EQ(state_of(R"([{"type":"A","id":5}])"), "ES014");
  // jsonb keeps the last of duplicate keys.
  EXPECT_EQ(state_of(R"([{"type":5,"type":"A"}])"), "ok:1");
  EXPECT_EQ(state_of(R"([{"type":"A","type":5}])"), "ES013");
}

TEST(EventsText, DecodesIds) {
  std::vector<es::CheckedEvent> out;
  ASSERT_FALSE(es::check_events_text(
      R"([{"type":"A","id":"0190A0B0-C0D0-7000-8000-\u003000000000001"}])", out));
  ASSERT_EQ(out.size(), 1u);
  EXPECT_TRUE(out[0].has_id);
  EXPECT_EQ(es::format_uuid(out[0].id), "0190a0b0-c0d0-7000-8000-000000000001");
}

TEST(EventsText, SyntaxAndEncoding) {
  EXPECT_EQ(state_of(""), "22P02");
  EXPECT_EQ(state_of("[{\"type\":\"A\"}"), "22P02");
  EXPECT_EQ(state_of("[{\"type\":\"A\"}] x"), "22P02");
  EXPECT_EQ(state_of("[01]"), "22P02");
  EXPECT_EQ(state_of("[1.]"), "22P02");
  EXPECT_EQ(state_of("[\"\x01\"]"), "22P02");
  EXPECT_EQ(state_of(R"(["\ud800"])"), "22P02");
  EXPECT_EQ(state_of(R"(["\udc00"])"), "22P02");
  EXPECT_EQ(state_of(R"(["\u0000"])"), "22P05");
  EXPECT_EQ(state_of("[\"\xc3\x28\"]"), "22021");
  EXPECT_EQ(state_of("[\"\xed\xa0\x80\"]"), "22021");  // an encoded surrogate
  EXPECT_EQ(state_of(std::string("[\"\0\"]", 5)), "22021");
  EXPECT_EQ(state_of(std::string(100000, '[')), "22P02");  // too deep, no stack overflow
}
