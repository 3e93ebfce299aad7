"""WebSocket through `sluice proxy` with Debian's python3-websockets (10.4, which has no proxy support:
the client goes through reverse listeners, or through a CONNECT it opens itself), over ws:// and wss://,
with and without permessage-deflate: text, binary, fragmented and 1 MiB messages, ping/pong and close
all work, and the stream holds every frame with the inflated payload in the view."""
import asyncio
import base64
import os
import socket
import ssl
import sys
import threading
import time
import unittest
import warnings

import websockets
from websockets.extensions.permessage_deflate import ClientPerMessageDeflateFactory

sys.path.insert(0, os.path.dirname(__file__))
from support import Proxy, byte_member, recv_exactly, records  # noqa: E402
from test_tls import PkiCase  # noqa: E402

warnings.simplefilter("ignore", ResourceWarning)

BIG_TEXT = "sluice " * (1 << 20 // 7 + 1)
BIG_BINARY = os.urandom(1 << 20)


class EchoServer:
    """A websockets echo server in its own event loop thread (optionally over TLS); `reply` makes the
    answer from each message, `got` keeps what arrived."""

    def __init__(self, compression, ssl_context=None, reply=lambda message: message):
        self.loop = asyncio.new_event_loop()
        self.got = []
        ready = threading.Event()

        async def echo(ws, path):
            try:
                async for message in ws:
                    self.got.append(message)
                    await ws.send(reply(message))
            except websockets.ConnectionClosed:
                pass  # the client closes with 4000, which websockets reports as an error

        async def start():
            self.server = await websockets.serve(echo, "127.0.0.1", 0, compression=compression, ssl=ssl_context,
                                                 max_size=None)
            self.port = self.server.sockets[0].getsockname()[1]
            ready.set()

        threading.Thread(target=self.loop.run_forever, daemon=True).start()
        asyncio.run_coroutine_threadsafe(start(), self.loop)
        ready.wait(10)

    def close(self):
        async def stop():
            self.server.close()
            await self.server.wait_closed()
        asyncio.run_coroutine_threadsafe(stop(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)


async def conversation(uri, compression, **kw):
    async with websockets.connect(uri, compression=compression, max_size=None, **kw) as ws:
        await ws.send("hello")
        assert await ws.recv() == "hello"
        await ws.send(b"\x00\x01\x02binary\xff")
        assert await ws.recv() == b"\x00\x01\x02binary\xff"
        await ws.send(["frag1 ", "frag2 ", "frag3"])  # one message in three frames
        assert await ws.recv() == "frag1 frag2 frag3"
        await ws.send(BIG_TEXT)
        assert await ws.recv() == BIG_TEXT
        await ws.send(BIG_BINARY)
        assert await ws.recv() == BIG_BINARY
        pong = await ws.ping(b"are you there")
        await asyncio.wait_for(pong, 10)
        await ws.close(code=4000, reason="bye")


def payload(env):
    return byte_member(env["message"]["payload"])


class WebSocket(PkiCase):
    def check_stream(self, recs, compression):
        frames = [r for r in recs if r["type"] == "envelope" and r["protocol"] == "ws"]
        sent = [f for f in frames if f["direction"] == "send"]
        got = [f for f in frames if f["direction"] == "receive"]
        self.assertTrue(all(f["message"]["masked"] for f in sent))
        self.assertFalse(any(f["message"]["masked"] for f in got))
        self.assertFalse([f for f in frames if f.get("anomalies")])
        # The messages as the view shows them, in both directions, inflated when they were compressed.
        for side in (sent, got):
            finals = [f for f in side if f["message"]["fin"] and f["message"]["opcode"] in (0, 1, 2)]
            self.assertEqual([payload(f) for f in finals],
                             [b"hello", b"\x00\x01\x02binary\xff", b"frag1 frag2 frag3", BIG_TEXT.encode(), BIG_BINARY])
            if side is sent:  # websockets sends the three fragments, then an empty final frame; the echo is whole
                self.assertGreaterEqual(int(finals[2]["tags"]["message_frames"]), 3)
            if compression:
                self.assertTrue(finals[3]["message"]["compressed"])  # 1 MiB of text: surely compressed
                self.assertLess(len(base64.b64decode(finals[3]["raw"])), 100000)
            else:
                self.assertFalse(any(f["message"].get("compressed") for f in finals))
        ping = [f for f in sent if f["message"]["opcode"] == 9]
        pong = [f for f in got if f["message"]["opcode"] == 10]
        self.assertEqual((payload(ping[0]), payload(pong[0])), (b"are you there", b"are you there"))
        close = [f for f in sent if f["message"]["opcode"] == 8][0]["message"]
        self.assertEqual((close["close_code"], close["close_reason"]), (4000, "bye"))
        # Every frame's raw bytes are on the stream: the sent ones add up to what the server received.
        self.assertEqual(len({f["stream_id"] for f in frames}), 1)

    def run_reverse(self, compression, client_tls):
        server = EchoServer(compression)
        proxy = Proxy("--mode", "reverse:http://127.0.0.1:%d@0" % server.port)
        if client_tls:
            ctx = ssl.create_default_context(cafile=self.sluice_ca)
            asyncio.run(conversation("wss://localhost:%d/echo" % proxy.port, compression, ssl=ctx))
        else:
            asyncio.run(conversation("ws://127.0.0.1:%d/echo" % proxy.port, compression))
        time.sleep(0.3)
        code, out = proxy.stop()
        server.close()
        self.assertEqual(code, 0)
        recs = records(out)
        self.check_stream(recs, compression)
        return recs

    def test_ws_with_deflate(self):
        recs = self.run_reverse("deflate", False)
        upgrade = [r for r in recs if r["type"] == "envelope" and r["protocol"] == "http"]
        self.assertEqual(upgrade[-1]["message"]["status"], 101)
        ws = [r for r in recs if r["type"] == "envelope" and r["protocol"] == "ws"]
        self.assertEqual({r["flow_id"] for r in ws}, {upgrade[-1]["flow_id"]})  # the upgrade's flow

    def test_ws_deflate_without_context_takeover(self):
        server = EchoServer("deflate")
        proxy = Proxy("--mode", "reverse:http://127.0.0.1:%d@0" % server.port)
        factory = ClientPerMessageDeflateFactory(server_no_context_takeover=True, client_no_context_takeover=True)
        asyncio.run(conversation("ws://127.0.0.1:%d/echo" % proxy.port, None, extensions=[factory]))
        time.sleep(0.3)
        code, out = proxy.stop()
        server.close()
        recs = records(out)
        upgrade = [r for r in recs if r["type"] == "envelope" and r["protocol"] == "http"][-1]
        ext = dict(upgrade["message"]["headers"])["Sec-WebSocket-Extensions"]
        self.assertIn("server_no_context_takeover", ext)
        self.assertIn("client_no_context_takeover", ext)
        self.check_stream(recs, True)

    def test_ws_without_compression(self):
        self.run_reverse(None, False)

    def test_wss_with_and_without_deflate(self):
        for compression in ("deflate", None):
            with self.subTest(compression=compression):
                self.run_reverse(compression, True)

    def test_wss_through_connect_to_a_tls_server(self):
        """Regular mode: the client opens a CONNECT itself; TLS is intercepted on both legs."""
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(self.pki.cert, self.pki.key)
        server = EchoServer("deflate", ctx)
        proxy = Proxy("--mode", "regular@0", "--server-ca", self.pki.ca)
        sock = socket.create_connection(("127.0.0.1", proxy.port), timeout=10)
        sock.sendall(b"CONNECT localhost:%d HTTP/1.1\r\nHost: localhost:%d\r\n\r\n" % (server.port, server.port))
        head = b""
        while not head.endswith(b"\r\n\r\n"):
            head += recv_exactly(sock, 1)
        self.assertTrue(head.startswith(b"HTTP/1.1 200"), head)
        client_ctx = ssl.create_default_context(cafile=self.sluice_ca)
        asyncio.run(conversation("wss://localhost:%d/echo" % server.port, "deflate", sock=sock, ssl=client_ctx,
                                 server_hostname="localhost"))
        time.sleep(0.3)
        code, out = proxy.stop()
        server.close()
        self.check_stream(records(out), "deflate")


if __name__ == "__main__":
    unittest.main(verbosity=2)
