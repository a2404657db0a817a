"""A fault-injecting HTTP/1.1 proxy in front of a real S3 endpoint (moto).

It forwards requests verbatim (Host header included, so SigV4 signatures stay valid) over a
keep-alive upstream connection per client connection, and applies the first matching rule:

  drop      close the client connection without answering
  slowdown  answer 503 SlowDown (S3's throttling error) without contacting the upstream
  error500  answer 500 InternalError
  stall     read the request, then say nothing for `stall_s` seconds and close
  delay     read the request, wait `stall_s` seconds, then forward it (a slow link)
  truncate  forward, then send the full Content-Length header but only half of the body
  corrupt   forward, then flip one byte of the body (length unchanged)
  rewrite   forward, then replace the body with rule.rewrite(body) (hostile listings)

Rules carry a request matcher and a count (how many times they fire; -1 = forever). Every request
is logged (method, path, query, selected headers, body) for assertions. Runs in threads inside the
test process, so tests change rules between steps.
"""

import http.client
import socket
import threading
import time
import urllib.parse


class Rule:
    def __init__(self, action, match=None, count=1, stall_s=5.0, rewrite=None):
        self.action = action
        self.match = match or (lambda req: True)
        self.count = count
        self.stall_s = stall_s
        self.rewrite = rewrite
        self.fired = 0
        self.hits = []  # the requests it fired on, in order


class Request:
    def __init__(self, method, target, headers, body):
        self.method = method
        self.target = target
        parsed = urllib.parse.urlsplit(target)
        self.path = urllib.parse.unquote(parsed.path)
        self.query = urllib.parse.parse_qs(parsed.query, keep_blank_values=True)
        self.headers = headers  # list of (name, value), original case
        self.body = body
        self.seq = -1  # position in the proxy's log

    def same_call(self, other):
        """True when `other` asks for the same thing (a retry of it): method, path, query, Range."""
        return (self.method, self.path, self.query, self.header("Range")) == \
            (other.method, other.path, other.query, other.header("Range"))

    def header(self, name):
        for k, v in self.headers:
            if k.lower() == name.lower():
                return v
        return None

    def __repr__(self):
        return f"{self.method} {self.target}"


class FaultProxy:
    def __init__(self, upstream_port, upstream_host="127.0.0.1"):
        self.upstream = (upstream_host, upstream_port)
        self.rules = []
        self.log = []
        self.lock = threading.Lock()
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(128)
        self.port = self.sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    def add(self, *rules):
        with self.lock:
            self.rules.extend(rules)

    def clear(self):
        with self.lock:
            self.rules = []

    def requests(self):
        with self.lock:
            return list(self.log)

    def retried(self, req):
        """True when a request after `req` in the log asks for the same thing."""
        with self.lock:
            return any(req.same_call(later) for later in self.log[req.seq + 1:])

    def close(self):
        self.closed = True
        self.sock.close()

    # -- internals ---------------------------------------------------------------------------
    def _pick(self, req):
        with self.lock:
            req.seq = len(self.log)
            self.log.append(req)
            for rule in self.rules:
                if rule.count != 0 and rule.match(req):
                    if rule.count > 0:
                        rule.count -= 1
                    rule.fired += 1
                    rule.hits.append(req)
                    return rule
        return None

    def _accept(self):
        while not self.closed:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    @staticmethod
    def _read_request(f, conn):
        line = f.readline(65537)
        if not line:
            return None
        method, target, _ = line.decode("latin-1").rstrip("\r\n").split(" ", 2)
        headers = []
        while True:
            h = f.readline(65537).decode("latin-1")
            if h in ("\r\n", "\n", ""):
                break
            k, v = h.rstrip("\r\n").split(":", 1)
            headers.append((k, v.strip()))
        hmap = {k.lower(): v for k, v in headers}
        if hmap.get("expect", "").lower() == "100-continue":
            conn.sendall(b"HTTP/1.1 100 Continue\r\n\r\n")
            headers = [(k, v) for k, v in headers if k.lower() != "expect"]
        body = b""
        if "content-length" in hmap:
            n = int(hmap["content-length"])
            while len(body) < n:
                chunk = f.read(n - len(body))
                if not chunk:
                    return None
                body += chunk
        elif hmap.get("transfer-encoding", "").lower() == "chunked":
            raw = b""
            while True:
                size_line = f.readline()
                raw += size_line
                size = int(size_line.split(b";")[0].strip(), 16)
                data = f.read(size + 2)
                raw += data
                if size == 0:
                    break
            body = raw  # forwarded as-is with the chunked header
        return Request(method, target, headers, body)

    @staticmethod
    def _error(code, status, message):
        body = (f'<?xml version="1.0" encoding="UTF-8"?><Error><Code>{code}</Code>'
                f"<Message>{message}</Message><RequestId>fault-proxy</RequestId></Error>").encode()
        head = (f"HTTP/1.1 {status}\r\nContent-Type: application/xml\r\n"
                f"Content-Length: {len(body)}\r\n\r\n").encode()
        return head + body

    def _serve(self, conn):
        f = conn.makefile("rb")
        upstream = None
        try:
            while True:
                req = self._read_request(f, conn)
                if req is None:
                    return
                rule = self._pick(req)
                action = rule.action if rule else None
                if action == "drop":
                    return
                if action == "stall":
                    time.sleep(rule.stall_s)
                    return
                if action == "delay":
                    time.sleep(rule.stall_s)
                if action == "slowdown":
                    conn.sendall(self._error("SlowDown", "503 Slow Down", "Please reduce your request rate."))
                    continue
                if action == "error500":
                    conn.sendall(self._error("InternalError", "500 Internal Server Error", "We encountered an internal error."))
                    continue
                if upstream is None:
                    upstream = http.client.HTTPConnection(*self.upstream, timeout=120)
                upstream.putrequest(req.method, req.target, skip_host=True, skip_accept_encoding=True)
                for k, v in req.headers:
                    upstream.putheader(k, v)
                upstream.endheaders(req.body if req.body else None)
                resp = upstream.getresponse()
                body = resp.read()
                if req.method == "HEAD":
                    body = b""
                headers = [(k, v) for k, v in resp.getheaders()
                           if k.lower() not in ("transfer-encoding", "connection", "content-length")]
                length = int(resp.getheader("content-length", len(body))) if req.method == "HEAD" else len(body)
                if action == "rewrite" and body:
                    body = rule.rewrite(body)
                    length = len(body)
                if action == "corrupt" and body:
                    i = len(body) // 3
                    body = body[:i] + bytes([body[i] ^ 0x55]) + body[i + 1:]
                head = f"HTTP/1.1 {resp.status} {resp.reason}\r\n"
                head += "".join(f"{k}: {v}\r\n" for k, v in headers)
                head += f"Content-Length: {length}\r\n\r\n"
                if action == "truncate" and len(body) > 1:
                    conn.sendall(head.encode("latin-1") + body[: len(body) // 2])
                    return
                conn.sendall(head.encode("latin-1") + body)
        except (OSError, ValueError, http.client.HTTPException):
            return
        finally:
            try:
                conn.close()
            except OSError:
                pass
            if upstream is not None:
                upstream.close()
