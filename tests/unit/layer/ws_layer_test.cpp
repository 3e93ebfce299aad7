// WsLayer, sans-IO: frames split at every byte pass through unchanged and are recorded one envelope
// each; fragmented messages are reassembled around an interleaved ping; permessage-deflate messages are
// inflated with and without context takeover; irregular frames get their anomaly.
#include <gtest/gtest.h>

#include <utility>

#include <boost/beast/zlib/deflate_stream.hpp>

#include "codec/ws.hpp"
#include "layer/ws_layer.hpp"
#include "support/layer_driver.hpp"

using namespace sluice;
using namespace sluice::layer;
using test_support::LayerDriver;

namespace {

std::string frame(int opcode, bool fin, const std::string& payload, bool mask, bool rsv1 = false) {
  std::string f;
  f.push_back(static_cast<char>((fin ? 0x80 : 0) | (rsv1 ? 0x40 : 0) | opcode));
  uint8_t m = mask ? 0x80 : 0;
  if (payload.size() < 126) {
    f.push_back(static_cast<char>(m | payload.size()));
  } else if (payload.size() < 65536) {
    f.push_back(static_cast<char>(m | 126));
    f.push_back(static_cast<char>(payload.size() >> 8));
    f.push_back(static_cast<char>(payload.size() & 0xff));
  } else {
    f.push_back(static_cast<char>(m | 127));
    for (int i = 7; i >= 0; --i) f.push_back(static_cast<char>((payload.size() >> (8 * i)) & 0xff));
  }
  std::string key = "\x11\x22\x33\x44";
  if (mask) f += key;
  for (size_t i = 0; i < payload.size(); ++i) f.push_back(mask ? static_cast<char>(payload[i] ^ key[i % 4]) : payload[i]);
  return f;
}

// RFC 7692: each message deflated with a sync flush, the trailing 00 00 ff ff removed.
struct Deflater {
  boost::beast::zlib::deflate_stream z;
  Deflater() { z.reset(6, 15, 8, boost::beast::zlib::Strategy::normal); }
  std::string message(const std::string& in) {
    boost::beast::zlib::z_params zs;
    zs.next_in = in.data();
    zs.avail_in = in.size();
    std::string out(in.size() + 64, '\0');
    zs.next_out = out.data();
    zs.avail_out = out.size();
    boost::system::error_code ec;
    z.write(zs, boost::beast::zlib::Flush::sync, ec);
    out.resize(out.size() - zs.avail_out);
    EXPECT_EQ(out.substr(out.size() - 4), std::string("\x00\x00\xff\xff", 4));
    out.resize(out.size() - 4);
    return out;
  }
};

struct Fixture {
  ProxyOptions options;
  ConnectionContext ctx{"w", "127.0.0.1:1", core::Timestamp{0}, *parse_mode_spec("reverse:http://127.0.0.1:7000@0"),
                        &options};
  explicit Fixture(bool units = false) { options.step_units = units; }
  std::unique_ptr<Layer> layer(WsDeflate d = {}) {
    return std::make_unique<WsLayer>(ctx, 1, "127.0.0.1:7000", "w.1", "w-0", d);
  }
};

const envelope::WsMessage& ws(const envelope::Envelope& e) { return std::get<envelope::WsMessage>(e.message); }

}  // namespace

TEST(WsLayer, FramesAtEverySplitPassThroughAndAreRecorded) {
  std::string client = frame(1, true, "hi", true) + frame(1, false, "ab", true) + frame(9, true, "p", true) +
                       frame(0, true, "cd", true) + frame(2, true, std::string(300, 'z'), true);
  for (size_t split = 0; split <= client.size(); ++split) {
    Fixture f;
    LayerDriver d(f.layer());
    d.client(client.substr(0, split));
    d.client(client.substr(split));
    d.data(1, frame(8, true, std::string("\x03\xe8", 2) + "done", false));
    ASSERT_EQ(d.sent[1], client) << split;  // forwarded untouched
    auto envs = d.envelopes();
    ASSERT_EQ(envs.size(), 6u) << split;
    EXPECT_EQ(ws(envs[0]).payload, "hi");
    EXPECT_TRUE(ws(envs[0]).masked);
    EXPECT_EQ(ws(envs[1]).payload, "ab");  // a fragment, as sent
    EXPECT_FALSE(ws(envs[1]).fin);
    EXPECT_EQ(ws(envs[2]).opcode, 9);  // a ping between the fragments
    EXPECT_EQ(ws(envs[3]).payload, "abcd");  // the message's last frame shows the whole message
    EXPECT_EQ(envs[3].tags, (envelope::Tags{{"message_frames", "2"}}));
    EXPECT_EQ(ws(envs[4]).payload, std::string(300, 'z'));
    EXPECT_EQ(ws(envs[5]).close_code, 1000);
    EXPECT_EQ(ws(envs[5]).close_reason, "done");
    std::string raws;
    for (size_t i = 0; i < 5; ++i) raws += envs[i].raw;
    EXPECT_EQ(raws, client);
    for (const auto& e : envs) {
      EXPECT_TRUE(e.anomalies.empty());
      EXPECT_EQ(e.flow_id, "w-0");
    }
  }
}

TEST(WsLayer, DeflateWithAndWithoutContextTakeover) {
  for (bool takeover : {true, false}) {
    Fixture f;
    WsDeflate deflate;
    deflate.enabled = true;
    deflate.server_no_context_takeover = !takeover;
    LayerDriver d(f.layer(deflate));
    Deflater one;
    std::string text = "the same words, the same words, the same words";
    std::string first = one.message(text);
    std::string second = takeover ? one.message(text) : Deflater().message(text);  // back-references, or none
    if (takeover) {
      EXPECT_LT(second.size(), first.size());
    }
    d.data(1, frame(1, true, first, false, true) + frame(1, true, second, false, true));
    auto envs = d.envelopes();
    ASSERT_EQ(envs.size(), 2u);
    for (const auto& e : envs) {
      EXPECT_TRUE(ws(e).compressed) << takeover;
      EXPECT_EQ(ws(e).payload, text) << takeover;
      EXPECT_TRUE(e.anomalies.empty());
    }
  }
}

TEST(WsLayer, IrregularFramesAreRecordedWithTheirAnomaly) {
  Fixture f;
  LayerDriver d(f.layer());
  std::string from_client;
  for (const auto& fr : {frame(1, true, "unmasked", false), frame(0, true, "stray", true), frame(9, false, "ping", true),
                         frame(1, true, "rsv", true, true)}) {  // the last: RSV1 without permessage-deflate
    from_client += fr;
    d.client(fr);
    if (from_client.size() == fr.size()) d.data(1, frame(1, true, "masked", true));
  }
  auto envs = d.envelopes();
  ASSERT_EQ(envs.size(), 5u);
  std::vector<std::string> names;
  for (const auto& e : envs) names.push_back(e.anomalies.empty() ? "" : e.anomalies[0].name);
  EXPECT_EQ(names, (std::vector<std::string>{"ws_unmasked_client_frame", "ws_masked_server_frame",
                                             "ws_unexpected_continuation", "ws_bad_control_frame", "ws_bad_rsv"}));
  EXPECT_EQ(d.sent[1], from_client);  // still forwarded as they were
}

TEST(WsLayer, ExtensionsHeader) {
  auto d = parse_ws_extensions("x-other; a=1, permessage-deflate; client_max_window_bits=10; server_no_context_takeover");
  EXPECT_TRUE(d.enabled);
  EXPECT_TRUE(d.server_no_context_takeover);
  EXPECT_FALSE(d.client_no_context_takeover);
  EXPECT_EQ(d.client_window_bits, 10);
  EXPECT_EQ(d.server_window_bits, 15);
  EXPECT_FALSE(parse_ws_extensions("x-webkit-deflate-frame").enabled);
}

// With steps, a whole data message is one unit: its frames wait for the verdict, control frames go
// out in order behind the units before them (a ping inside a fragmented message goes out at once),
// and the verdict says what is sent.
TEST(WsLayer, MessagesAreUnitsWithSteps) {
  std::string client = frame(1, false, "ab", true) + frame(9, true, "p", true) + frame(0, true, "cd", true) +
                       frame(2, true, "xyz", true);
  for (size_t split = 0; split <= client.size(); ++split) {
    Fixture f(true);
    LayerDriver d(f.layer());
    d.hold_pipeline = true;
    d.client(client.substr(0, split));
    d.client(client.substr(split));
    EXPECT_EQ(d.sent[1], frame(9, true, "p", true)) << split;  // the messages wait, not the ping
    auto units = d.envelopes();
    ASSERT_EQ(units.size(), 3u) << split;  // the ping's record, two units in the pipeline at once
    std::erase_if(units, [](const envelope::Envelope& e) { return ws(e).opcode == 9; });
    ASSERT_EQ(units.size(), 2u) << split;
    EXPECT_EQ(ws(units[0]).payload, "abcd");
    EXPECT_EQ(ws(units[0]).opcode, 1);
    EXPECT_TRUE(ws(units[0]).fin);
    EXPECT_EQ(units[0].raw, frame(1, false, "ab", true) + frame(0, true, "cd", true));  // its frames, not the ping
    d.release();
    EXPECT_EQ(d.sent[1], frame(9, true, "p", true) + frame(1, false, "ab", true) + frame(0, true, "cd", true) +
                             frame(2, true, "xyz", true))
        << split;
    // A ping behind a waiting message goes out after it.
    d.hold_pipeline = true;
    d.client(frame(1, true, "m", true) + frame(9, true, "q", true));
    EXPECT_EQ(d.sent[1].size(), client.size()) << split;
    d.release();
    EXPECT_EQ(d.sent[1], frame(9, true, "p", true) +
                             frame(1, false, "ab", true) + frame(0, true, "cd", true) + frame(2, true, "xyz", true) +
                             frame(1, true, "m", true) + frame(9, true, "q", true));
  }
}

// What waits behind a held message is bounded: past 4 MiB (here a flood of pings) reading pauses,
// and resumes once the verdict lets it all go.
TEST(WsLayer, ReadingPausesWhileTooMuchWaitsBehindAHeldMessage) {
  Fixture f(true);
  LayerDriver d(f.layer());
  d.hold_pipeline = true;
  d.client(frame(1, true, "held", true));
  std::string ping = frame(9, true, std::string(125, 'p'), true);
  std::string flood;
  for (int i = 0; i < 40000; ++i) flood += ping;  // about 5 MiB
  d.client(flood);
  EXPECT_TRUE(d.paused[kClientConn]);
  EXPECT_EQ(d.sent[1], "");
  d.release();
  EXPECT_FALSE(d.paused[kClientConn]);
  EXPECT_EQ(d.sent[1], frame(1, true, "held", true) + flood);
}

TEST(WsLayer, DropLeavesAMessageOutKillCloses) {
  Fixture f(true);
  LayerDriver d(f.layer());
  d.verdict = Verdict::drop;
  d.client(frame(1, true, "secret", true));
  d.verdict = Verdict::forward;
  d.client(frame(1, true, "fine", true));
  EXPECT_EQ(d.sent[1], frame(1, true, "fine", true));
  d.data(1, frame(1, true, "from server", false));
  EXPECT_EQ(d.sent[kClientConn], frame(1, true, "from server", false));
  d.verdict = Verdict::kill;
  d.client(frame(1, true, "die", true));
  EXPECT_EQ(d.sent[1], frame(1, true, "fine", true));
  auto ends = d.records_of<envelope::EndRecord>();
  ASSERT_EQ(ends.size(), 1u);
  EXPECT_EQ(ends[0].reason, "killed");
}

// A changed compressed message breaks the receiver's context when the sender takes it over: later
// messages are compressed again by the proxy, and the receiver reads each of them.
TEST(WsLayer, AChangedCompressedMessageRecompressesTheRest) {
  Fixture f(true);
  WsDeflate deflate;
  deflate.enabled = true;
  LayerDriver d(f.layer(deflate));
  Deflater sender;
  std::string text = "the same words, the same words, the same words";
  d.modify = true;  // the driver appends a byte to raw: a changed message
  d.client(frame(1, true, sender.message(text), true, true));
  d.modify = false;
  d.client(frame(1, true, sender.message(text), true, true));  // refers back to the first
  // What the server got: the changed first message, then the second, compressed anew (no back-reference).
  std::string got = d.sent[1];
  auto envs = d.envelopes();
  ASSERT_EQ(envs.size(), 3u);  // the first unit, the second unit, the second's re-compressed variant
  EXPECT_EQ(envs[2].modified_by, "sluice");
  EXPECT_TRUE(envs[2].modified);
  EXPECT_EQ(got.substr(got.size() - envs[2].raw.size()), envs[2].raw);
  // The variant reads back alone, with a fresh context, as the same text.
  Fixture g;
  LayerDriver reader(g.layer(deflate));
  reader.client(envs[2].raw);
  ASSERT_EQ(reader.envelopes().size(), 1u);
  EXPECT_EQ(ws(reader.envelopes()[0]).payload, text);
  EXPECT_TRUE(reader.envelopes()[0].anomalies.empty());
}

TEST(WsCodec, EncodesFramesAReaderParsesBack) {
  for (bool compressed : {false, true}) {
    for (size_t n : {0u, 5u, 125u, 126u, 65535u, 65536u, 200000u}) {
      envelope::WsMessage m;
      m.opcode = 2;
      m.compressed = compressed;
      for (size_t i = 0; i < n; ++i) m.payload += static_cast<char>(i * 7 % 251);
      WsDeflate deflate;
      deflate.enabled = compressed;
      for (bool mask : {false, true}) {
        Fixture f;
        LayerDriver d(f.layer(deflate));
        std::string bytes = codec::ws_encode(m, mask, 10);
        d.data(mask ? kClientConn : 1, bytes);
        auto envs = d.envelopes();
        ASSERT_EQ(envs.size(), 1u) << n;
        EXPECT_EQ(ws(envs[0]).payload, m.payload) << n << compressed << mask;
        EXPECT_EQ(ws(envs[0]).masked, mask);
        EXPECT_EQ(ws(envs[0]).compressed, compressed);
        EXPECT_TRUE(envs[0].anomalies.empty()) << n;
      }
    }
  }
  envelope::WsMessage close;
  close.opcode = 8;
  close.close_code = 4000;
  close.close_reason = "bye";
  EXPECT_EQ(codec::ws_encode(close, false), std::string("\x88\x05\x0f\xa0" "bye", 7));
}
