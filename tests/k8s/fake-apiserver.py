#!/usr/bin/env python3
"""A scripted HTTP server for the client's unit test: statuses and retries that a real
kube-apiserver does not produce on demand. Prints its port, then serves until killed.
  /status/CODE        answers CODE with a Kubernetes Status body ("message": "msg CODE")
  /flaky/N/CODE       answers CODE (with Retry-After: 0) N times per path, then 200
  /retry-after/S      answers 429 with Retry-After: S the first time, then 200
  /echo               answers 200 with what it received (method, path, headers, body)
"""
import json
import os
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

seen = {}


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def reply(self, code, obj, headers=()):
        data = json.dumps(obj).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for k, v in headers:
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)

    def status(self, code, headers=()):
        self.reply(code, {"kind": "Status", "apiVersion": "v1", "status": "Failure",
                          "message": "msg %d" % code, "reason": "R%d" % code, "code": code},
                   headers)

    def handle_any(self):
        n = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(n).decode() if n else ""
        path, _, query = self.path.partition("?")
        parts = path.strip("/").split("/")
        seen[path] = seen.get(path, 0) + 1
        if parts[0] == "status":
            self.status(int(parts[1]))
        elif parts[0] == "flaky":
            if seen[path] <= int(parts[1]):
                self.status(int(parts[2]), [("Retry-After", "0")])
            else:
                self.reply(200, {"tries": seen[path]})
        elif parts[0] == "retry-after":
            if seen[path] == 1:
                self.status(429, [("Retry-After", parts[1])])
            else:
                self.reply(200, {"tries": seen[path]})
        elif parts[0] == "echo":
            self.reply(200, {"method": self.command, "path": path, "query": query,
                             "contentType": self.headers.get("Content-Type", ""),
                             "authorization": self.headers.get("Authorization", ""),
                             "body": body})
        else:
            self.status(404)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = handle_any


def main():
    srv = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    os.write(1, b"%d\n" % srv.server_address[1])  # one write: the reader stops after it
    os.close(1)
    srv.serve_forever()


main()
