"""A loopback HTTP/2 origin for the tests, on Debian's python3-h2: h2c with prior knowledge, or TLS with
ALPN h2. It answers every request with "h2 hello from PATH" (the request body's length appended for
POST), /slow/... after 2 s without holding the other streams, /big with 1 MiB (past every flow-control
window), /trailers with trailers, /events with an event stream (SSE_EVENTS) and /sse-page a page reading it; an RFC 8441 extended CONNECT for websocket is accepted (200) and
each WebSocket frame the client sends is echoed back unmasked. One thread per connection; scheduled
answers keep their turn."""
import select
import socket
import ssl
import threading
import time

import h2.config
import h2.connection
import h2.events
import h2.settings
from OpenSSL.SSL import Error as TlsError, WantReadError as WantRead


# What /events answers: an event stream (two events and a keep-alive comment between them).
SSE_EVENTS = b"id: 1\nevent: tick\ndata: one\n\n: keep-alive\n\ndata: two\ndata: lines\n\n"
# What /sse-page answers: a page whose EventSource reports the data of the first message it gets.
SSE_PAGE = (b'<!doctype html><script>const es = new EventSource("/events");'
            b'es.onmessage = (m) => { es.close(); fetch("/report?sse=" + encodeURIComponent(m.data)); };</script>')


def ws_echo(buf):
    """Whole masked client frames in `buf` -> the same frames unmasked (the server's echo), and the
    bytes left over."""
    out = b""
    while len(buf) >= 2:
        n, head = buf[1] & 0x7F, 2
        if n == 126:
            n, head = int.from_bytes(buf[2:4], "big"), 4
        elif n == 127:
            n, head = int.from_bytes(buf[2:10], "big"), 10
        masked = buf[1] & 0x80
        key = buf[head:head + 4] if masked else b"\0\0\0\0"
        start = head + (4 if masked else 0)
        if len(buf) < start + n:
            break
        payload = bytes(b ^ key[i % 4] for i, b in enumerate(buf[start:start + n]))
        length = bytes([n]) if n < 126 else (bytes([126]) + n.to_bytes(2, "big") if n < 65536
                                              else bytes([127]) + n.to_bytes(8, "big"))
        out += bytes([buf[0]]) + length + payload
        buf = buf[start + n:]
    return out, buf


class NoApplicationProtocol(OSError):
    pass


def select_h2_or_refuse(conn, offers):
    # NO_OVERLAPPING_PROTOCOLS only ignores the offer; an exception makes pyOpenSSL fail the handshake,
    # and OpenSSL then sends the alert no_application_protocol.
    if b"h2" in offers:
        return b"h2"
    raise NoApplicationProtocol("the client offered no h2")


class H2Server:
    def __init__(self, cert=None, key=None, strict_alpn=False):
        """`strict_alpn`: a client that does not offer h2 gets the TLS alert no_application_protocol, as
        HTTP/2-only servers (Go's, gRPC's) send (pyOpenSSL: Python's ssl only ignores the offer)."""
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        self.ctx = None
        if cert:
            self.ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            self.ctx.load_cert_chain(cert, key)
            self.ctx.set_alpn_protocols(["h2"])
        if cert and strict_alpn:
            self.ctx = (cert, key)  # a pyOpenSSL context per connection: see _strict_context
        self.requests = []  # (path, headers dict)
        self.running = True
        threading.Thread(target=self._accept, daemon=True).start()

    def _strict_context(self):
        """pyOpenSSL keeps the exception an ALPN callback raised in its Context and raises it from the
        next failing call of any connection of that context: shared across threads, one connection's
        refusal surfaced in another's handshake or read and killed it. One context per connection."""
        from OpenSSL import SSL
        ctx = SSL.Context(SSL.TLS_SERVER_METHOD)
        ctx.use_certificate_chain_file(self.ctx[0])
        ctx.use_privatekey_file(self.ctx[1])
        ctx.set_alpn_select_callback(select_h2_or_refuse)
        return ctx

    def close(self):
        self.running = False
        self.sock.close()

    def _accept(self):
        while self.running:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(c,), daemon=True).start()

    def _serve(self, sock):
        try:
            if isinstance(self.ctx, ssl.SSLContext):
                sock = self.ctx.wrap_socket(sock, server_side=True)
            elif self.ctx:
                from OpenSSL import SSL
                sock = SSL.Connection(self._strict_context(), sock)
                sock.set_accept_state()
                sock.do_handshake()
            conn = h2.connection.H2Connection(config=h2.config.H2Configuration(client_side=False))
            conn.local_settings = h2.settings.Settings(
                client=False, initial_values={h2.settings.SettingCodes.ENABLE_CONNECT_PROTOCOL: 1})
            conn.initiate_connection()
            sock.sendall(conn.data_to_send())
            sock.settimeout(0.05)
            bodies, heads, due, pending_out = {}, {}, [], {}
            while self.running:
                try:
                    data = sock.recv(65536)
                    if not data:
                        return
                    events = conn.receive_data(data)
                except (socket.timeout, ssl.SSLWantReadError):
                    events = []
                except WantRead:  # pyOpenSSL does not wait out the socket's timeout itself
                    select.select([sock.fileno()], [], [], 0.05)
                    events = []
                for ev in events:
                    if isinstance(ev, h2.events.RequestReceived):
                        heads[ev.stream_id] = dict((k.decode() if isinstance(k, bytes) else k,
                                                    v.decode() if isinstance(v, bytes) else v) for k, v in ev.headers)
                        bodies[ev.stream_id] = b""
                        if heads[ev.stream_id].get(":protocol") == "websocket":
                            self.requests.append((heads[ev.stream_id][":path"], heads[ev.stream_id]))
                            conn.send_headers(ev.stream_id, [(":status", "200")])
                    elif isinstance(ev, h2.events.DataReceived):
                        bodies[ev.stream_id] += ev.data
                        conn.acknowledge_received_data(ev.flow_controlled_length, ev.stream_id)
                        if heads[ev.stream_id].get(":protocol") == "websocket":
                            frames, bodies[ev.stream_id] = ws_echo(bodies[ev.stream_id])
                            if frames:
                                conn.send_data(ev.stream_id, frames)
                    elif isinstance(ev, h2.events.StreamEnded) and heads[ev.stream_id].get(":protocol") == "websocket":
                        conn.end_stream(ev.stream_id)
                    elif isinstance(ev, h2.events.StreamEnded):
                        head = heads[ev.stream_id]
                        self.requests.append((head[":path"], head))
                        delay = 2.0 if head[":path"].startswith("/slow") else 0
                        due.append((time.monotonic() + delay, ev.stream_id))
                    elif isinstance(ev, h2.events.WindowUpdated):
                        pass
                now = time.monotonic()
                for when, sid in sorted(d for d in due if d[0] <= now):
                    due.remove((when, sid))
                    path = heads[sid][":path"]
                    body = b"x" * (1 << 20) if path == "/big" else ("h2 hello from %s" % path).encode()
                    if heads[sid][":method"] == "POST":
                        body += b" got %d" % len(bodies[sid])
                    if path == "/events":
                        body = SSE_EVENTS
                        conn.send_headers(sid, [(":status", "200"), ("content-type", "text/event-stream")])
                    elif path == "/sse-page":
                        body = SSE_PAGE
                        conn.send_headers(sid, [(":status", "200"), ("content-type", "text/html"),
                                                ("content-length", str(len(body)))])
                    else:
                        conn.send_headers(sid, [(":status", "200"), ("content-type", "text/plain"),
                                                ("content-length", str(len(body)))] if path != "/trailers" else
                                          [(":status", "200"), ("content-type", "text/plain")])
                    pending_out[sid] = body
                for sid in list(pending_out):
                    body = pending_out[sid]
                    window = min(conn.local_flow_control_window(sid), conn.max_outbound_frame_size)
                    if window <= 0 and body:
                        continue
                    chunk, rest = body[:window], body[window:]
                    if rest:
                        conn.send_data(sid, chunk)
                        pending_out[sid] = rest
                    else:
                        trailers = heads[sid][":path"] == "/trailers"
                        conn.send_data(sid, chunk, end_stream=not trailers)
                        if trailers:
                            conn.send_headers(sid, [("x-checksum", "abc123")], end_stream=True)
                        del pending_out[sid]
                out = conn.data_to_send()
                if out:
                    sock.sendall(out)
        except (OSError, ssl.SSLError, h2.exceptions.ProtocolError, KeyError, TlsError):
            return
        finally:
            sock.close()
