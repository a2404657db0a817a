"""hf-predict --serve under hostile or unusual HTTP, through raw sockets: pipelined requests,
chunked bodies, Expect: 100-continue, headers over 8 KiB, many idle connections, and JSON with text
that is not UTF-8. Each case checks the answer and that the server still serves afterwards.

All cases run in ctest (cli.serve.attack). Four of them failed on the cpp-httplib 0.11.4 server
(Debian 12) that the Boost.Beast one replaced, seen 2026-12-01:
- test_pipelined_requests_are_answered_in_order: the second pipelined request got no answer; the
  connection closed after the keep-alive timeout.
- test_chunked_request_body: a chunked body over --max-body-bytes was refused with 400, not 413.
- test_headers_over_8_kib: 200 headers of 100 bytes (19 KiB) were accepted: only each line was
  bounded, not the count, so one client could stream headers until the read timeout.
- test_idle_connections_do_not_lock_out_clients: 2000 idle connections made a request wait 34 s;
  each idle connection held one of the --http-threads (64) until its timeout."""
import functools
import json
import os
import resource
import socket
import tempfile
import time

from hfkit_testlib import main, make_tiny_bert
from servelib import Server

WORK = tempfile.TemporaryDirectory(prefix="hfkit-serve-attack-")


@functools.cache
def tiny():
    out = os.path.join(WORK.name, "tiny")
    make_tiny_bert(out, seed=1)
    return out


def connect(s, timeout=10):
    return socket.create_connection(("127.0.0.1", s.port), timeout=timeout)


def read_response(sock, buf=b""):
    """One HTTP/1.1 response (Content-Length or chunked) from sock: (status, headers, body, rest)."""
    while b"\r\n\r\n" not in buf:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError(f"connection closed mid-headers: {buf!r}")
        buf += chunk
    head, buf = buf.split(b"\r\n\r\n", 1)
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {k.strip().lower(): v.strip() for k, v in (l.split(":", 1) for l in lines[1:])}
    n = int(headers.get("content-length", 0))
    while len(buf) < n:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("connection closed mid-body")
        buf += chunk
    return status, headers, buf[:n], buf[n:]


def post_bytes(body, extra=b""):
    return (b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n" + extra +
            b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body)


def still_serving(s):
    assert s.predict({"inputs": "still there?"})[0]["label"], "server stopped answering"


def test_pipelined_requests_are_answered_in_order():
    with Server(tiny()) as s:
        bodies = [json.dumps({"inputs": t}).encode() for t in ["one", "two two", "three three three"]]
        with connect(s) as c:
            c.sendall(b"".join(post_bytes(b) for b in bodies) + b"GET /ping HTTP/1.1\r\nHost: x\r\n\r\n")
            rest = b""
            for b in bodies:
                status, _, body, rest = read_response(c, rest)
                assert status == 200 and len(json.loads(body)) == 1, (status, body)
                assert json.loads(body) == s.predict(json.loads(b)), "pipelined answer out of order"
            status, _, body, rest = read_response(c, rest)
            assert status == 200 and b"ok" in body, (status, body)
        assert s.stop() == 0


def test_chunked_request_body():
    with Server(tiny(), "--max-body-bytes", "4096") as s:
        body = json.dumps({"inputs": ["chunked one", "chunked two"]}).encode()
        chunks = b"".join(b"%x\r\n%s\r\n" % (len(body[i:i + 7]), body[i:i + 7]) for i in range(0, len(body), 7))
        head = b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
        with connect(s) as c:
            c.sendall(head + chunks + b"0\r\n\r\n")
            status, _, answer, _ = read_response(c)
        assert status == 200 and json.loads(answer) == s.predict(json.loads(body)), (status, answer)
        # Chunks past --max-body-bytes: 413, never buffered without bound.
        big = b"x" * 1000
        with connect(s) as c:
            c.sendall(head)
            try:
                for _ in range(64):
                    c.sendall(b"%x\r\n%s\r\n" % (len(big), big))
                c.sendall(b"0\r\n\r\n")
            except (BrokenPipeError, ConnectionResetError):
                pass  # the server answered and closed before the rest arrived
            status, _, _, _ = read_response(c)
        assert status == 413, status
        still_serving(s)
        assert s.stop() == 0


def test_expect_100_continue():
    with Server(tiny()) as s:
        body = json.dumps({"inputs": "curl sends Expect for bodies over 1 KiB " * 40}).encode()
        with connect(s) as c:
            head, _ = post_bytes(body, b"Expect: 100-continue\r\n").split(b"\r\n\r\n", 1)
            c.sendall(head + b"\r\n\r\n")
            interim = c.recv(1000)
            assert interim.startswith(b"HTTP/1.1 100"), interim
            c.sendall(body)
            status, _, answer, _ = read_response(c, interim.split(b"\r\n\r\n", 1)[1])
        assert status == 200 and len(json.loads(answer)) == 1, (status, answer)
        assert s.stop() == 0


def test_headers_over_8_kib():
    with Server(tiny()) as s:
        for name, request in [
            ("one long header", post_bytes(b'{"inputs": "x"}', b"X-Big: " + b"a" * 9000 + b"\r\n")),
            ("many headers", post_bytes(b'{"inputs": "x"}', b"".join(b"X-%d: %s\r\n" % (i, b"b" * 90) for i in range(200)))),
            ("long URI", b"GET /ping?" + b"q" * 9000 + b" HTTP/1.1\r\nHost: x\r\n\r\n"),
        ]:
            with connect(s) as c:
                try:
                    c.sendall(request)
                    status, _, _, _ = read_response(c)
                except (ConnectionError, BrokenPipeError):
                    status = None  # closed without an answer
            assert status in (400, 414, 431), f"{name}: {status}"
        still_serving(s)
        assert s.stop() == 0


def test_idle_connections_do_not_lock_out_clients():
    """Many connections that send nothing hold no more than their socket: a real request still
    gets its answer within the read timeout's order, not after every idle one times out."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = 2000
    if soft < want + 100:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, want + 200), hard))
        soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    n = min(want, soft - 100)
    with Server(tiny(), "--http-read-timeout", "5") as s:
        idle = []
        try:
            for _ in range(n):
                idle.append(connect(s))
            time.sleep(0.5)
            t0 = time.time()
            still_serving(s)
            waited = time.time() - t0
            assert waited < 3, f"a request waited {waited:.1f} s behind {n} idle connections"
        finally:
            for c in idle:
                c.close()
        assert s.stop() == 0


def test_text_that_is_not_utf8():
    with Server(tiny()) as s:
        for name, body in [("raw byte 0xff", b'{"inputs": "caf\xff"}'),
                           ("overlong encoding", b'{"inputs": "\xc0\xaf"}'),
                           ("lone surrogate escape", b'{"inputs": "\\udc80"}')]:
            with connect(s) as c:
                c.sendall(post_bytes(body))
                status, headers, answer, _ = read_response(c)
            assert status == 400, f"{name}: {status} {answer!r}"
            err = json.loads(answer.decode("utf-8"))["error"]  # the error itself is valid UTF-8 JSON
            assert err, name
        # Valid non-ASCII text is fine.
        assert s.predict({"inputs": "naïve café — 東京"})[0]["label"]
        still_serving(s)
        assert s.stop() == 0


if __name__ == "__main__":
    main(globals())
