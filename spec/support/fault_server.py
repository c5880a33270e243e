#!/usr/bin/env python3
"""Scriptable loopback HTTP/1.1 server for ddb's retry/timeout/fault specs.

Usage: python3 spec/support/fault_server.py [--upstream URL] [--ignore-stdin] [--verbose]

Binds 127.0.0.1 on a free port (never any other address), prints "PORT <n>"
on stdout once listening, and serves HTTP/1.1 with keep-alive. It exits when
its stdin reaches EOF (so a crashed test run never leaves it behind; pass
--ignore-stdin to run it in the background from a shell, where stdin is
/dev/null) or on SIGTERM/SIGINT.

Python standard library only.

Control endpoints (path prefix "/__", never logged as traffic, never consume
script steps):
  POST /__script   JSON array of steps; each following non-control request
                   (any method/path) consumes the next step, in order. When the
                   script is exhausted the default step applies. Replaces any
                   steps still pending.
  POST /__default  one step: what to do when no script step is pending
                   (initially {"status": 200, "body": "{}"}, or
                   {"action": "forward"} with --upstream).
  GET  /__log      JSON array of the non-control requests received so far:
                   {"method", "path", "headers": {lowercased name: value}, "peer_port",
                   "body"} ("path" as sent, query string included; repeated
                   headers joined with ", "; body decoded as UTF-8 with
                   invalid bytes replaced by U+FFFD).
  POST /__reset    clears pending steps and the log, restores the initial
                   default.
Control endpoints answer 200 {"ok": true} ({"ok": false, "error": "..."} with
status 400 for an invalid step, 404 for an unknown /__ path).

Steps (a JSON object each; "action" absent means a plain response):
  {"status": 500, "body": "...", "headers": {"x-amzn-RequestId": "abc"}}
      plain response. status defaults to 200, body to "" (a non-string JSON
      body is sent compactly encoded), headers to none besides Content-Length
      and Content-Type: application/x-amz-json-1.0 (a step header of the same
      name, any case, replaces either; "Connection: close" closes after the
      response).
  {"action": "stall", "seconds": 5}
      read the request, send nothing for that long, then close.
  {"action": "reset"}
      read the request, then close abruptly with RST (SO_LINGER 0).
  {"action": "close"}
      read the request, then close (FIN) without any response.
  {"action": "truncate", "status": 200, "body": "{\"a\":1}", "send": 3,
   "headers": {...}}
      headers with the full Content-Length, only the first "send" bytes of the
      (UTF-8) body, then close.
  {"action": "big", "status": 200, "bytes": 50000000, "headers": {...},
   "json": false}
      a body of that many bytes, streamed in 64 KiB pieces (never held in
      memory). Filler is "x" bytes; with "json": true it is the valid JSON
      document {"x":"xxx...x"} of exactly that many bytes (bytes >= 8).
  {"action": "forward"}
      proxy the request to --upstream (same method, path, headers incl. the
      original Host, body) and relay status, headers and body (hop-by-hop
      headers dropped, Content-Length recomputed). 502 if the upstream fails.
      Only valid with --upstream (rejected with 400 otherwise).
  {"action": "forward_then", "status": 500, "body": "...", "headers": {...}}
      proxy the request to --upstream as "forward" does, wait for the
      upstream's answer, discard it, and send this step's plain response
      instead: the upstream did the work but the client never learns it (a
      lost response). Only valid with --upstream.
  {"action": "by_target", "targets": {"DynamoDB_20120810.TransactWriteItems":
   {"status": 500}}, "otherwise": {"action": "forward"}}
      the step of "targets" named by the request's X-Amz-Target header, else
      "otherwise" (default: the initial default step). Sub-steps are any steps
      but by_target. As the default, it fails one operation every time while
      the others go through.
"""

import argparse
import collections
import http.client
import http.server
import json
import os
import signal
import socket
import struct
import sys
import threading
import urllib.parse

CONTENT_TYPE = "application/x-amz-json-1.0"
CHUNK = 64 * 1024
ACTIONS = ("stall", "reset", "close", "truncate", "big", "forward", "forward_then", "by_target")
HOP_BY_HOP = {
    "connection", "keep-alive", "proxy-authenticate", "proxy-authorization",
    "proxy-connection", "te", "trailer", "trailers", "transfer-encoding",
    "upgrade", "expect", "content-length",
}


class StepError(ValueError):
    pass


def validate_step(step, upstream):
    if not isinstance(step, dict):
        raise StepError("a step must be a JSON object, got %s" % type(step).__name__)
    action = step.get("action")
    if action is not None and action not in ACTIONS:
        raise StepError("unknown action %r (expected one of %s)" % (action, ", ".join(ACTIONS)))
    status = step.get("status", 200)
    if not isinstance(status, int) or isinstance(status, bool) or not 100 <= status <= 999:
        raise StepError("status must be an integer 100..999, got %r" % (status,))
    headers = step.get("headers", {})
    if not isinstance(headers, dict):
        raise StepError("headers must be a JSON object")
    if action == "stall":
        seconds = step.get("seconds")
        if not isinstance(seconds, (int, float)) or isinstance(seconds, bool) or seconds < 0:
            raise StepError("stall needs a non-negative number \"seconds\"")
    if action == "truncate":
        send = step.get("send", 0)
        if not isinstance(send, int) or isinstance(send, bool) or send < 0:
            raise StepError("truncate needs a non-negative integer \"send\"")
    if action == "big":
        n = step.get("bytes")
        if not isinstance(n, int) or isinstance(n, bool) or n < 0:
            raise StepError("big needs a non-negative integer \"bytes\"")
        if step.get("json") and n < 8:
            raise StepError("big with json needs bytes >= 8")
    if action in ("forward", "forward_then") and not upstream:
        raise StepError("%s needs the server to be started with --upstream" % action)
    if action == "by_target":
        targets = step.get("targets")
        if not isinstance(targets, dict):
            raise StepError("by_target needs a JSON object \"targets\" (X-Amz-Target -> step)")
        subs = list(targets.values()) + ([step["otherwise"]] if "otherwise" in step else [])
        for sub in subs:
            if isinstance(sub, dict) and sub.get("action") == "by_target":
                raise StepError("by_target steps cannot nest")
            validate_step(sub, upstream)
    return step


def body_bytes(step):
    body = step.get("body", "")
    if body is None:
        body = ""
    if not isinstance(body, str):
        body = json.dumps(body, separators=(",", ":"))
    return body.encode("utf-8")


class State:
    def __init__(self, upstream):
        self.upstream = upstream
        self.lock = threading.Lock()
        self.initial_default = {"action": "forward"} if upstream else {"status": 200, "body": "{}"}
        self.reset()

    def reset(self):
        with self.lock:
            self.script = collections.deque()
            self.default = dict(self.initial_default)
            self.log = []

    def set_script(self, steps):
        if not isinstance(steps, list):
            raise StepError("/__script needs a JSON array of steps")
        steps = [validate_step(s, self.upstream) for s in steps]
        with self.lock:
            self.script = collections.deque(steps)

    def set_default(self, step):
        step = validate_step(step, self.upstream)
        with self.lock:
            self.default = step

    def record(self, entry):
        """Logs a request and returns the step it consumes."""
        with self.lock:
            self.log.append(entry)
            return self.script.popleft() if self.script else self.default

    def log_snapshot(self):
        with self.lock:
            return list(self.log)


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "fault_server"
    sys_version = ""

    # Every method goes through dispatch().
    def __getattr__(self, name):
        if name.startswith("do_"):
            return self.dispatch
        raise AttributeError(name)

    def log_message(self, format, *args):  # noqa: A002 - stdlib signature
        if self.server.verbose:
            sys.stderr.write("fault_server: %s\n" % (format % args))

    # ---- request side -------------------------------------------------

    def read_body(self):
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            parts = []
            while True:
                line = self.rfile.readline(65537)
                size = int(line.split(b";", 1)[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline(65537) not in (b"\r\n", b"\n", b""):
                        pass
                    break
                parts.append(self.rfile.read(size))
                self.rfile.readline(65537)
            return b"".join(parts)
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length > 0 else b""

    def header_dict(self):
        out = {}
        for name, value in self.headers.items():
            key = name.lower()
            out[key] = out[key] + ", " + value if key in out else value
        return out

    def dispatch(self):
        body = self.read_body()
        if self.path.startswith("/__"):
            return self.control(body)
        state = self.server.state
        step = state.record({
            "method": self.command,
            "path": self.path,
            "headers": self.header_dict(),
            "body": body.decode("utf-8", "replace"),
            "peer_port": self.client_address[1],
        })
        if step.get("action") == "by_target":
            step = step["targets"].get(self.headers.get("X-Amz-Target", ""),
                                       step.get("otherwise", state.initial_default))
        action = step.get("action")
        try:
            if action is None:
                self.respond(step, body_bytes(step))
            elif action == "stall":
                self.close_connection = True
                threading.Event().wait(float(step["seconds"]))
            elif action == "reset":
                self.rst()
            elif action == "close":
                self.close_connection = True
            elif action == "truncate":
                data = body_bytes(step)
                self.start(step, len(data))
                self.wfile.write(data[:step.get("send", 0)])
                self.close_connection = True
            elif action == "big":
                self.big(step)
            elif action == "forward":
                self.forward(body)
            elif action == "forward_then":
                try:
                    self.upstream_request(body)
                except (OSError, http.client.HTTPException):
                    pass  # the client gets the scripted answer either way
                self.respond(step, body_bytes(step))
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True

    # ---- response side ------------------------------------------------

    def start(self, step, length, extra=None):
        """Status line and headers (no Server/Date), Content-Length = length."""
        self.send_response_only(step.get("status", 200))
        self.log_request(step.get("status", 200))
        headers = dict(extra or {})
        headers.update(step.get("headers") or {})
        names = {k.lower() for k in headers}
        if "content-type" not in names:
            self.send_header("Content-Type", CONTENT_TYPE)
        if "content-length" not in names:
            self.send_header("Content-Length", str(length))
        for name, value in headers.items():
            self.send_header(str(name), str(value))
        self.end_headers()

    def respond(self, step, data):
        self.start(step, len(data))
        if self.command != "HEAD":
            self.wfile.write(data)

    def big(self, step):
        total = step["bytes"]
        self.start(step, total)
        if self.command == "HEAD":
            return
        head, tail = (b'{"x":"', b'"}') if step.get("json") else (b"", b"")
        self.wfile.write(head)
        remaining = total - len(head) - len(tail)
        piece = b"x" * CHUNK
        while remaining > 0:
            n = min(remaining, CHUNK)
            self.wfile.write(piece if n == CHUNK else piece[:n])
            remaining -= n
        self.wfile.write(tail)

    def rst(self):
        self.close_connection = True
        sock = self.connection
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        # detach so the server's own shutdown(SHUT_WR) (which would send a FIN
        # first) finds a closed socket; closing the fd with linger 0 sends RST.
        os.close(sock.detach())

    def upstream_request(self, body):
        """Sends the request to --upstream; returns (status, headers, data)
        with hop-by-hop headers dropped. Raises OSError /
        http.client.HTTPException when the upstream fails."""
        up = urllib.parse.urlsplit(self.server.state.upstream)
        cls = http.client.HTTPSConnection if up.scheme == "https" else http.client.HTTPConnection
        conn = cls(up.hostname, up.port, timeout=self.server.upstream_timeout)
        try:
            path = up.path.rstrip("/") + self.path
            conn.putrequest(self.command, path, skip_host=True, skip_accept_encoding=True)
            host_sent = False
            for name, value in self.headers.items():
                low = name.lower()
                if low in HOP_BY_HOP:
                    continue
                host_sent = host_sent or low == "host"
                conn.putheader(name, value)
            if not host_sent:
                conn.putheader("Host", up.netloc)
            if body or self.command in ("POST", "PUT", "PATCH"):
                conn.putheader("Content-Length", str(len(body)))
            conn.endheaders(body or None)
            resp = conn.getresponse()
            data = resp.read()
            headers = {}
            for name, value in resp.getheaders():
                if name.lower() in HOP_BY_HOP:
                    continue
                headers[name] = headers[name] + ", " + value if name in headers else value
            return resp.status, headers, data
        finally:
            conn.close()

    def forward(self, body):
        try:
            status, headers, data = self.upstream_request(body)
        except (OSError, http.client.HTTPException) as e:
            msg = json.dumps({"__type": "fault_server#UpstreamError",
                              "message": "forward to %s failed: %s" % (self.server.state.upstream, e)})
            self.respond({"status": 502}, msg.encode("utf-8"))
            return
        # relayed as is: no default Content-Type added
        self.send_response_only(status)
        self.log_request(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    # ---- control endpoints ----------------------------------------------

    def control(self, body):
        state = self.server.state
        route = (self.command, self.path.split("?", 1)[0])
        try:
            if route == ("POST", "/__script"):
                state.set_script(json.loads(body or b"null"))
            elif route == ("POST", "/__default"):
                state.set_default(json.loads(body or b"null"))
            elif route == ("POST", "/__reset"):
                state.reset()
            elif route == ("GET", "/__log"):
                out = json.dumps(state.log_snapshot()).encode("utf-8")
                return self.respond({"headers": {"Content-Type": "application/json"}}, out)
            else:
                out = json.dumps({"ok": False, "error": "no control endpoint %s %s" % route})
                return self.respond({"status": 404, "headers": {"Content-Type": "application/json"}},
                                    out.encode("utf-8"))
        except (ValueError, StepError) as e:  # json.JSONDecodeError is a ValueError
            out = json.dumps({"ok": False, "error": str(e)}).encode("utf-8")
            return self.respond({"status": 400, "headers": {"Content-Type": "application/json"}}, out)
        return self.respond({"headers": {"Content-Type": "application/json"}}, b'{"ok":true}')


class Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128

    def handle_error(self, request, client_address):
        exc = sys.exc_info()[1]
        if isinstance(exc, (ConnectionError, TimeoutError)):
            return  # the client went away; that is what these specs do
        super().handle_error(request, client_address)


def main(argv=None):
    p = argparse.ArgumentParser(description="Scriptable loopback HTTP fault server (see module docstring).")
    p.add_argument("--upstream", help="base URL that {\"action\": \"forward\"} proxies to")
    p.add_argument("--upstream-timeout", type=float, default=30.0, help="seconds (default 30)")
    p.add_argument("--ignore-stdin", action="store_true",
                   help="do not exit on stdin EOF (for running in the background from a shell)")
    p.add_argument("--verbose", action="store_true", help="log each request on stderr")
    args = p.parse_args(argv)
    if args.upstream:
        up = urllib.parse.urlsplit(args.upstream)
        if up.scheme not in ("http", "https") or not up.hostname:
            p.error("--upstream must be an http(s):// URL, got %r" % args.upstream)

    def stop(*_):
        os._exit(0)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)

    server = Server(("127.0.0.1", 0), Handler)
    server.state = State(args.upstream)
    server.verbose = args.verbose
    server.upstream_timeout = args.upstream_timeout
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True).start()
    sys.stdout.write("PORT %d\n" % server.server_address[1])
    sys.stdout.flush()

    if args.ignore_stdin:
        threading.Event().wait()
    else:
        while True:
            try:
                if not os.read(0, 65536):
                    break
            except OSError:
                break
    sys.stderr.flush()
    os._exit(0)  # no waiting for stalled handler threads


if __name__ == "__main__":
    main()
