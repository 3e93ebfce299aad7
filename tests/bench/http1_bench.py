#!/usr/bin/python3
"""HTTP/1.1 proxy benchmark: sluice against its anchors, side by side in one run.

    tests/bench/http1_bench.py [--sluice build/sluice] [--duration 10] [--connections 16]

With wrk (keep-alive, 1 thread, N connections) against a loopback nginx origin serving 1 KiB and
100 KiB bodies, it measures:
  nginx direct | nginx as a reverse proxy (keepalive upstream) | mitmdump reverse | sluice reverse,
  recording every flow to a zstd file (in rounds over all four, medians reported)
and prints requests/s, p50/p99 latency and peak RSS for each, and sluice's ratios. Then it opens 1,000
idle keep-alive client connections to sluice and reports what they cost in RSS.

Needs nginx and mitmdump (Debian: apt-get install nginx-light mitmproxy) and wrk. Not a test: it
asserts nothing and prints numbers for tests/bench/RESULTS.md.
"""
import argparse
import atexit
import os
import re
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time


_children = []


def spawn(cmd, **kw):
    """subprocess.Popen, the process stopped when the bench exits however it exits: a bench that fails
    half-way must not leave its nginx, mitmdump or sluice running behind it."""
    proc = subprocess.Popen(cmd, **kw)
    _children.append(proc)
    return proc


@atexit.register
def _stop_children():
    for proc in _children:
        if proc.poll() is None:
            proc.terminate()  # nginx's master takes its workers with it
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def require_tools(bench, tools, packages):
    """Exits with what to install when one of `tools` is missing."""
    for tool in tools:
        if not shutil.which(tool):
            sys.exit("%s: %s is missing (apt-get install %s)" % (bench, tool, packages))


def add_worker_args(ap):
    """--workers and --no-pin, alike for nginx and sluice in every bench."""
    ap.add_argument("--workers", type=int, default=os.cpu_count(),
                    help="nginx proxy worker processes and sluice --threads, alike (default: cores)")
    ap.add_argument("--no-pin", action="store_true",
                    help="leave workers unpinned (default: nginx worker_cpu_affinity auto, sluice --pin-threads)")


def nginx_workers(args):
    """nginx's worker_processes value, with its CPU affinity unless --no-pin."""
    return str(args.workers) if args.no_pin else "%d; worker_cpu_affinity auto" % args.workers


def sluice_worker_args(args):
    return ["--threads", str(args.workers)] + ([] if args.no_pin else ["--pin-threads"])


def raise_fd_limit():
    """Thousands of connections at once: as many descriptors as the hard limit allows, up to 8192."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 8192), hard))


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def wait_port(port, timeout=15):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError("nothing listens on %d" % port)


def tree_pids(pid):
    pids = [pid]
    for child in open("/proc/%d/task/%d/children" % (pid, pid)).read().split():
        pids += tree_pids(int(child))
    return pids


def peak_rss_mib(pid):
    total = 0
    for p in tree_pids(pid):
        try:
            with open("/proc/%d/status" % p) as f:
                total += int(re.search(r"VmHWM:\s+(\d+) kB", f.read()).group(1))
        except (OSError, AttributeError):
            pass
    return total / 1024


def rss_mib(pid):
    with open("/proc/%d/status" % pid) as f:
        return int(re.search(r"VmRSS:\s+(\d+) kB", f.read()).group(1)) / 1024


def nginx_conf(workdir, name, body):
    path = os.path.join(workdir, name + ".conf")
    with open(path, "w") as f:
        f.write("""daemon off; master_process on; worker_processes %s; user root;
pid %s/%s.pid; error_log %s/%s.err warn; worker_rlimit_nofile 8192;
events { worker_connections 4096; }
http { access_log off; client_body_temp_path %s; proxy_temp_path %s; keepalive_requests 1000000;
%s }
""" % (body[0], workdir, name, workdir, name, workdir, workdir, body[1]))
    return path


def start_nginx(workdir, name, workers, http_body):
    """nginx on a free port; `http_body` is a format string taking the port. nginx cannot bind port 0
    and report it, so a port picked in advance may be taken meanwhile (an ephemeral port): retry."""
    for _ in range(5):
        port = free_port()
        conf = nginx_conf(workdir, name, (workers, http_body % port))
        proc = spawn(["nginx", "-p", workdir, "-c", conf], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            wait_port(port, 5)
            return proc, port
        except RuntimeError:
            proc.kill()
            proc.wait()
    raise RuntimeError("nginx could not listen")


def cpu_seconds(pids):
    total = 0
    for p in pids:
        for pid in tree_pids(p):
            try:
                with open("/proc/%d/stat" % pid) as f:
                    fields = f.read().rsplit(")", 1)[1].split()
                total += int(fields[11]) + int(fields[12])  # utime + stime, in clock ticks
            except (OSError, IndexError):
                pass
    return total / os.sysconf("SC_CLK_TCK")


def settle(pids, timeout=30):
    """Waits until the peers are idle: a slow one (mitmdump) still works through its backlog after
    wrk stops, and would otherwise take CPU from the next measurement."""
    deadline = time.monotonic() + timeout
    before = cpu_seconds(pids)
    while time.monotonic() < deadline:
        time.sleep(0.25)
        now = cpu_seconds(pids)
        if now - before < 0.01:
            return
        before = now


def wrk(url, duration, connections, headers=()):
    extra = [a for h in headers for a in ("-H", h)]
    out = subprocess.run(["wrk", "-t1", "-c%d" % connections, "-d%ds" % duration, "--latency", *extra, url],
                         capture_output=True, text=True, timeout=duration + 60).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))

    def ms(label):
        m = re.search(r"\s%s%%\s+([\d.]+)(us|ms|s)\b" % label, out)
        v = float(m.group(1))
        return v / 1000 if m.group(2) == "us" else v * 1000 if m.group(2) == "s" else v
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    failed = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    return {"rps": rps, "p50": ms("50"), "p99": ms("99"),
            "errors": (int(bad.group(1)) if bad else 0) + (sum(map(int, failed.groups())) if failed else 0)}


def tls_origin_setup(prefix, tls=False):
    """A work directory with a 1 KiB file, an ECDSA P-256 certificate for localhost/127.0.0.1 (key,
    cert, and both in one file for mitmdump --certs), and a loopback nginx origin serving the file
    (over TLS with that certificate when `tls`)."""
    work = tempfile.mkdtemp(prefix=prefix)
    with open(os.path.join(work, "1k"), "wb") as f:
        f.write(b"x" * 1024)
    key, cert = os.path.join(work, "key.pem"), os.path.join(work, "cert.pem")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                    "-keyout", key, "-out", cert, "-days", "2", "-subj", "/CN=localhost",
                    "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"], check=True, capture_output=True)
    with open(os.path.join(work, "key+cert.pem"), "w") as f:
        f.write(open(key).read() + open(cert).read())
    listen = "127.0.0.1:%%d ssl; ssl_certificate %s; ssl_certificate_key %s; ssl_protocols TLSv1.2 TLSv1.3" % (
        cert, key) if tls else "127.0.0.1:%d"
    origin, origin_port = start_nginx(work, "origin", 1, "server { listen %s; location / { root %s; } }" % (listen, work))
    return work, key, cert, origin, origin_port


def start_tls_reverse_peers(work, origin_port, sluice_bin, worker_args, skip_mitmdump, mitm_name, sluice_name,
                            tls_origin=False, more_sluices=()):
    """mitmdump (unless skipped) and sluice as TLS-terminating reverse proxies to the origin, sluice
    recording to work/capture.zst. With `tls_origin` they speak TLS to it too (https://localhost, its
    certificate trusted). `more_sluices`: (name, extra arguments) of further sluice peers, each recording
    to a capture of its own. Returns [(name, proc, port)] and the first sluice's capture's path."""
    peers = []
    target = ("https://localhost:%d" if tls_origin else "http://127.0.0.1:%d") % origin_port
    cert = os.path.join(work, "cert.pem")
    if not skip_mitmdump:
        mitm_port = free_port()
        trust = ["--set", "ssl_verify_upstream_trusted_ca=" + cert] if tls_origin else []
        mitm = spawn(["mitmdump", "-q", "-p", str(mitm_port), "--mode", "reverse:" + target,
                      "--certs", "*=" + os.path.join(work, "key+cert.pem"), *trust],
                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_port(mitm_port, 60)
        peers.append((mitm_name, mitm, mitm_port))
    for i, (name, extra) in enumerate([(sluice_name, [])] + list(more_sluices)):
        capture = os.path.join(work, "capture%s.zst" % (i or ""))
        trust = ["--server-ca", cert] if tls_origin else []
        sluice = spawn([sluice_bin, "proxy", "--mode", "reverse:%s@0" % target, *trust, *extra,
                        "--ca-dir", os.path.join(work, "ca"), *worker_args, "-w", capture],
                       stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        sluice_port = None
        while sluice_port is None:
            line = sluice.stderr.readline().decode()
            if not line:
                sys.exit("bench: sluice did not start")
            m = re.search(r"listening on [\d.]+:(\d+)", line)
            sluice_port = int(m.group(1)) if m else None
        peers.append((name, sluice, sluice_port))
    return peers, os.path.join(work, "capture.zst")


def stop(proc):
    proc.send_signal(signal.SIGINT)
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sluice", default=os.path.join(os.path.dirname(__file__), "..", "..", "build", "sluice"))
    ap.add_argument("--duration", type=int, default=5)
    ap.add_argument("--repeat", type=int, default=3, help="rounds over all configurations; medians reported")
    ap.add_argument("--connections", type=int, default=16)
    ap.add_argument("--idle", type=int, default=1000)
    ap.add_argument("--skip-mitmdump", action="store_true")
    add_worker_args(ap)
    args = ap.parse_args()
    require_tools("http1_bench", ("nginx", "wrk") + (() if args.skip_mitmdump else ("mitmdump",)),
                  "nginx-light mitmproxy wrk")
    raise_fd_limit()

    work = tempfile.mkdtemp(prefix="sluice-bench-")
    with open(os.path.join(work, "1k"), "wb") as f:
        f.write(b"x" * 1024)
    with open(os.path.join(work, "100k"), "wb") as f:
        f.write(b"y" * 102400)
    origin, origin_port = start_nginx(work, "origin", 1,
                                      "server { listen 127.0.0.1:%%d; location / { root %s; } }" % work)
    nginx_proxy, nginx_proxy_port = start_nginx(work, "proxy", nginx_workers(args), """upstream origin { server 127.0.0.1:%d; keepalive 64; }
server { listen 127.0.0.1:%%d; location / { proxy_pass http://origin; proxy_http_version 1.1;
  proxy_set_header Connection ""; proxy_buffering on; } }""" % origin_port)

    peers = [("nginx direct", None, origin_port), ("nginx reverse proxy", nginx_proxy, nginx_proxy_port)]
    if not args.skip_mitmdump:
        mitm_port = free_port()
        mitm = spawn(["mitmdump", "-q", "-p", str(mitm_port), "--mode", "reverse:http://127.0.0.1:%d" % origin_port],
                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_port(mitm_port, 60)
        peers.append(("mitmdump 8.1 reverse", mitm, mitm_port))
    capture = os.path.join(work, "capture.zst")
    sluice = spawn([args.sluice, "proxy", "--mode", "reverse:http://127.0.0.1:%d@0" % origin_port,
                    *sluice_worker_args(args), "-w", capture], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    line = sluice.stderr.readline().decode()
    sluice_port = int(re.search(r"listening on [\d.]+:(\d+)", line).group(1))
    peers.append(("sluice reverse, recording", sluice, sluice_port))

    # Rounds over every configuration, so that a noisy moment hits them all alike; medians per figure.
    runs = {}
    for _ in range(args.repeat):
        for size in ("1k", "100k"):
            for name, proc, port in peers:
                r = wrk("http://127.0.0.1:%d/%s" % (port, size), args.duration, args.connections)
                runs.setdefault((name, size), []).append(r)
                settle([origin.pid] + [p.pid for _, p, _ in peers if p])
    results = {}
    for key, rs in runs.items():
        results[key] = {k: sorted(r[k] for r in rs)[len(rs) // 2] for k in ("rps", "p50", "p99", "errors")}
    rss = {name: peak_rss_mib(proc.pid if proc else origin.pid) for name, proc, _ in peers}

    # 1,000 idle keep-alive connections to sluice: one request each, then silence.
    before = rss_mib(sluice.pid)
    conns = []
    for _ in range(args.idle):
        c = socket.create_connection(("127.0.0.1", sluice_port))
        c.sendall(b"GET /1k HTTP/1.1\r\nHost: x\r\n\r\n")
        conns.append(c)
    for c in conns:
        got = b""
        while len(got) < 1024 or b"\r\n\r\n" not in got:
            got += c.recv(65536)
    time.sleep(1)
    after = rss_mib(sluice.pid)
    for c in conns:
        c.close()

    stop(sluice)
    for _, proc, _ in peers:
        if proc and proc is not sluice:
            stop(proc)
    stop(origin)
    capture_mib = os.path.getsize(capture) / (1 << 20)
    shutil.rmtree(work, ignore_errors=True)

    print("wrk -t1 -c%d -d%ds, keep-alive, loopback nginx origin (1 worker); %d cores; proxies with %d "
          "workers/threads%s; median of %d rounds" % (args.connections, args.duration, os.cpu_count(), args.workers,
                                                      "" if args.no_pin else ", pinned",
                                                    args.repeat))
    print("| configuration | body | req/s | p50 ms | p99 ms | peak RSS MiB |")
    print("|---|---|---|---|---|---|")
    for size in ("1k", "100k"):
        for name, _, _ in peers:
            r = results[(name, size)]
            err = " (%d errors)" % r["errors"] if r["errors"] else ""
            print("| %s | %s | %.0f%s | %.2f | %.2f | %.1f |" % (name, size, r["rps"], err, r["p50"], r["p99"], rss[name]))
    print()
    s = "sluice reverse, recording"
    for size in ("1k", "100k"):
        sr = results[(s, size)]
        ratios = ["%.2fx nginx reverse proxy" % (sr["rps"] / results[("nginx reverse proxy", size)]["rps"])]
        if not args.skip_mitmdump:
            ratios.append("%.1fx mitmdump" % (sr["rps"] / results[("mitmdump 8.1 reverse", size)]["rps"]))
        ratios.append("p99 %.2fx nginx reverse proxy" % (sr["p99"] / results[("nginx reverse proxy", size)]["p99"]))
        print("%s: sluice throughput %s" % (size, ", ".join(ratios)))
    print("sluice capture written: %.1f MiB" % capture_mib)
    print("%d idle keep-alive client connections: sluice RSS %.1f -> %.1f MiB (+%.1f MiB)" %
          (args.idle, before, after, after - before))


if __name__ == "__main__":
    main()
