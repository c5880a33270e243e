#!/usr/bin/env python3
"""A minimal HTTPS server on loopback for ddb's TLS specs.

Usage: python3 spec/support/tls_server.py CERT KEY

Binds 127.0.0.1 on a free port (never any other address), prints "PORT <n>"
on stdout once listening, and answers every POST with 200
{"TableNames":["tls-ok"]} (HTTP/1.1, keep-alive) over TLS with the given
certificate and key (PEM). It exits when its stdin reaches EOF (so a crashed
test run never leaves it behind) or on SIGTERM. A client that refuses the
certificate makes the handshake fail: that connection is dropped silently.

Python standard library only.
"""
import http.server
import os
import socketserver
import ssl
import sys
import threading


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_POST(self):
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(length)
        body = b'{"TableNames":["tls-ok"]}'
        self.send_response(200)
        self.send_header("Content-Type", "application/x-amz-json-1.0")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("x-amzn-RequestId", "TLS-REQUEST-1")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True

    def __init__(self, context):
        self.context = context
        super().__init__(("127.0.0.1", 0), Handler)

    def finish_request(self, request, client_address):
        # The handshake in the request's thread: a refused certificate only
        # ends that connection.
        try:
            tls = self.context.wrap_socket(request, server_side=True)
        except (ssl.SSLError, OSError):
            return
        try:
            self.RequestHandlerClass(tls, client_address, self)
        finally:
            try:
                tls.close()
            except OSError:
                pass

    def handle_error(self, request, client_address):
        pass


def main():
    cert, key = sys.argv[1], sys.argv[2]
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server = Server(context)

    def watch_stdin():
        while sys.stdin.buffer.read(4096):
            pass
        os._exit(0)

    threading.Thread(target=watch_stdin, daemon=True).start()
    print("PORT %d" % server.server_address[1], flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
