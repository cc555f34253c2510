#!/usr/bin/env python3
"""A fault-injecting HTTP/1.1 proxy for the S3 tests, on loopback only.

It forwards requests byte for byte to a real S3 server (the Host header the client signed
is left as it is: radosgw accepts any host for path-style requests) and relays the answers,
except for the requests that match the fault given on the command line:

  --fault cut     cut the connection after --bytes bytes of the response body (the object
                  data of a GET); --rst makes it a reset instead of a clean close
  --fault status  answer --status (503 SlowDown, 500 InternalError, 429 TooManyRequests,
                  412 PreconditionFailed) with an S3 XML error body, without forwarding
  --fault reset   read the request, then reset the connection (SO_LINGER 0)
  --fault stall   read the request, send nothing for --seconds, then close
  --fault drop    forward the request, wait for the server's answer, and reset the
                  connection instead of relaying it (the request took effect; the client
                  cannot know)

--fault drop,status --status 412 gives the successive matching requests those faults.
--match chooses the requests (a method such as GET or PUT, or an S3 operation: PutObject,
UploadPart, CreateMultipartUpload, CompleteMultipartUpload, GetObject); the fault is
applied to --times of them after the first --after. Every request is logged to --log, one
line each, tab-separated: sequence, method, operation, target, Range, If-Match, action.
It prints its port on stdout once listening, and exits after --lifetime seconds or when
its parent process goes away.
"""
import argparse
import os
import socket
import struct
import sys
import threading
import time

MAX_HEAD = 64 * 1024
IO_SIZE = 64 * 1024

S3_ERRORS = {
	500: ("Internal Server Error", "InternalError",
		"We encountered an internal error. Please try again."),
	503: ("Slow Down", "SlowDown", "Please reduce your request rate."),
	429: ("Too Many Requests", "TooManyRequests", "Please reduce your request rate."),
	412: ("Precondition Failed", "PreconditionFailed",
		"At least one of the pre-conditions you specified did not hold"),
}
FAULTS = ("cut", "status", "reset", "stall", "drop")


class Closed(Exception):
	pass


class Stream:
	"""A socket with a read buffer."""

	def __init__(self, sock):
		self.sock = sock
		self.buf = b""

	def fill(self):
		data = self.sock.recv(IO_SIZE)
		if not data:
			raise Closed()
		self.buf += data

	def read_head(self):
		"""The bytes up to and including the blank line; None at a clean end."""
		while b"\r\n\r\n" not in self.buf:
			if len(self.buf) > MAX_HEAD:
				raise ValueError("header too large")
			try:
				self.fill()
			except Closed:
				if not self.buf:
					return None
				raise
		end = self.buf.index(b"\r\n\r\n") + 4
		head, self.buf = self.buf[:end], self.buf[end:]
		return head

	def read_line(self):
		while b"\r\n" not in self.buf:
			self.fill()
		end = self.buf.index(b"\r\n") + 2
		line, self.buf = self.buf[:end], self.buf[end:]
		return line

	def read_exact(self, n):
		while len(self.buf) < n:
			self.fill()
		data, self.buf = self.buf[:n], self.buf[n:]
		return data

	def read_some(self, n):
		if not self.buf:
			self.fill()
		data, self.buf = self.buf[:n], self.buf[n:]
		return data


def parse_head(head):
	lines = head.decode("latin-1").split("\r\n")
	headers = {}
	for line in lines[1:]:
		if ":" in line:
			name, value = line.split(":", 1)
			headers[name.strip().lower()] = value.strip()
	return lines[0], headers


def operation(method, target):
	query = target.split("?", 1)[1] if "?" in target else ""
	names = [p.split("=", 1)[0] for p in query.split("&") if p]
	if method == "PUT":
		return "UploadPart" if "partNumber" in names else "PutObject"
	if method == "POST" and "uploads" in names:
		return "CreateMultipartUpload"
	if method == "POST" and "uploadId" in names:
		return "CompleteMultipartUpload"
	if method == "POST" and "delete" in names:
		return "DeleteObjects"
	if method == "GET":
		return "ListObjects" if target.split("?")[0].count("/") < 2 else "GetObject"
	if method == "DELETE":
		return "AbortMultipartUpload" if "uploadId" in names else "DeleteObject"
	return method


class Proxy:
	def __init__(self, args):
		self.args = args
		self.lock = threading.Lock()
		self.seq = 0
		self.matched = 0
		self.log = open(args.log, "a", buffering=1)

	def decide(self, method, op, target, headers):
		"""The action for a request, logged before it is carried out."""
		a = self.args
		with self.lock:
			self.seq += 1
			action = "forward"
			if a.fault and a.match in (method, op):
				self.matched += 1
				k = self.matched - a.after - 1
				if 0 <= k < a.times:
					action = a.fault[min(k, len(a.fault) - 1)]
			self.log.write("\t".join([str(self.seq), method, op, target,
				headers.get("range", "-"), headers.get("if-match", "-"), action]) + "\n")
			return action

	def answer_error(self, client, method):
		reason, code, message = S3_ERRORS[self.args.status]
		with self.lock:
			rid = "fault-proxy-%d" % self.seq
		body = ('<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>%s</Code>'
			"<Message>%s</Message><RequestId>%s</RequestId></Error>" % (code, message, rid)).encode()
		head = ("HTTP/1.1 %d %s\r\nContent-Type: application/xml\r\nContent-Length: %d\r\n"
			"x-amz-request-id: %s\r\n" % (self.args.status, reason, len(body), rid))
		if self.args.status in (429, 503):
			head += "Retry-After: 1\r\n"
		client.sendall((head + "\r\n").encode() + (b"" if method == "HEAD" else body))

	def relay_response(self, up, client, method, cut):
		"""Relays one response; False when the connections must end."""
		while True:
			head = up.read_head()
			if head is None:
				return False
			status_line, headers = parse_head(head)
			status = int(status_line.split()[1])
			client.sendall(head)
			if status >= 200 or status == 101:
				break
		keep = headers.get("connection", "").lower() != "close"
		if method == "HEAD" or status in (101, 204, 304):
			return keep
		if headers.get("transfer-encoding", "").lower() == "chunked":
			while True:
				line = up.read_line()
				client.sendall(line)
				size = int(line.split(b";")[0], 16)
				if size == 0:
					while True:
						trailer = up.read_line()
						client.sendall(trailer)
						if trailer == b"\r\n":
							return keep
				client.sendall(up.read_exact(size + 2))
		if "content-length" not in headers:
			try:
				while True:
					client.sendall(up.read_some(IO_SIZE))
			except Closed:
				return False
		left = int(headers["content-length"])
		sent = 0
		while left:
			n = min(left, IO_SIZE)
			if cut is not None:
				n = min(n, cut - sent)
			if n == 0:
				self.cut(client)
				return False
			data = up.read_some(n)
			client.sendall(data)
			sent += len(data)
			left -= len(data)
		return keep

	def forward_and_drop(self, method, request):
		"""The server carries the request out; its answer is lost."""
		host, port = self.args.upstream.rsplit(":", 1)
		with socket.create_connection((host, int(port)), timeout=60) as sock:
			sock.sendall(request)
			self.relay_response(Stream(sock), Discard(), method, None)

	def cut(self, client):
		if self.args.rst:
			reset(client)
		else:
			client.shutdown(socket.SHUT_RDWR)

	def handle(self, csock):
		client = Stream(csock)
		up = None
		try:
			while True:
				head = client.read_head()
				if head is None:
					return
				request_line, headers = parse_head(head)
				method, target = request_line.split()[:2]
				if headers.get("transfer-encoding"):
					raise ValueError("chunked requests are not supported")
				body = client.read_exact(int(headers.get("content-length", "0")))
				op = operation(method, target)
				action = self.decide(method, op, target, headers)
				if action == "status":
					self.answer_error(csock, method)
					continue
				if action == "reset":
					reset(csock)
					return
				if action == "stall":
					time.sleep(self.args.seconds)
					return
				if action == "drop":
					self.forward_and_drop(method, head + body)
					reset(csock)
					return
				if up is None:
					host, port = self.args.upstream.rsplit(":", 1)
					up = Stream(socket.create_connection((host, int(port)), timeout=60))
				up.sock.sendall(head + body)
				cut = self.args.bytes if action == "cut" else None
				if not self.relay_response(up, csock, method, cut):
					return
		except (Closed, OSError, ValueError) as e:
			with self.lock:
				self.log.write("#\terror\t%s\n" % e)
		finally:
			for s in (csock, up.sock if up else None):
				if s:
					try:
						s.close()
					except OSError:
						pass


class Discard:
	"""A client that is not listening any more."""

	def sendall(self, data):
		pass


def reset(sock):
	"""Closes with a TCP reset instead of a clean end."""
	sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
	sock.close()


def faults(text):
	names = text.split(",")
	for name in names:
		if name not in FAULTS:
			raise argparse.ArgumentTypeError("unknown fault %r (known: %s)" % (name, ", ".join(FAULTS)))
	return names


def watchdog(lifetime, parent):
	end = time.monotonic() + lifetime
	while time.monotonic() < end and os.getppid() == parent:
		time.sleep(0.2)
	os._exit(0)


def main():
	p = argparse.ArgumentParser(description="fault-injecting HTTP proxy for the S3 tests")
	p.add_argument("--upstream", required=True, help="HOST:PORT of the S3 server")
	p.add_argument("--log", required=True, help="file that gets one line per request")
	p.add_argument("--lifetime", type=float, default=120, help="seconds before exiting")
	p.add_argument("--fault", type=faults, help="a fault, or several separated by commas "
		"for the successive matching requests (the last one repeats)")
	p.add_argument("--match", default="GET", help="method or S3 operation to fault")
	p.add_argument("--after", type=int, default=0, help="matching requests let through first")
	p.add_argument("--times", type=int, help="matching requests faulted (default: one per fault)")
	p.add_argument("--bytes", type=int, default=0, help="body bytes sent before a cut")
	p.add_argument("--rst", action="store_true", help="cut with a reset")
	p.add_argument("--status", type=int, default=503, choices=sorted(S3_ERRORS))
	p.add_argument("--seconds", type=float, default=5, help="how long a stall lasts")
	args = p.parse_args()
	if args.times is None:
		args.times = len(args.fault) if args.fault else 0

	proxy = Proxy(args)
	threading.Thread(target=watchdog, args=(args.lifetime, os.getppid()), daemon=True).start()
	srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
	srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
	srv.bind(("127.0.0.1", 0))
	srv.listen(64)
	sys.stdout.write("%d\n" % srv.getsockname()[1])
	sys.stdout.flush()
	while True:
		csock, _ = srv.accept()
		threading.Thread(target=proxy.handle, args=(csock,), daemon=True).start()


if __name__ == "__main__":
	main()
