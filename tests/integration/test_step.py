"""Step programs (formats/STEP.md): `sluice proxy --step` changes live traffic with a program in any
language, `sluice step` runs the same program over a capture; a step that crashes, hangs or writes
garbage never takes the proxy down."""
import base64
import json
import os
import re
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
import unittest
import http.client
import http.server
import urllib.error
import urllib.request

sys.path.insert(0, os.path.dirname(__file__))
from support import (ROOT, SLUICE, TEST_ENV, EchoServer, Proxy, connect, curl, records, recv_exactly,  # noqa: E402
                     serve_hello)

from test_grpc_web import lpm  # noqa: E402

EXAMPLES = os.path.join(ROOT, "examples", "steps")


class Seen(http.server.BaseHTTPRequestHandler):
    """An origin that answers with the request's headers, and remembers them."""
    protocol_version = "HTTP/1.1"
    requests = []

    def do_GET(self):
        Seen.requests.append((self.path, dict(self.headers)))
        body = ("path=%s step=%s\n" % (self.path, self.headers.get("X-Sluice-Step", "-"))).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def origin():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Seen)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def units(recs):
    return [r for r in recs if r["type"] == "envelope"]


class StepCase(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.dir = tempfile.TemporaryDirectory()
        cls.origin = origin()
        cls.base = "127.0.0.1:%d" % cls.origin.server_address[1]

    @classmethod
    def tearDownClass(cls):
        cls.origin.shutdown()
        cls.dir.cleanup()

    def script(self, name, body):
        path = os.path.join(self.dir.name, name)
        with open(path, "w") as f:
            f.write(textwrap.dedent(body))
        return "/usr/bin/python3 " + path

    def reverse(self, *steps, extra=()):
        args = ["--mode", "reverse:http://%s@0" % self.base]
        for s in steps:
            args += ["--step", s]
        return Proxy(*args, *extra)


class Live(StepCase):
    def test_a_request_header_added_reaches_the_server_and_both_are_recorded(self):
        step = "/usr/bin/python3 %s/add_header.py" % EXAMPLES
        proxy = self.reverse(step)
        p = curl("http://127.0.0.1:%d/one" % proxy.port)
        self.assertEqual(p.stdout, b"path=/one step=seen\n")  # the server saw the step's header
        code, out = proxy.stop()
        self.assertEqual(code, 0)
        # The original, the step's variant (and the proxy's own, with the server's Host: reverse mode).
        reqs = [r for r in units(records(out)) if r["message"]["kind"] == "request" and
                r.get("modified_by") in (None, "step:add_header.py")]
        self.assertEqual(len(reqs), 2, reqs)
        original, variant = reqs
        self.assertNotIn("modified_by", original)
        self.assertEqual(variant["variant"], "modified")
        self.assertEqual(variant["variant_of"], original["seq"])
        self.assertEqual(variant["modified_by"], "step:add_header.py")
        self.assertIn(["X-Sluice-Step", "seen"], variant["message"]["headers"])
        self.assertIn(b"\r\nX-Sluice-Step: seen\r\n", base64.b64decode(variant["raw"]))
        self.assertNotIn(b"X-Sluice-Step", base64.b64decode(original["raw"]))
        self.assertIn("sluice: running step step:add_header.py", "".join(proxy.stderr_lines))

    def test_a_step_holds_no_descriptor_of_the_proxys(self):
        """Not the listening socket (a step that outlived the proxy would hold its port), nor any other."""
        step = self.script("fds.py", '''
            import os, sys
            fds = sorted(int(f) for f in os.listdir("/proc/self/fd"))
            sys.stderr.write("fds %s\\n" % fds)
            sys.stderr.flush()
            sys.stdin.readline()
            for line in sys.stdin:
                sys.stdout.write(line)
                sys.stdout.flush()
        ''')
        proxy = self.reverse(step)
        self.assertEqual(curl("http://127.0.0.1:%d/fds" % proxy.port).returncode, 0)
        code, _ = proxy.stop()
        m = re.search(r"step:fds.py: fds \[([\d, ]*)\]", "".join(proxy.stderr_lines))
        self.assertTrue(m, proxy.stderr_lines)
        fds = [int(f) for f in m.group(1).split(", ")]
        self.assertLessEqual(set(fds), {0, 1, 2, 3})  # 3: the directory listdir reads

    def test_an_answer_written_otherwise_but_unchanged_is_no_variant(self):
        """Members in another order (as a language whose maps sort their keys writes them) change nothing."""
        step = self.script("sorted.py", '''
            import json, sys
            sys.stdin.readline()
            for line in sys.stdin:
                print(json.dumps(json.loads(line), sort_keys=True, indent=None, separators=(", ", ": ")),
                      flush=True)
        ''')
        proxy = self.reverse(step)
        self.assertEqual(curl("http://127.0.0.1:%d/same" % proxy.port).stdout, b"path=/same step=-\n")
        code, out = proxy.stop()
        self.assertEqual([r.get("modified_by") for r in units(records(out)) if r.get("variant") == "modified"],
                         ["sluice"])  # only the proxy's own (reverse mode's Host), none of the step's

    def test_a_response_body_changed_reaches_the_client_with_its_length(self):
        step = self.script("shout.py", '''
            import json, sys
            sys.stdin.readline()
            for line in sys.stdin:
                u = json.loads(line)
                m = u["message"]
                if m.get("kind") == "response":
                    m["body"] = m["body"].upper() + "CHANGED BY A STEP\\n"
                print(json.dumps(u), flush=True)
        ''')
        proxy = self.reverse(step)
        p = curl("-i", "http://127.0.0.1:%d/two" % proxy.port)
        body = "PATH=/TWO STEP=-\nCHANGED BY A STEP\n"
        self.assertTrue(p.stdout.endswith(body.encode()), p.stdout)
        self.assertIn(b"Content-Length: %d\r\n" % len(body), p.stdout)
        code, out = proxy.stop()
        resps = [r for r in units(records(out)) if r["message"]["kind"] == "response"]
        self.assertEqual([r.get("variant", "original") for r in resps], ["original", "modified"])

    def test_respond_answers_drop_refuses_kill_closes_and_the_server_sees_none_of_them(self):
        step = self.script("verdicts.py", '''
            import json, sys
            sys.stdin.readline()
            for line in sys.stdin:
                u = json.loads(line)
                path = u["message"].get("path", "")
                if path == "/mock":
                    print(json.dumps({"type": "verdict", "ask": u["ask"], "outcome": "respond",
                                      "reply": {"status": 418, "reason": "Teapot",
                                                "headers": [["Content-Type", "text/plain"]], "body": "mocked"}}),
                          flush=True)
                elif path == "/kill":
                    print(json.dumps({"type": "verdict", "ask": u["ask"], "outcome": "kill"}), flush=True)
                elif path == "/drop":
                    print(json.dumps({"type": "verdict", "ask": u["ask"], "outcome": "drop"}), flush=True)
                else:
                    print(json.dumps({"type": "verdict", "ask": u["ask"], "outcome": "next"}), flush=True)
        ''')
        before = len(Seen.requests)
        proxy = self.reverse(step)
        p = curl("-i", "http://127.0.0.1:%d/mock" % proxy.port)
        self.assertTrue(p.stdout.startswith(b"HTTP/1.1 418 Teapot\r\n"), p.stdout)
        self.assertTrue(p.stdout.endswith(b"\r\n\r\nmocked"), p.stdout)
        p = curl("http://127.0.0.1:%d/kill" % proxy.port)
        self.assertNotEqual(p.returncode, 0)  # closed: no answer
        p = curl("-i", "http://127.0.0.1:%d/drop" % proxy.port)  # a clear answer naming the step
        self.assertTrue(p.stdout.startswith(b"HTTP/1.1 403 Forbidden\r\n"), p.stdout)
        self.assertTrue(p.stdout.endswith(b"\r\n\r\nsluice: the request was dropped by step:verdicts.py\n"),
                        p.stdout)
        p = curl("http://127.0.0.1:%d/next" % proxy.port)
        self.assertEqual(p.stdout, b"path=/next step=-\n")
        self.assertEqual([path for path, _ in Seen.requests[before:]], ["/next"])  # the others never left
        code, out = proxy.stop()
        recs = units(records(out))
        verdicts = {r["message"]["path"]: r.get("tags", {}).get("verdict") for r in recs
                    if r["direction"] == "send" and r["message"].get("path") and "variant_of" not in r}
        self.assertEqual(verdicts, {"/mock": "respond", "/kill": "kill", "/drop": "drop", "/next": None})

    def test_a_raw_chunk_changed_reaches_the_server(self):
        echo = EchoServer()
        step = "/usr/bin/python3 %s/replace_bytes.py ping PONG" % EXAMPLES
        proxy = Proxy("--mode", "tcp:127.0.0.1:%d@0" % echo.port, "--step", step)
        with connect(proxy.port) as c:
            c.sendall(b"ping!")
            self.assertEqual(recv_exactly(c, 5), b"PONG!")  # changed on the way in, echoed as changed
        code, out = proxy.stop()
        echo.close()
        sent = [r for r in units(records(out)) if r["direction"] == "send"]
        self.assertEqual([base64.b64decode(r["raw"]) for r in sent], [b"ping!", b"PONG!"])
        self.assertEqual(sent[1]["modified_by"], "step:replace_bytes.py")


def ws_server(compression):
    """A WebSocket server that answers each text message with "hello: " and the message."""
    from test_websocket import EchoServer as WsEcho
    return WsEcho(compression, reply=lambda m: "hello: " + m if isinstance(m, str) else m)


def ws_units(recs):
    return [r for r in units(recs) if r["protocol"] == "ws" and r["message"]["opcode"] in (1, 2)]


class WebSocketMessages(StepCase):
    def talk(self, port, messages, compression):
        import asyncio
        import websockets

        async def go():
            answers = []
            async with websockets.connect("ws://127.0.0.1:%d/chat" % port, compression=compression) as ws:
                for m in messages:
                    await ws.send(m)
                    if m == "die":
                        try:
                            answers.append(await asyncio.wait_for(ws.recv(), 10))
                        except websockets.ConnectionClosed:
                            answers.append("closed")
                        break
                    if m != "secret":
                        answers.append(await asyncio.wait_for(ws.recv(), 10))
            return answers
        return asyncio.run(go())

    def test_a_word_rewritten_both_ways_with_permessage_deflate(self):
        server = ws_server("deflate")
        proxy = Proxy("--mode", "reverse:http://127.0.0.1:%d@0" % server.port,
                      "--step", "/usr/bin/python3 %s/rewrite_ws.py hello howdy" % EXAMPLES)
        sent = ["hello world", ["hel", "lo ", "frag"], b"\x00binary hello", "hello again"]
        answers = self.talk(proxy.port, sent, "deflate")
        code, out = proxy.stop()
        server.close()
        # The server got the client's messages changed; the client got the server's changed too.
        # The fragmented message is judged whole: "hel" + "lo " is a word the step rewrites.
        self.assertEqual(server.got, ["howdy world", "howdy frag", b"\x00binary hello", "howdy again"])
        self.assertEqual(answers, ["howdy: howdy world", "howdy: howdy frag", b"\x00binary hello", "howdy: howdy again"])
        msgs = ws_units(records(out))
        changed = [m for m in msgs if m.get("variant") == "modified" and m.get("modified_by") == "step:rewrite_ws.py"]
        self.assertEqual([(m["direction"], m["message"]["payload"]) for m in changed],
                         [("send", "howdy world"), ("receive", "howdy: howdy world"), ("send", "howdy frag"),
                          ("receive", "howdy: howdy frag"),
                          ("send", "howdy again"), ("receive", "howdy: howdy again")])
        for m in changed:  # one frame, masked from the client, compressed as the original was
            raw = base64.b64decode(m["raw"])
            self.assertEqual(raw[0] & 0xC0, 0xC0)
            self.assertEqual(bool(raw[1] & 0x80), m["direction"] == "send")
            self.assertTrue(m["message"]["compressed"])
            original = [o for o in msgs if o["seq"] == m["variant_of"] and o["stream_id"] == m["stream_id"]
                        and o["variant"] == "original"]
            self.assertEqual(len(original), 1)
            self.assertIn("hello", original[0]["message"]["payload"])
        # The fragmented message is one unit: its three frames (and websockets' empty last) in raw.
        frag = [m for m in msgs if m["direction"] == "send" and m["message"]["payload"] == "hello frag"
                and m["variant"] == "original"]
        self.assertGreaterEqual(int(frag[0]["tags"]["message_frames"]), 3)
        # Context takeover: after a changed message the proxy compresses the sender's later ones anew.
        self.assertTrue([m for m in msgs if m.get("modified_by") == "sluice"
                         and m.get("tags", {}).get("reencoded") == "permessage-deflate"])

    def test_drop_leaves_a_message_out_and_kill_closes(self):
        step = self.script("ws_verdicts.py", '''
            import json, sys
            sys.stdin.readline()
            for line in sys.stdin:
                u = json.loads(line)
                p = u.get("message", {}).get("payload")
                if u["protocol"] == "ws" and p == "secret":
                    print(json.dumps({"type": "verdict", "ask": u["ask"], "outcome": "drop"}), flush=True)
                elif u["protocol"] == "ws" and p == "die":
                    print(json.dumps({"type": "verdict", "ask": u["ask"], "outcome": "kill"}), flush=True)
                else:
                    print(json.dumps(u), flush=True)
        ''')
        server = ws_server(None)
        proxy = Proxy("--mode", "reverse:http://127.0.0.1:%d@0" % server.port, "--step", step)
        answers = self.talk(proxy.port, ["one", "secret", "two", "die", "three"], None)
        code, out = proxy.stop()
        server.close()
        self.assertEqual(server.got, ["one", "two"])
        self.assertEqual(answers, ["hello: one", "hello: two", "closed"])
        recs = records(out)
        verdicts = [(m["message"]["payload"], m.get("tags", {}).get("verdict")) for m in ws_units(recs)
                    if m["direction"] == "send"]
        self.assertEqual(verdicts, [("one", None), ("secret", "drop"), ("two", None), ("die", "kill")])
        ws_stream = ws_units(recs)[0]["stream_id"]
        ends = [r for r in recs if r["type"] == "end" and r["stream_id"] == ws_stream]
        self.assertEqual([e["reason"] for e in ends], ["killed"])


class Interest(StepCase):
    def test_units_outside_a_steps_interest_are_not_sent_to_it(self):
        step = self.script("api_only.py", '''
            import json, sys
            print(json.dumps({"type": "interest", "filter": "~u /api", "directions": ["send"]}), flush=True)
            sys.stdin.readline()
            for line in sys.stdin:
                u = json.loads(line)
                sys.stderr.write("got %s\\n" % u["message"]["path"])
                u["message"]["headers"].append(["X-Sluice-Step", "api"])
                print(json.dumps(u), flush=True)
        ''')
        proxy = self.reverse(step)
        for path in ("/api/1", "/web/1", "/api/2", "/web/2"):
            p = curl("http://127.0.0.1:%d%s" % (proxy.port, path))
            self.assertEqual(p.stdout, ("path=%s step=%s\n" % (path, "api" if "api" in path else "-")).encode())
        code, out = proxy.stop()
        err = "".join(proxy.stderr_lines)
        self.assertEqual(re.findall(r"step:api_only.py: got (\S+)", err), ["/api/1", "/api/2"])  # only those

    def test_a_bad_interest_fails_the_step(self):
        step = self.script("bad_interest.py", '''
            import json, sys
            print(json.dumps({"type": "interest", "filter": "~q ~nosuch x"}), flush=True)
            for line in sys.stdin:
                pass
        ''')
        proxy = self.reverse(step)
        self.assertEqual(curl("http://127.0.0.1:%d/x" % proxy.port).returncode, 0)  # passed on
        code, out = proxy.stop()
        errors = [r for r in records(out) if r["type"] == "error"]
        self.assertIn("declared an interest with a bad filter", errors[0]["message"])


class HeadSeen(http.server.BaseHTTPRequestHandler):
    """Answers a request with what it saw of it; GET /big answers 200 KiB."""
    protocol_version = "HTTP/1.1"

    def answer(self, body):
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        self.answer(b"x" * (200 << 10))

    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.answer(("head-step=%s len=%d start=%s" % (self.headers.get("X-Head-Step", "-"), len(body),
                                                       body[:8].decode())).encode())

    do_PUT = do_POST

    def log_message(self, *args):
        pass


class Heads(StepCase):
    """The head phase (curl, HTTP/1.1): a message that streams (over --record-body-limit, Expect:
    100-continue) is judged by its head before any byte of it goes; the step may change the head, or
    ask for the whole message."""

    def test_heads_of_streamed_messages_and_a_whole_ask(self):
        step = self.script("heads.py", '''
            import json, sys
            print(json.dumps({"type": "interest", "phase": ["head", "whole"]}), flush=True)
            sys.stdin.readline()
            for line in sys.stdin:
                u = json.loads(line)
                m = u["message"]
                if u.get("overlay") == "head":
                    if any(h[0].lower() == "expect" for h in m["headers"]):
                        print(json.dumps({"type": "verdict", "ask": u["ask"], "outcome": "whole"}), flush=True)
                        continue
                    m["headers"].append(["X-Head-Step", "seen"])
                elif m["kind"] == "request" and isinstance(m.get("body"), str):
                    m["body"] = m["body"].upper()
                print(json.dumps(u), flush=True)
        ''')
        origin = serve_hello(handler=HeadSeen)
        big = os.path.join(self.dir.name, "big")
        with open(big, "wb") as f:
            f.write(b"a" * (100 << 10))
        def view(out):
            """What live and offline share: not times, the origin's Date, the proxy's Host; nor the answers
            to /up and /put (the origin echoes what the step changed: a live answer has no offline twin), nor
            the 100-continue exchange."""
            recs = units(records(out))
            put = {r["flow_id"] for r in recs if r["message"].get("path") == "/put"}
            up = {r["flow_id"] for r in recs if r["message"].get("path") == "/up"}
            return [(r.get("overlay"), r["direction"], r["message"].get("path"), r["message"].get("status"),
                     [h for h in r["message"]["headers"] if h[0].lower() not in ("date", "host")],
                     r["message"].get("body"), r.get("variant", "original"), r.get("modified_by"), r.get("tags"))
                    for r in recs if r.get("overlay") in (None, "head") and r.get("modified_by") != "sluice"
                    and r["flow_id"] not in put and not (r["flow_id"] in up and r["direction"] == "receive")]

        for client in ((), ("--http2-prior-knowledge",)):  # HTTP/1.1, and HTTP/2 translated to the origin
            h2 = bool(client)
            for with_step in (False, True):
                args = ("--step", step) if with_step else ()
                proxy = Proxy("--mode", "reverse:http://127.0.0.1:%d@0" % origin.server_address[1], *args,
                              "--record-body-limit", "1KiB")
                url = "http://127.0.0.1:%d" % proxy.port
                if with_step:
                    break
                curl(*client, "-H", "Expect:", "--data-binary", "@" + big, url + "/up")
                if not h2:
                    curl("-X", "PUT", "-H", "Expect: 100-continue", "--data-binary", "hello there", url + "/put")
                curl(*client, "-o", "/dev/null", url + "/big")
                plain = proxy.stop()[1]
            # Over the limit: the body streams, its head was the step's.
            p = curl(*client, "-H", "Expect:", "--data-binary", "@" + big, url + "/up")
            self.assertEqual(p.stdout, b"head-step=seen len=102400 start=aaaaaaaa")
            if not h2:  # 100-continue: the step asked for the whole request, and changed its body.
                p = curl("-X", "PUT", "-H", "Expect: 100-continue", "--data-binary", "hello there", url + "/put")
                self.assertEqual(p.stdout, b"head-step=- len=11 start=HELLO TH")
            # A response over the limit: its head changed, its body as it came.
            p = curl(*client, "-D", "-", "-o", "/dev/null", "-w", "%{size_download}", url + "/big")
            self.assertIn(b"x-head-step: seen\r\n", p.stdout.lower())
            self.assertTrue(p.stdout.endswith(b"\r\n\r\n204800"), p.stdout)
            code, out = proxy.stop()
            self.assertEqual(code, 0)
            recs = units(records(out))
            heads = [(r["direction"], r.get("modified_by")) for r in recs if r.get("overlay") == "head"]
            self.assertEqual(heads, [("send", None), ("send", "step:heads.py")] + ([] if h2 else [("send", None)]) +
                             [("receive", None), ("receive", "step:heads.py")])
            up = [r for r in recs if not r.get("overlay") and r["message"].get("path") == "/up"
                  and "variant_of" not in r]
            self.assertEqual(up[0]["tags"]["head_modified_by"], "step:heads.py")
            self.assertEqual(up[0]["message"]["body_omitted"], 100 * 1024 - 1024)
            # `sluice step` over the capture made without the step gives what the proxy recorded with it.
            p = subprocess.run([SLUICE, "step", step, "-"], input=plain, capture_output=True, timeout=60, env=TEST_ENV)
            self.assertEqual(p.returncode, 0, p.stderr)
            self.maxDiff = None
            self.assertEqual(view(p.stdout), view(out))
        origin.shutdown()
        origin.server_close()


class Failures(StepCase):
    def assert_error(self, out, code):
        errors = [r for r in records(out) if r["type"] == "error"]
        self.assertTrue(errors, "no error record")
        self.assertEqual(errors[0]["code"], code, errors)
        self.assertTrue(errors[0]["step"].startswith("step:"), errors)
        return errors

    def test_a_step_that_crashes_is_restarted_and_the_proxy_keeps_serving(self):
        step = self.script("crash.py", '''
            import sys
            sys.stdin.readline()
            sys.stdin.readline()
            sys.stderr.write("giving up\\n")
            sys.exit(3)
        ''')
        proxy = self.reverse(step)
        for i in range(3):
            p = curl("http://127.0.0.1:%d/c%d" % (proxy.port, i))
            self.assertEqual(p.stdout, ("path=/c%d step=-\n" % i).encode())  # passed on: the policy
        code, out = proxy.stop()
        self.assertEqual(code, 0)
        errors = self.assert_error(out, "step_exited")
        self.assertIn("exited with status 3", errors[0]["message"])
        self.assertIn("step:crash.py: giving up", "".join(proxy.stderr_lines))  # its stderr, prefixed

    def test_a_step_that_hangs_times_out_under_the_kill_policy(self):
        step = self.script("hang.py", '''
            import sys, time
            sys.stdin.readline()
            for line in sys.stdin:
                time.sleep(60)
        ''')
        proxy = self.reverse(step, extra=("--step-timeout", "0.5", "--step-on-error", "kill"))
        started = time.monotonic()
        p = curl("http://127.0.0.1:%d/hang" % proxy.port)
        self.assertNotEqual(p.returncode, 0)  # killed
        self.assertLess(time.monotonic() - started, 5)
        code, out = proxy.stop()
        self.assertEqual(code, 0)
        self.assert_error(out, "step_timeout")

    def test_a_step_that_writes_garbage_is_failed(self):
        step = self.script("garbage.py", '''
            import sys
            sys.stdin.readline()
            for line in sys.stdin:
                print("hello, I am not JSON", flush=True)
        ''')
        proxy = self.reverse(step)
        p = curl("http://127.0.0.1:%d/g" % proxy.port)
        self.assertEqual(p.stdout, b"path=/g step=-\n")
        code, out = proxy.stop()
        errors = self.assert_error(out, "step_failed")
        self.assertIn("not JSON", errors[0]["message"])

    def test_a_client_that_leaves_while_its_unit_is_held(self):
        """The step answers after the client is gone: the late verdict is ignored, nothing leaks (the
        ASan build's leak check runs at the proxy's exit), the capture keeps the stream-end rule."""
        step = self.script("slow.py", '''
            import sys, time
            sys.stdin.readline()
            for line in sys.stdin:
                time.sleep(0.5)
                sys.stdout.write(line)
                sys.stdout.flush()
        ''')
        proxy = self.reverse(step)
        for _ in range(3):
            c = connect(proxy.port)
            c.sendall(b"GET /gone HTTP/1.1\r\nHost: h\r\n\r\n")
            c.close()
        p = curl("http://127.0.0.1:%d/stays" % proxy.port)
        self.assertEqual(p.stdout, b"path=/stays step=-\n")  # served meanwhile, once the step got to it
        code, out = proxy.stop()  # checks the stream-end rule
        self.assertEqual(code, 0, proxy.stderr_lines)

    def test_a_unit_whose_client_is_gone_is_cancelled_and_the_step_told(self):
        """A client resets its connection while the step holds its request: the unit is cancelled at
        once (not at the step's timeout), the step that asked for it is told, its late answer is
        ignored, and the request is recorded before its stream's end."""
        told, got = os.path.join(self.dir.name, "told"), os.path.join(self.dir.name, "got")
        step = self.script("cancel.py", '''
            import json, sys
            print(json.dumps({"type": "interest", "cancel": True}), flush=True)
            sys.stdin.readline()
            held = {}
            for line in sys.stdin:
                u = json.loads(line)
                if u.get("type") == "cancel":
                    with open(%r, "a") as f:
                        f.write("%%d\\n" %% u["ask"])
                    print(json.dumps(held.pop(u["ask"])), flush=True)  # too late: ignored
                elif u.get("message", {}).get("path") == "/held":
                    held[u["ask"]] = u
                    open(%r, "w").close()
                else:
                    print(json.dumps(u), flush=True)
        ''' % (told, got))
        proxy = self.reverse(step, extra=("--step-timeout", "30"))
        c = connect(proxy.port)
        c.sendall(b"GET /held HTTP/1.1\r\nHost: h\r\n\r\n")
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and not os.path.exists(got):  # the step has it
            time.sleep(0.05)
        c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        c.close()  # a reset
        start = time.monotonic()
        while time.monotonic() - start < 10 and not os.path.exists(told):
            time.sleep(0.05)
        self.assertTrue(os.path.exists(told))
        self.assertLess(time.monotonic() - start, 5)
        p = curl("http://127.0.0.1:%d/after" % proxy.port)
        self.assertEqual(p.stdout, b"path=/after step=-\n")  # the step works on
        code, out = proxy.stop()  # checks the stream-end rule
        self.assertEqual(code, 0, proxy.stderr_lines)
        recs = records(out)
        self.assertEqual([r for r in recs if r["type"] == "error" and r["code"].startswith("step_")], [])
        held = [r for r in units(recs) if r["message"].get("path") == "/held"]
        self.assertEqual(len(held), 1)
        self.assertNotIn("/held", [p for p, _ in Seen.requests])

    def test_an_http2_stream_reset_while_held_is_cancelled_and_the_others_go_on(self):
        """An HTTP/2 client resets one stream while the step holds its request: that unit is cancelled
        at once and the step told; the connection and its other streams go on."""
        import h2.config
        import h2.connection
        import h2.events
        told, got = os.path.join(self.dir.name, "told-h2"), os.path.join(self.dir.name, "got-h2")
        step = self.script("cancel_h2.py", '''
            import json, sys
            print(json.dumps({"type": "interest", "cancel": True, "directions": ["send"]}), flush=True)
            sys.stdin.readline()
            for line in sys.stdin:
                u = json.loads(line)
                if u.get("type") == "cancel":
                    with open(%r, "a") as f:
                        f.write("%%d\\n" %% u["ask"])
                elif u.get("message", {}).get("path") == "/held":
                    open(%r, "w").close()
                else:
                    print(json.dumps(u), flush=True)
        ''' % (told, got))
        proxy = self.reverse(step, extra=("--step-timeout", "30"))
        sock = socket.create_connection(("127.0.0.1", proxy.port), timeout=10)
        conn = h2.connection.H2Connection(config=h2.config.H2Configuration(client_side=True))
        conn.initiate_connection()

        def get(path):
            sid = conn.get_next_available_stream_id()
            conn.send_headers(sid, [(":method", "GET"), (":scheme", "http"), (":authority", "h"), (":path", path)],
                              end_stream=True)
            sock.sendall(conn.data_to_send())
            return sid

        held = get("/held")
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and not os.path.exists(got):  # the step has it
            time.sleep(0.05)
        conn.reset_stream(held)
        sock.sendall(conn.data_to_send())
        start = time.monotonic()
        while time.monotonic() - start < 10 and not os.path.exists(told):
            time.sleep(0.05)
        self.assertTrue(os.path.exists(told))
        self.assertLess(time.monotonic() - start, 5)
        after = get("/after")
        sock.settimeout(10)
        body, ended = b"", False
        while not ended:
            data = sock.recv(65536)
            self.assertTrue(data)
            for ev in conn.receive_data(data):
                if isinstance(ev, h2.events.DataReceived) and ev.stream_id == after:
                    body += ev.data
                    conn.acknowledge_received_data(ev.flow_controlled_length, ev.stream_id)
                elif isinstance(ev, h2.events.StreamEnded) and ev.stream_id == after:
                    ended = True
            sock.sendall(conn.data_to_send())
        self.assertEqual(body, b"path=/after step=-\n")
        sock.close()
        code, out = proxy.stop()
        self.assertEqual(code, 0, proxy.stderr_lines)
        self.assertEqual([r for r in records(out) if r["type"] == "error" and r["code"].startswith("step_")], [])

    def test_sigint_with_a_held_unit_exits_within_the_grace_period(self):
        step = self.script("hold.py", '''
            import sys, time
            sys.stdin.readline()
            sys.stdin.readline()
            time.sleep(60)
        ''')
        proxy = self.reverse(step, extra=("--step-timeout", "60", "--grace", "1"))
        c = connect(proxy.port)
        c.sendall(b"GET /held HTTP/1.1\r\nHost: h\r\n\r\n")
        time.sleep(0.3)
        started = time.monotonic()
        code, _ = proxy.stop(timeout=15)
        self.assertEqual(code, 0)
        self.assertLess(time.monotonic() - started, 5)
        c.close()


EVENTS = [b"event: heartbeat\ndata: x\n\n", b"data: price 10\n\n", b": comment\n\n",
          b"id: 3\nevent: quote\ndata: price 12\ndata: end\nretry: 100\n\n", b"data: unchanged\r\n\r\n"]


class Events(http.server.BaseHTTPRequestHandler):
    """An event stream over HTTP/1.1, one chunk per block of EVENTS, then the end of the body."""
    protocol_version = "HTTP/1.1"

    def do_GET(self):
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        for block in EVENTS:
            self.wfile.write(b"%x\r\n%s\r\n" % (len(block), block))
            self.wfile.flush()
        self.wfile.write(b"0\r\n\r\n")

    def log_message(self, *args):
        pass


def sse_view(out):
    return [(r["message"].get("event"), r["message"].get("data"), r.get("variant", "original"), r.get("modified_by"),
             r.get("tags", {}).get("verdict"), base64.b64decode(r["raw"]))
            for r in units(records(out)) if r["protocol"] == "sse"]


class ServerSentEvents(StepCase):
    def test_events_dropped_and_changed_over_http1_and_http2_live_and_offline(self):
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Events)
        server.daemon_threads = True
        threading.Thread(target=server.serve_forever, daemon=True).start()
        step = "/usr/bin/python3 %s/drop_sse.py heartbeat price PRICE" % EXAMPLES

        for client in ((), ("--http2-prior-knowledge",)):  # an HTTP/1.1 client, and an HTTP/2 one (translated)
            with self.subTest(client=client):
                self.check_events(server, step, client)
        server.shutdown()

    def check_events(self, server, step, client):
        def take(*args):
            proxy = Proxy("--mode", "reverse:http://127.0.0.1:%d@0" % server.server_address[1], *args)
            p = curl(*client, "-N", "http://127.0.0.1:%d/events" % proxy.port)
            self.assertEqual(p.returncode, 0, p.stderr)
            return p.stdout, proxy.stop()[1]

        plain_body, plain = take()
        body, live = take("--step", step)
        self.assertEqual(plain_body, b"".join(EVENTS))
        # The heartbeat is left out, changed events are written anew, the rest goes as it came.
        self.assertEqual(body, b"data: PRICE 10\n\n: comment\n\n"
                               b"id: 3\nevent: quote\nretry: 100\ndata: PRICE 12\ndata: end\n\n"
                               b"data: unchanged\r\n\r\n")
        view = sse_view(live)
        self.assertEqual([v[:5] for v in view], [
            ("heartbeat", "x", "original", None, "drop"),
            ("", "price 10", "original", None, None),
            ("", "PRICE 10", "modified", "step:drop_sse.py", None),
            ("quote", "price 12\nend", "original", None, None),
            ("quote", "PRICE 12\nend", "modified", "step:drop_sse.py", None),
            ("", "unchanged", "original", None, None)])
        self.assertEqual([v[5] for v in view if v[2] == "original"], [e for e in EVENTS if not e.startswith(b":")])
        response = [r for r in units(records(live)) if r["protocol"] == "http" and r["direction"] == "receive"
                    and not r.get("overlay")]  # (over HTTP/1.1 its head was judged first: a `head` overlay)
        self.assertEqual(response[0]["message"]["body"], b"".join(EVENTS).decode())  # as the server sent it
        # `sluice step` over the capture made without the step gives the same events.
        p = subprocess.run([SLUICE, "step", step, "-"], input=plain, capture_output=True, timeout=60, env=TEST_ENV)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertEqual(sse_view(p.stdout), view)


def h2_stream_times(port, paths, timeout=20):
    """python3-h2 client: GETs `paths` on one h2c connection at once; {path: (seconds, status, body)}."""
    import socket
    import h2.config
    import h2.connection
    import h2.events
    sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    conn = h2.connection.H2Connection(config=h2.config.H2Configuration(client_side=True))
    conn.initiate_connection()
    start = time.monotonic()
    ids = {}
    for path in paths:
        sid = conn.get_next_available_stream_id()
        ids[sid] = path
        conn.send_headers(sid, [(":method", "GET"), (":scheme", "http"), (":authority", "127.0.0.1:%d" % port),
                                (":path", path)], end_stream=True)
    sock.sendall(conn.data_to_send())
    got, status, body = {}, {}, {}
    while len(got) < len(paths):
        data = sock.recv(65536)
        if not data:
            break
        for ev in conn.receive_data(data):
            if isinstance(ev, h2.events.ResponseReceived):
                status[ev.stream_id] = dict(ev.headers)[b":status"].decode()
            elif isinstance(ev, h2.events.DataReceived):
                body[ev.stream_id] = body.get(ev.stream_id, b"") + ev.data
                conn.acknowledge_received_data(ev.flow_controlled_length, ev.stream_id)
            elif isinstance(ev, (h2.events.StreamEnded, h2.events.StreamReset)):
                got[ids[ev.stream_id]] = (time.monotonic() - start, status.get(ev.stream_id), body.get(ev.stream_id, b""))
        sock.sendall(conn.data_to_send())
    sock.close()
    return got


class Http2Streams(StepCase):
    """HTTP/2 requests are units: changed by a step on their way to an HTTP/2 or an HTTP/1.1 server,
    dropped with an answer, killed with RST_STREAM, and a held stream holds no other."""

    def test_a_request_changed_reaches_an_h2_server_and_an_h1_server(self):
        from h2server import H2Server
        step = self.script("h2_edit.py", '''
            import json, sys
            sys.stdin.readline()
            for line in sys.stdin:
                u = json.loads(line)
                m = u.get("message", {})
                if u["protocol"] == "http" and m.get("kind") == "request":
                    m["headers"].append(["X-Sluice-Step", "seen"])
                    if m.get("body") == "abc":
                        m["body"] = "abcdef"
                print(json.dumps(u), flush=True)
        ''')
        h2o = H2Server()
        proxy = Proxy("--mode", "reverse:http://127.0.0.1:%d@0" % h2o.port, "--step", step)
        url = "http://127.0.0.1:%d" % proxy.port
        p = curl("--http2-prior-knowledge", "-d", "abc", url + "/post")
        self.assertEqual(p.stdout, b"h2 hello from /post got 6", p.stderr)  # the body changed, its length too
        # A body past the stream's window (64 KiB) but within the limit waits whole without stalling the client.
        with tempfile.NamedTemporaryFile() as f:
            f.write(b"z" * (200 << 10))
            f.flush()
            big = curl("--http2-prior-knowledge", "--data-binary", "@" + f.name, url + "/big-post")
        self.assertEqual(big.stdout, b"h2 hello from /big-post got %d" % (200 << 10), big.stderr)
        n = subprocess.run(["nghttp", url + "/nghttp"], capture_output=True, timeout=30)
        self.assertEqual(n.stdout, b"h2 hello from /nghttp", n.stderr)
        code, out = proxy.stop()
        h2o.close()
        self.assertEqual([h.get("x-sluice-step") for _, h in h2o.requests], ["seen", "seen", "seen"])
        self.assertEqual(h2o.requests[0][1].get("content-length"), "6")
        sent = [r for r in units(records(out)) if r["protocol"] == "http" and r["direction"] == "send"
                and not r.get("overlay")]
        self.assertEqual([(r["message"]["path"], r["variant"], r.get("modified_by")) for r in sent],
                         [("/post", "original", None), ("/post", "modified", "step:h2_edit.py"),
                          ("/big-post", "original", None), ("/big-post", "modified", "step:h2_edit.py"),
                          ("/nghttp", "original", None), ("/nghttp", "modified", "step:h2_edit.py")])
        self.assertEqual(sent[1]["message"]["body"], "abcdef")
        self.assertEqual(sent[1]["message"]["version"], "HTTP/2")
        # An HTTP/2 client of an HTTP/1.1 server: the change is in the HTTP/1.1 request it gets.
        proxy = self.reverse(step)
        p = curl("--http2-prior-knowledge", "http://127.0.0.1:%d/via-h1" % proxy.port)
        self.assertEqual(p.stdout, b"path=/via-h1 step=seen\n", p.stderr)
        proxy.stop()

    def test_a_response_changed_reaches_the_h2_client_from_both_kinds_of_server(self):
        from h2server import H2Server
        step = self.script("h2_resp.py", '''
            import json, sys
            sys.stdin.readline()
            for line in sys.stdin:
                u = json.loads(line)
                m = u.get("message", {})
                if u["protocol"] == "http" and m.get("kind") == "response":
                    if "gone" in m.get("body", ""):
                        print(json.dumps({"type": "verdict", "ask": u["ask"], "outcome": "drop"}), flush=True)
                        continue
                    m["status"] = 203
                    m["headers"].append(["X-Step", "changed"])
                    m["body"] = m["body"].upper() + "!"
                print(json.dumps(u), flush=True)
        ''')
        h2o = H2Server()
        for proxy, want in ((Proxy("--mode", "reverse:http://127.0.0.1:%d@0" % h2o.port, "--step", step),
                             b"H2 HELLO FROM /UP!"),
                            (self.reverse(step), b"PATH=/UP STEP=-\n!")):
            url = "http://127.0.0.1:%d" % proxy.port
            p = curl("--http2-prior-knowledge", "-i", url + "/up")
            self.assertEqual(p.returncode, 0, p.stderr)
            head, body = p.stdout.split(b"\r\n\r\n", 1)
            self.assertEqual(body, want)
            self.assertTrue(head.startswith(b"HTTP/2 203"), head)
            self.assertIn(b"x-step: changed", head)
            self.assertIn(b"content-length: %d" % len(want), head)
            gone = curl("--http2-prior-knowledge", url + "/gone")
            self.assertNotEqual(gone.returncode, 0)  # the stream was reset
            self.assertEqual(gone.stdout, b"")
            code, out = proxy.stop()
            resp = [r for r in units(records(out)) if r["protocol"] == "http" and r["direction"] == "receive"
                    and not r.get("overlay")]
            self.assertEqual([(r["variant"], r["message"]["status"]) for r in resp],
                             [("original", 200), ("modified", 203), ("original", 200)])
            self.assertEqual(resp[2]["tags"]["verdict"], "drop")
        h2o.close()

    def test_drop_answers_kill_resets_and_a_held_stream_holds_no_other(self):
        step = self.script("h2_verdicts.py", '''
            import json, sys, threading
            lock = threading.Lock()
            def answer(line):
                with lock:
                    print(line, flush=True)
            sys.stdin.readline()
            for line in sys.stdin:
                u = json.loads(line)
                path = u.get("message", {}).get("path")
                if path == "/drop":
                    answer(json.dumps({"type": "verdict", "ask": u["ask"], "outcome": "drop"}))
                elif path == "/kill":
                    answer(json.dumps({"type": "verdict", "ask": u["ask"], "outcome": "kill"}))
                elif path == "/respond":
                    answer(json.dumps({"type": "verdict", "ask": u["ask"], "outcome": "respond",
                                       "reply": {"status": 201, "headers": [["X-Mine", "1"]], "body": "mine"}}))
                elif path == "/slow":
                    threading.Timer(2.0, answer, [json.dumps(u)]).start()
                else:
                    answer(json.dumps(u))
        ''')
        from h2server import H2Server
        h2o = H2Server()
        proxy = Proxy("--mode", "reverse:http://127.0.0.1:%d@0" % h2o.port, "--step", step)
        got = h2_stream_times(proxy.port, ["/slow", "/a", "/drop", "/b", "/kill", "/respond"])
        code, out = proxy.stop()
        h2o.close()
        self.assertEqual(got["/slow"][1:], ("200", b"h2 hello from /slow"))
        self.assertGreaterEqual(got["/slow"][0], 1.9)
        for path in ("/a", "/b"):  # answered while /slow was held
            self.assertEqual(got[path][1:], ("200", ("h2 hello from %s" % path).encode()))
            self.assertLess(got[path][0], 1.5, got)
        self.assertEqual(got["/drop"][1:], ("403", b"sluice: the request was dropped by step:h2_verdicts.py\n"))
        self.assertEqual(got["/kill"][1], None)  # reset: no response
        self.assertEqual(got["/respond"][1:], ("201", b"mine"))
        self.assertEqual(sorted(p for p, _ in h2o.requests), ["/a", "/b", "/slow"])
        tags = {r["message"]["path"]: r.get("tags", {}).get("verdict") for r in units(records(out))
                if r["protocol"] == "http" and r["direction"] == "send" and not r.get("overlay")}
        self.assertEqual((tags["/drop"], tags["/kill"]), ("drop", "kill"))


class Http1ClientToHttp2Server(StepCase):
    """An HTTP/1.1 client through CONNECT to a server that speaks only HTTP/2: the client's requests
    (HTTP/1.1) and the server's responses (HTTP/2) are units like any other, and `sluice step` over
    the capture gives the same records."""

    STEP = '''
        import json, sys
        sys.stdin.readline()
        for line in sys.stdin:
            u = json.loads(line)
            m = u.get("message", {})
            path = m.get("path", "")
            if u["protocol"] == "http" and m.get("kind") == "request":
                if path in ("/drop", "/kill"):
                    print(json.dumps({"type": "verdict", "ask": u["ask"], "outcome": path[1:]}), flush=True)
                    continue
                if path == "/respond":
                    print(json.dumps({"type": "verdict", "ask": u["ask"], "outcome": "respond",
                                      "reply": {"status": 201, "headers": [["X-Mine", "1"]], "body": "mine"}}),
                          flush=True)
                    continue
                m["headers"].append(["X-Sluice-Step", "seen"])
                if m.get("body") == "abc":
                    m["body"] = "abcdef"
            elif u["protocol"] == "http" and m.get("kind") == "response" and u.get("overlay") != "head":
                if "gone" in m.get("body", ""):
                    print(json.dumps({"type": "verdict", "ask": u["ask"], "outcome": "drop"}), flush=True)
                    continue
                m["status"] = 203
                m["body"] = m["body"].upper() + "!"
            print(json.dumps(u), flush=True)
    '''

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        from test_tls import PkiCase
        PkiCase.setUpClass.__func__(cls)

    @classmethod
    def tearDownClass(cls):
        cls.tmp.cleanup()
        super().tearDownClass()

    def test_requests_and_responses_changed_dropped_killed_and_answered(self):
        from h2server import H2Server
        h2o = H2Server(self.pki.cert, self.pki.key, strict_alpn=True)
        step = self.script("front.py", self.STEP)
        url = "https://localhost:%d" % h2o.port

        def take(*args):
            proxy = Proxy("--mode", "regular@0", "--server-ca", self.pki.ca, "--record-body-limit", "64KiB", *args)
            base = ["--http1.1", "-x", "http://127.0.0.1:%d" % proxy.port, "--cacert", self.sluice_ca, "-s", "--suppress-connect-headers"]
            got = {}
            got["edit"] = curl(*base, "-i", "-d", "abc", url + "/edit")
            with tempfile.NamedTemporaryFile() as f:  # past the limit: its head is the unit, the body streams
                f.write(b"z" * (200 << 10))
                f.flush()
                got["big"] = curl(*base, "--data-binary", "@" + f.name, url + "/big-post")
            for path in ("/drop", "/kill", "/respond", "/gone"):
                got[path[1:]] = curl(*base, "-i", url + path)
            return got, proxy.stop()[1]

        plain_got, plain = take()
        before = len(h2o.requests)
        got, live = take("--step", step)
        h2o.close()
        head, body = got["edit"].stdout.split(b"\r\n\r\n", 1)
        self.assertTrue(head.startswith(b"HTTP/1.1 203"), head)
        self.assertEqual(body, b"H2 HELLO FROM /EDIT GOT 6!")  # the request's body changed, then the response
        self.assertIn(b"content-length: %d" % len(body), head.lower())
        self.assertEqual(got["big"].stdout, b"H2 HELLO FROM /BIG-POST GOT %d!" % (200 << 10), got["big"].stderr)
        self.assertIn(b"HTTP/1.1 403", got["drop"].stdout)
        self.assertIn(b"dropped by step:front.py", got["drop"].stdout)
        self.assertNotEqual(got["kill"].returncode, 0)  # the connection closed: no response
        self.assertEqual(got["kill"].stdout, b"")
        self.assertTrue(got["respond"].stdout.startswith(b"HTTP/1.1 201"), got["respond"].stdout)
        self.assertTrue(got["respond"].stdout.endswith(b"\r\n\r\nmine"), got["respond"].stdout)
        self.assertNotEqual(got["gone"].returncode, 0)  # a dropped response closes the connection
        self.assertNotIn(b"gone", got["gone"].stdout)
        self.assertEqual(plain_got["gone"].returncode, 0)
        # The server saw the changes; never the requests dropped, killed or answered.
        self.assertEqual(before, 6)
        seen = dict(h2o.requests[before:])
        self.assertEqual(sorted(seen), ["/big-post", "/edit", "/gone"])
        self.assertEqual(seen["/edit"].get("x-sluice-step"), "seen")
        self.assertEqual(seen["/edit"].get("content-length"), "6")
        self.assertEqual(seen["/big-post"].get("x-sluice-step"), "seen")  # (its head, judged before the body went)
        recs = [r for r in units(records(live)) if r["protocol"] == "http" and not r.get("overlay")]
        flow = [r["flow_id"] for r in recs if r["message"].get("path") == "/edit"][0]
        edit = [(r["direction"], r["message"]["version"], r.get("variant", "original"), r.get("modified_by"))
                for r in recs if r["flow_id"] == flow]
        self.assertEqual(edit, [("send", "HTTP/1.1", "original", None), ("send", "HTTP/1.1", "modified", "step:front.py"),
                                ("send", "HTTP/2", "modified", "sluice"), ("receive", "HTTP/2", "original", None),
                                ("receive", "HTTP/2", "modified", "step:front.py")])

        # Offline: the same step over the capture without it gives the live records (a response's
        # body aside: the server's answer says how much it got).
        def view(out):
            recs = [r for r in units(records(out)) if r["protocol"] == "http" and r.get("modified_by") != "sluice"]
            paths = {r["flow_id"]: r["message"].get("path") for r in recs
                     if r["direction"] == "send" and r["message"].get("method") != "CONNECT"}
            keep = []
            for r in recs:
                m = r["message"]
                path = paths.get(r["flow_id"])
                if path in (None, "/respond", "/kill") or (r["direction"], path) == ("receive", "/drop"):
                    continue  # answered live by the proxy or closed: the capture has the server's answer instead
                what = (m.get("headers"), m.get("body")) if r["direction"] == "send" else m.get("status")
                keep.append((r["direction"], path, what, r.get("overlay"), r.get("variant", "original"),
                             r.get("modified_by"), r.get("tags", {}).get("verdict")))
            return keep

        p = subprocess.run([SLUICE, "step", step, "-"], input=plain, capture_output=True, timeout=60, env=TEST_ENV)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.maxDiff = None
        self.assertEqual(view(p.stdout), view(live))


class GrpcCalls(StepCase):
    """grpcio through the proxy with examples/steps/grpc_call.py: metadata added, a unary request
    message and server-stream messages changed, a method answered by the step."""

    def test_metadata_messages_and_a_method_answered_by_the_step(self):
        import grpc
        from concurrent import futures

        def unary(request, context):
            md = dict(context.invocation_metadata()).get("x-sluice-step", "-")
            return b"echo:" + request + b" md=" + md.encode()

        def server_stream(request, context):
            for i in range(3):
                yield b"hello-%d" % i

        server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
        handlers = {"Unary": grpc.unary_unary_rpc_method_handler(unary),
                    "ServerStream": grpc.unary_stream_rpc_method_handler(server_stream)}
        server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler("test.Echo", handlers),))
        port = server.add_insecure_port("127.0.0.1:0")
        server.start()
        step = "/usr/bin/python3 %s/grpc_call.py /test.Echo/Mine hello howdy" % EXAMPLES
        proxy = Proxy("--mode", "reverse:http://127.0.0.1:%d@0" % port, "--step", step)
        with grpc.insecure_channel("127.0.0.1:%d" % proxy.port) as ch:
            self.assertEqual(ch.unary_unary("/test.Echo/Unary")(b"hello there", timeout=10), b"echo:howdy there md=seen")
            self.assertEqual(list(ch.unary_stream("/test.Echo/ServerStream")(b"x", timeout=10)),
                             [b"howdy-0", b"howdy-1", b"howdy-2"])
            answer, call = ch.unary_unary("/test.Echo/Mine").with_call(b"q", timeout=10)
            self.assertEqual(answer, b"answered by the step")  # the server has no such method
            self.assertEqual(call.code(), grpc.StatusCode.OK)
            self.assertIn(("x-answered-by", "step"), call.initial_metadata())
        code, out = proxy.stop()
        server.stop(0)
        g = [r for r in units(records(out)) if r["protocol"] == "grpc"]
        changed = [(r["direction"], r["message"]["kind"], r["message"].get("payload")) for r in g
                   if r.get("modified_by") == "step:grpc_call.py" and r["message"]["kind"] != "start"]
        self.assertEqual(changed, [("send", "data", "howdy there"), ("receive", "data", "howdy-0"),
                                   ("receive", "data", "howdy-1"), ("receive", "data", "howdy-2")])
        starts = [r for r in g if r["message"]["kind"] == "start" and r.get("modified_by") == "step:grpc_call.py"]
        self.assertEqual(len(starts), 2)
        self.assertIn(["x-sluice-step", "seen"], starts[0]["message"]["metadata"])
        mine = [r for r in g if r["message"]["kind"] == "start" and r["message"]["method"] == "Mine"]
        answer = [r for r in units(records(out)) if r["flow_id"] == mine[0]["flow_id"] and r["protocol"] == "http"
                  and r["direction"] == "receive"]
        self.assertEqual(answer[0]["tags"]["synthesized"], "step:grpc_call.py")


def grpc_web_frames(body, text):
    """(flag, payload) of each length-prefixed message of a gRPC-Web body (text: base64 runs, each padded)."""
    if text:
        body = b"".join(base64.b64decode(body[i:i + 4]) for i in range(0, len(body), 4))
    frames, pos = [], 0
    while pos + 5 <= len(body):
        n = struct.unpack(">I", body[pos + 1:pos + 5])[0]
        frames.append((body[pos], body[pos + 5:pos + 5 + n]))
        pos += 5 + n
    return frames


class GrpcWebEcho(http.server.BaseHTTPRequestHandler):
    """A gRPC-Web service (as behind Envoy): each message echoed with the call's x-sluice-step, then the
    trailer frame; the text form answered in two base64 runs, as a streaming server flushes them."""
    protocol_version = "HTTP/1.1"

    def do_POST(self):
        kind = self.headers["Content-Type"]
        text = kind.startswith("application/grpc-web-text")
        got = grpc_web_frames(self.rfile.read(int(self.headers["Content-Length"])), text)
        md = self.headers.get("x-sluice-step", "-").encode()
        out = b"".join(lpm(b"echo:" + p + b" md=" + md) for _, p in got)
        out += lpm(b"grpc-status: 0\r\ngrpc-message: fine\r\n", 0x80)
        if text:
            out = base64.b64encode(out[:7]) + base64.b64encode(out[7:])
        self.send_response(200)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(out)))
        self.end_headers()
        self.wfile.write(out)

    def log_message(self, *args):
        pass


class GrpcWebCalls(StepCase):
    """gRPC-Web (binary and text forms, HTTP/1.1): a call's start, each message both ways and its end are
    units; what the step changed is what the server and the client get."""

    def call(self, proxy, path, messages, text=False, h2=False):
        kind = "application/grpc-web-text+proto" if text else "application/grpc-web+proto"
        body = b"".join(lpm(m) for m in messages)
        if text:
            body = base64.b64encode(body)
        if h2:  # curl over HTTP/2 (the proxy translates to the HTTP/1.1 origin)
            p = subprocess.run(["curl", "-sS", "--max-time", "10", "--http2-prior-knowledge", "-D", "-",
                                "--data-binary", "@-", "-H", "Content-Type: " + kind, "-H", "X-Grpc-Web: 1",
                                "http://127.0.0.1:%d%s" % (proxy.port, path)], input=body, capture_output=True,
                               timeout=30)
            if p.returncode != 0:
                raise ConnectionError(p.stderr.decode())
            head, _, got = p.stdout.partition(b"\r\n\r\n")
            headers = dict(line.split(": ", 1) for line in head.decode().split("\r\n")[1:])
            got = grpc_web_frames(got, text)
            return headers, [p for f, p in got if not f & 0x80], [p for f, p in got if f & 0x80]
        req = urllib.request.Request("http://127.0.0.1:%d%s" % (proxy.port, path), data=body,
                                     headers={"Content-Type": kind, "X-Grpc-Web": "1"})
        with urllib.request.urlopen(req, timeout=10) as r:
            got = grpc_web_frames(r.read(), text)
            return dict(r.headers), [p for f, p in got if not f & 0x80], [p for f, p in got if f & 0x80]

    def test_the_example_changes_metadata_and_messages_and_answers_a_method(self):
        origin = serve_hello(handler=GrpcWebEcho)
        step = "/usr/bin/python3 %s/grpc_call.py /test.Echo/Mine hello howdy" % EXAMPLES
        proxy = Proxy("--mode", "reverse:http://127.0.0.1:%d@0" % origin.server_address[1], "--step", step)
        for text, h2 in ((False, False), (True, False), (False, True), (True, True)):
            _, msgs, trailers = self.call(proxy, "/test.Echo/Say", [b"hello a", b"hello b"], text, h2)
            self.assertEqual(msgs, [b"echo:howdy a md=seen", b"echo:howdy b md=seen"])
            self.assertEqual(trailers, [b"grpc-status: 0\r\ngrpc-message: fine\r\n"])
            headers, msgs, trailers = self.call(proxy, "/test.Echo/Mine", [b"q"], text, h2)
            self.assertEqual(msgs, [b"answered by the step"])  # the server has no such method
            self.assertEqual(trailers, [b"grpc-status: 0\r\n"])
            self.assertEqual(headers["x-answered-by"], "step")
            self.assertEqual(headers["content-type"], "application/grpc-web%s+proto" % ("-text" if text else ""))
        code, out = proxy.stop()
        origin.shutdown()
        origin.server_close()
        g = [r for r in units(records(out)) if r["protocol"] == "grpc-web"]
        changed = [(r["direction"], r["message"]["kind"], r["message"].get("payload")) for r in g
                   if r.get("modified_by") == "step:grpc_call.py" and r["message"]["kind"] == "data"]
        self.assertEqual(changed, [("send", "data", "howdy a"), ("send", "data", "howdy b")] * 4)
        originals = [r["message"]["payload"] for r in g if r["message"]["kind"] == "data" and "variant_of" not in r]
        self.assertIn("hello a", originals)
        self.assertIn("echo:howdy a md=seen", originals)

    def test_drop_kill_and_a_changed_end(self):
        step = self.script("gw.py", """
            import json, sys
            print(json.dumps({"type": "interest", "protocols": ["grpc-web"]}), flush=True)
            sys.stdin.readline()
            for line in sys.stdin:
                u = json.loads(line)
                m = u["message"]
                verdict = None
                if m["kind"] == "start" and m["method"] in ("Drop", "Kill"):
                    verdict = m["method"].lower()
                elif m["kind"] == "data" and m["payload"].startswith("skip"):
                    verdict = "drop"
                elif m["kind"] == "end":
                    m["status"], m["message"] = 5, "changed by the step"
                if verdict:
                    print(json.dumps({"type": "verdict", "ask": u["ask"], "outcome": verdict}), flush=True)
                else:
                    print(json.dumps(u), flush=True)
            """)
        origin = serve_hello(handler=GrpcWebEcho)
        proxy = Proxy("--mode", "reverse:http://127.0.0.1:%d@0" % origin.server_address[1], "--step", step)
        for text, h2 in ((False, False), (True, False), (False, True), (True, True)):
            _, msgs, trailers = self.call(proxy, "/test.Echo/Say", [b"one", b"skip me", b"two"], text, h2)
            self.assertEqual(msgs, [b"echo:one md=-", b"echo:two md=-"])
            self.assertEqual(trailers, [b"grpc-status: 5\r\ngrpc-message: changed by the step\r\n"])
            headers, msgs, trailers = self.call(proxy, "/test.Echo/Drop", [b"x"], text, h2)
            self.assertEqual((headers["grpc-status"], headers["grpc-message"], msgs),
                             ("7", "the call was dropped by step:gw.py", []))
            with self.assertRaises((urllib.error.URLError, ConnectionError, http.client.HTTPException)):
                self.call(proxy, "/test.Echo/Kill", [b"x"], text, h2)
        code, out = proxy.stop()
        origin.shutdown()
        origin.server_close()
        self.assertEqual(code, 0)
        said = [(r["message"]["payload"], r.get("tags", {}).get("verdict")) for r in units(records(out))
                if r["protocol"] == "grpc-web" and r["direction"] == "send" and r["message"]["kind"] == "data"
                and "variant_of" not in r]
        self.assertEqual(said.count(("skip me", "drop")), 4)  # recorded as the client sent it, marked dropped


class Offline(StepCase):
    def test_sluice_step_gives_the_records_the_live_proxy_gave(self):
        step = "/usr/bin/python3 %s/add_header.py" % EXAMPLES
        paths = ["/a", "/b?x=1", "/c"]

        hello = serve_hello()  # its answers do not depend on the request's headers

        def view(out):
            keep = []
            for r in units(records(out)):
                if r.get("modified_by") == "sluice":
                    continue  # the proxy's own variant (the server's Host): made live after the step, kept as recorded offline
                m = r["message"]
                # The proxy's port (in Host) and the server's Date differ from one run to the next.
                headers = [h for h in m.get("headers", []) if h[0].lower() not in ("date", "server", "host")]
                keep.append((r["direction"], m["kind"], m.get("path"), m.get("status"), headers, m.get("body"),
                             r.get("variant", "original"), r.get("modified_by")))
            return keep

        # HTTP/1.1 to an HTTP/1.1 origin, and HTTP/2 to an HTTP/2 origin.
        from h2server import H2Server
        h2o = H2Server()
        for origin, client_args in ((hello.server_address[1], ()), (h2o.port, ("--http2-prior-knowledge",))):
            def take(*steps):
                args = ["--mode", "reverse:http://127.0.0.1:%d@0" % origin]
                for s in steps:
                    args += ["--step", s]
                proxy = Proxy(*args)
                for path in paths:
                    self.assertEqual(curl(*client_args, "http://127.0.0.1:%d%s" % (proxy.port, path)).returncode, 0)
                return proxy.stop()[1]

            plain = take()
            live = take(step)
            p = subprocess.run([SLUICE, "step", step, "-"], input=plain, capture_output=True, timeout=60, env=TEST_ENV)
            self.assertEqual(p.returncode, 0, p.stderr)
            offline = view(p.stdout)
            self.assertEqual(offline, view(live))
            self.assertEqual(len([v for v in offline if v[6] == "modified"]), 3)
        hello.shutdown()
        h2o.close()

    def test_grpc_web_units_offline_as_live(self):
        class Fixed(http.server.BaseHTTPRequestHandler):  # the same answer whatever the request said
            protocol_version = "HTTP/1.1"

            def do_POST(self):
                self.rfile.read(int(self.headers["Content-Length"]))
                out = lpm(b"hello there") + lpm(b"grpc-status: 0\r\n", 0x80)
                if self.headers["Content-Type"].startswith("application/grpc-web-text"):
                    out = base64.b64encode(out)
                self.send_response(200)
                self.send_header("Content-Type", self.headers["Content-Type"])
                self.send_header("Content-Length", str(len(out)))
                self.end_headers()
                self.wfile.write(out)

            def log_message(self, *args):
                pass

        origin = serve_hello(handler=Fixed)
        step = "/usr/bin/python3 %s/grpc_call.py /test.Echo/Mine hello howdy" % EXAMPLES

        def take(*args):
            proxy = Proxy("--mode", "reverse:http://127.0.0.1:%d@0" % origin.server_address[1], *args)
            for text in (False, True):  # (a call the step answers itself has no offline twin: its server answer is in the capture)
                GrpcWebCalls.call(None, proxy, "/test.Echo/Say", [b"hello a"], text)
            return proxy.stop()[1]

        def view(out):
            return [(r["protocol"], r["direction"], r["message"]["kind"], r["message"].get("payload"),
                     r["message"].get("status"), r.get("variant", "original"), r.get("modified_by"))
                    for r in units(records(out)) if r.get("modified_by") != "sluice"]

        plain = take()
        live = take("--step", step)
        p = subprocess.run([SLUICE, "step", step, "-"], input=plain, capture_output=True, timeout=60, env=TEST_ENV)
        self.assertEqual(p.returncode, 0, p.stderr)
        origin.shutdown()
        origin.server_close()
        self.assertEqual(view(p.stdout), view(live))
        changed = [v[3] for v in view(live) if v[6] == "step:grpc_call.py" and v[2] == "data"]
        self.assertEqual(changed, ["howdy a", "howdy there"] * 2)


if __name__ == "__main__":
    unittest.main(verbosity=2)
