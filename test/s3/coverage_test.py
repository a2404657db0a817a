"""Documented hf-sync features that had no test (issue 15): TLS with a self-signed certificate
(moto serving HTTPS: refused by default with a clear error, accepted with --no-verify-ssl),
listings over 1,000 keys (ListObjectsV2 pagination: ls and pull see every key), `presign --method
PUT` (an upload through the URL, read back with the AWS CLI), and `rm --dry-run` (prints, deletes
nothing)."""

import os
import ssl
import subprocess
import sys
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor

from fault_proxy import FaultProxy
from s3harness import HERE, Harness, Moto, free_port, read_tree

h = Harness(__doc__)
NKEYS = 1003  # more than one ListObjectsV2 page (1,000 keys)

with Moto() as m:
    s3 = m.client()
    s3.create_bucket(Bucket="cov")
    proxy = FaultProxy(m.port)
    env = h.env(m)
    penv = h.env(proxy.url, m.key_id, m.secret)

    # Pagination: every key in ls -r and in a pull, and more than one list request made.
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda i: s3.put_object(Bucket="cov", Key=f"many/k{i:04d}.txt", Body=str(i).encode()),
                      range(NKEYS)))
    rc, out, err = h.sync(["ls", "-r", "s3://cov/many"], penv)
    lists = [r for r in proxy.requests() if r.method == "GET" and "list-type" in r.query]
    h.check(rc == 0 and len(out.splitlines()) == NKEYS, f"ls -r lists all {NKEYS} keys",
            f"rc={rc} lines={len(out.splitlines())} {err[-400:]}")
    h.check(len(lists) >= 2 and any("continuation-token" in r.query for r in lists),
            "ls -r followed the continuation token", str(lists))
    dst = h.path("many")
    rc, out, err = h.sync(["pull", "s3://cov/many", dst, "-j", "8"], env, timeout=300)
    got = read_tree(dst)
    h.check(rc == 0 and len(got) == NKEYS and got.get("k1002.txt") == b"1002", f"pull fetches all {NKEYS} objects",
            f"rc={rc} files={len(got)} {err[-400:]}")

    # presign --method PUT: upload through the URL, read it back with the AWS CLI.
    rc, out, err = h.sync(["presign", "s3://cov/up/put.txt", "--method", "PUT", "--expires-in", "300"], env)
    url = out.strip()
    status = None
    try:
        # An explicit type: urllib's default (form-urlencoded) makes moto's web layer eat the body.
        req = urllib.request.Request(url, data=b"uploaded via presigned PUT", method="PUT",
                                     headers={"Content-Type": "application/octet-stream"})
        status = urllib.request.urlopen(req, timeout=30).status
    except Exception as e:  # noqa: BLE001 - reported below
        err += f" PUT failed: {e}"
    h.check(rc == 0 and status == 200, "presigned PUT URL accepts an upload", f"rc={rc} status={status} {err[-400:]}")
    rc, out, err = h.aws(["--endpoint-url", m.url, "s3", "cp", "s3://cov/up/put.txt", "-"], env)
    h.check(rc == 0 and out == "uploaded via presigned PUT", "aws reads what went up through the presigned PUT",
            f"rc={rc} {out!r} {err[-400:]}")

    # rm --dry-run prints every key and deletes nothing.
    for i in range(3):
        s3.put_object(Bucket="cov", Key=f"doomed/{i}.txt", Body=b"x")
    rc, out, err = h.sync(["rm", "-r", "--dry-run", "s3://cov/doomed"], env)
    still = sorted(o["Key"] for o in s3.list_objects_v2(Bucket="cov", Prefix="doomed/").get("Contents", []))
    h.check(rc == 0 and out.splitlines() == [f"(dry run) delete: s3://cov/doomed/{i}.txt" for i in range(3)],
            "rm --dry-run prints each key it would delete", f"rc={rc} {out!r} {err[-400:]}")
    h.check(still == [f"doomed/{i}.txt" for i in range(3)], "rm --dry-run deletes nothing", str(still))
    proxy.close()

# TLS: moto itself serves HTTPS with a self-signed certificate made here.
cert, key = h.path("cert.pem"), h.path("key.pem")
subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1",
                "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", key, "-out", cert], check=True,
               capture_output=True)
port = free_port()
log = open(h.path("moto-tls.log"), "wb")
tls = subprocess.Popen([sys.executable, os.path.join(HERE, "moto_server.py"), "-H", "127.0.0.1", "-p", str(port),
                        "--ssl-cert", cert, "--ssl-key", key], stdout=log, stderr=subprocess.STDOUT,
                       start_new_session=True)
try:
    insecure = ssl._create_unverified_context()
    deadline = time.time() + 30
    while True:
        try:
            urllib.request.urlopen(f"https://127.0.0.1:{port}/moto-api/", timeout=1, context=insecure).read()
            break
        except Exception:  # noqa: BLE001 - retried until the deadline
            if tls.poll() is not None or time.time() > deadline:
                raise RuntimeError("moto (TLS) did not start: " + open(log.name).read()[-2000:])
            time.sleep(0.1)
    url = f"https://127.0.0.1:{port}"
    tenv = h.env(url, "AKIAIOSFODNN7EXAMPLE", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY")
    rc, out, err = h.aws(["--endpoint-url", url, "--no-verify-ssl", "s3", "mb", "s3://tls"], tenv)
    h.check(rc == 0, "TLS moto is up and has a bucket", err[-400:])
    os.makedirs(h.path("tls-src"))
    with open(h.path("tls-src", "t.txt"), "wb") as f:
        f.write(b"over tls")
    rc, out, err = h.sync(["push", h.path("tls-src"), "s3://tls/run", "--max-attempts", "1"], tenv)
    h.check(rc == 69 and "certificate" in err and "--no-verify-ssl" in err,
            "self-signed certificate refused by default (69, names --no-verify-ssl)", f"rc={rc} {err[-600:]}")
    rc, out, err = h.sync(["push", h.path("tls-src"), "s3://tls/run", "--no-verify-ssl"], tenv)
    h.check(rc == 0 and "verification is off" in err, "--no-verify-ssl accepts it, with a warning",
            f"rc={rc} {err[-600:]}")
    rc, out, err = h.sync(["pull", "s3://tls/run", h.path("tls-dst"), "--no-verify-ssl"], tenv)
    h.check(rc == 0 and read_tree(h.path("tls-dst")) == {"t.txt": b"over tls"}, "pull over TLS with --no-verify-ssl",
            f"rc={rc} {err[-600:]}")
finally:
    os.killpg(tls.pid, 15)
    tls.wait(10)
    log.close()

h.finish()
