"""The service under test of examples/ci-replay.sh and examples/offline-tests.sh: a small orders API.
Prints its port, then serves on 127.0.0.1. With REGRESSION=1 it has a bug (totals lose their tax)."""
import http.server
import json
import os
import sys

ORDERS = {1: {"id": 1, "item": "kettle", "net": 40.0}, 2: {"id": 2, "item": "teapot", "net": 25.0}}


def total(order):
    return order["net"] if os.environ.get("REGRESSION") else round(order["net"] * 1.2, 2)


class Orders(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def version_string(self):
        return "orders-api/1.0"

    def reply(self, status, doc):
        body = json.dumps(doc).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        if self.path.startswith("/orders/"):
            order = ORDERS.get(int(self.path.rsplit("/", 1)[1]))
            if order:
                return self.reply(200, dict(order, total=total(order)))
            return self.reply(404, {"error": "no such order"})
        if self.path.startswith("/orders"):
            return self.reply(200, {"orders": sorted(ORDERS)})
        self.reply(404, {"error": "not found"})

    def do_POST(self):
        doc = json.loads(self.rfile.read(int(self.headers.get("Content-Length", "0"))) or b"{}")
        order = {"id": 3, "item": doc.get("item", "?"), "net": float(doc.get("net", 0))}
        self.reply(201, dict(order, total=total(order)))

    def log_message(self, *args):
        pass


server = http.server.ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1]) if len(sys.argv) > 1 else 0), Orders)
print(server.server_address[1], flush=True)
server.serve_forever()
