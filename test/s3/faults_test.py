"""Faults between hf-sync and a real S3 endpoint: a proxy in front of moto drops connections,
answers 503 SlowDown, stalls, truncates and corrupts bodies, and serves hostile listings. hf-sync
must end with identical content (checked by reading moto directly with boto3) or fail with the
documented exit code and no partial or temp files; interrupted runs clean up after themselves."""

import itertools
import os
import signal
import subprocess
import time
import urllib.parse

from fault_proxy import FaultProxy, Rule
from s3harness import Harness, Moto, random_bytes, read_tree, temp_files, write_tree, digest

h = Harness(__doc__)
SIZES = ["--multipart-threshold", "8MiB", "--part-size", "5MiB"]
RETRY = ["--read-timeout", "2", "--connect-timeout", "2", "-j", "4"]
FAST = ["--max-attempts", "6"] + RETRY + SIZES      # transient faults: enough tries to get through
GIVE_UP = ["--max-attempts", "3"] + RETRY + SIZES   # persistent faults: fail reasonably fast


def every(n, pred=lambda r: True):
    """Matches every n-th request satisfying pred."""
    counter = itertools.count(1)
    return lambda r: pred(r) and next(counter) % n == 0


def is_list(r):
    return r.method == "GET" and "list-type" in r.query


def is_object_get(r):
    return r.method == "GET" and "list-type" not in r.query


def is_part_put(r):
    return r.method == "PUT" and "partNumber" in r.query


with Moto(auth=True) as m:
    s3 = m.client()
    s3.create_bucket(Bucket="faults")
    proxy = FaultProxy(m.port)
    env = h.env(m, AWS_ENDPOINT_URL=proxy.url)
    tree = {"big.bin": random_bytes(12 * 1024 * 1024 + 11, 7)}  # 3 parts / 3 ranges
    tree.update({f"small/{i:02d}.txt": random_bytes(1000 + i * 37, 100 + i) for i in range(12)})
    src = h.path("src")
    write_tree(src, tree)

    def remote_tree(prefix):
        out = {}
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket="faults", Prefix=prefix + "/"):
            for o in page.get("Contents", []):
                out[o["Key"][len(prefix) + 1:]] = s3.get_object(Bucket="faults", Key=o["Key"])["Body"].read()
        return out

    def fired_and_retried(name, rules):
        """Each rule fired, and every request it spoiled was asked again later (a retry)."""
        hits = [r for rule in rules for r in rule.hits]
        h.check(all(rule.fired > 0 for rule in rules), f"{name}: the fault fired",
                str([(rule.action, rule.fired) for rule in rules]))
        unretried = [r for r in hits if not proxy.retried(r)]
        h.check(hits and not unretried, f"{name}: every faulted request was retried", str(unretried[:5]))

    def scenario(name, rules, direction="both", sizes=SIZES):
        flags = ["--max-attempts", "6"] + RETRY + sizes
        proxy.clear()
        prefix = "ok-" + name
        if direction in ("both", "push"):
            pushed = rules()
            proxy.add(*pushed)
            rc, out, err = h.sync(["push", src, f"s3://faults/{prefix}"] + flags, env)
            proxy.clear()
            got = remote_tree(prefix)
            h.check(rc == 0 and got == tree, f"{name}: push completes with identical content",
                    f"rc={rc} {err[-1500:]} {digest(got)}")
            fired_and_retried(name + " (push)", pushed)
        else:
            h.sync(["push", src, f"s3://faults/{prefix}"] + FAST, env)
        if direction in ("both", "pull"):
            pulled = rules()
            proxy.add(*pulled)
            start = len(proxy.requests())
            dst = h.path("pull-" + name)
            rc, out, err = h.sync(["pull", f"s3://faults/{prefix}", dst, "-v"] + flags, env)
            proxy.clear()
            h.check(rc == 0 and read_tree(dst) == tree and not temp_files(dst),
                    f"{name}: pull completes with identical content", f"rc={rc} {err[-1500:]}")
            fired_and_retried(name + " (pull)", pulled)
            return err, proxy.requests()[start:]
        return "", []

    # Transient faults: retried until the content is right.
    scenario("drops", lambda: [Rule("drop", every(3), count=-1)])
    scenario("slowdown", lambda: [Rule("slowdown", every(2), count=-1)])
    scenario("errors500", lambda: [Rule("error500", every(4), count=-1)])
    scenario("stalls", lambda: [Rule("stall", lambda r: r.method in ("GET", "PUT") and not is_list(r), count=2,
                                      stall_s=5)])
    scenario("truncated", lambda: [Rule("truncate", is_object_get, count=3)], direction="pull")
    _, log = scenario("truncated-ranges", lambda: [Rule("truncate", is_object_get, count=3)], direction="pull",
                      sizes=["--multipart-threshold", "5MiB", "--part-size", "5MiB"])
    big_gets = [r for r in log if is_object_get(r) and r.path.endswith("/big.bin")]
    h.check(len(big_gets) >= 3 and all(r.header("Range") and r.header("If-Match") for r in big_gets),
            "truncated-ranges: big.bin came as ranged GETs (Range) pinned to its ETag (If-Match)",
            str([(r.header("Range"), r.header("If-Match")) for r in big_gets]))
    err, _ = scenario("corrupted", lambda: [Rule("corrupt", lambda r: is_object_get(r) and r.path.endswith("03.txt"),
                                              count=1)], direction="pull")
    h.check("SHA-256 mismatch" in err and "downloading again" in err, "corruption detected by SHA-256 and re-fetched",
            err[-1500:])

    # Persistent faults: clear failure, documented exit code, nothing half-written.
    proxy.clear()
    base = {k: v for k, v in tree.items() if k in ("big.bin", "small/03.txt", "small/05.txt")}
    write_tree(h.path("base"), base)
    h.sync(["push", h.path("base"), "s3://faults/base"] + FAST, env)

    def failing_pull(name, rule, code, survivors=()):
        proxy.clear()
        proxy.add(rule)
        dst = h.path("fail-" + name)
        os.makedirs(dst)
        write_tree(dst, {"keep.txt": b"pre-existing"})
        t0 = time.time()
        rc, out, err = h.sync(["pull", "s3://faults/base", dst] + GIVE_UP, env, timeout=240)
        proxy.clear()
        left = read_tree(dst)
        want = {"keep.txt": b"pre-existing", **{k: base[k] for k in survivors}}
        h.check(rc == code, f"{name}: pull exits {code}", f"rc={rc} after {time.time() - t0:.1f}s {err[-800:]}")
        h.check(left == want and not temp_files(dst), f"{name}: no partial or temp files", str(sorted(left)))
        return err

    failing_pull("throttled", Rule("slowdown", is_object_get, count=-1), 75)
    failing_pull("stalled", Rule("stall", is_object_get, count=-1, stall_s=4), 75)
    failing_pull("dropped", Rule("drop", is_object_get, count=-1), 69)
    err = failing_pull("corrupt", Rule("corrupt", lambda r: is_object_get(r) and r.path.endswith("05.txt"), count=-1), 74,
                       survivors=("big.bin", "small/03.txt"))  # the other files are whole and verified
    h.check("SHA-256 mismatch" in err, "persistent corruption reported as a checksum error", err[-600:])

    proxy.add(Rule("slowdown", is_part_put, count=-1))
    rc, out, err = h.sync(["push", h.path("base"), "s3://faults/throttled-push"] + GIVE_UP, env, timeout=240)
    proxy.clear()
    uploads = s3.list_multipart_uploads(Bucket="faults").get("Uploads", [])
    h.check(rc == 75, "push throttled on every part exits 75", f"rc={rc} {err[-800:]}")
    h.check(not uploads, "failed multipart upload was aborted", str(uploads))
    h.check("big.bin" not in remote_tree("throttled-push"), "no object for the failed multipart file")

    # Hostile listings: rewritten by the proxy, and real keys stored in moto.
    def inject(keys):
        def rewrite(body):
            extra = "".join(f"<Contents><Key>{urllib.parse.quote(k)}</Key><Size>1</Size><ETag>&quot;x&quot;</ETag>"
                            f"</Contents>" for k in keys)
            return body.replace(b"</ListBucketResult>", extra.encode() + b"</ListBucketResult>")
        return rewrite

    outside = h.path("outside")
    os.makedirs(outside)
    for name, keys in [("dotdot", ["base/../../outside/evil"]), ("nested", ["base/a/../../../outside/evil"]),
                       ("absolute", ["base//tmp/evil"]), ("control", ["base/a\nb"]), ("dot", ["base/./x"])]:
        proxy.clear()
        proxy.add(Rule("rewrite", is_list, count=-1, rewrite=inject(keys)))
        dst = h.path("hostile-" + name)
        rc, out, err = h.sync(["pull", "s3://faults/base", dst] + FAST, env)
        h.check(rc == 65 and "refusing" in err, f"hostile listing ({name}) refused with exit 65", f"rc={rc} {err[-600:]}")
        h.check(not os.path.exists(dst) or not read_tree(dst), f"hostile listing ({name}): nothing written")
    proxy.clear()
    h.check(not os.listdir(outside), "nothing written outside the target")
    s3.put_object(Bucket="faults", Key="stored/ok.txt", Body=b"ok")
    s3.put_object(Bucket="faults", Key="stored/../../escape.txt", Body=b"evil")
    stored = [o["Key"] for o in s3.list_objects_v2(Bucket="faults", Prefix="stored/")["Contents"]]
    rc, out, err = h.sync(["pull", "s3://faults/stored", h.path("stored")] + FAST, env)
    h.check("stored/../../escape.txt" in stored and rc == 65 and not os.path.exists(h.path("stored", "ok.txt")),
            "traversal key stored in moto refused before any write", f"{stored} rc={rc} {err[-400:]}")

    # A symlink inside the target pointing out of it.
    dst = h.path("linked")
    os.makedirs(dst)
    os.symlink(outside, os.path.join(dst, "small"))
    rc, out, err = h.sync(["pull", "s3://faults/base", dst] + FAST, env)
    h.check(rc == 65 and not os.listdir(outside) and not os.path.exists(os.path.join(dst, "big.bin")),
            "key colliding with a symlink refused, nothing written", f"rc={rc} {err[-400:]}")

    # Interrupted runs: SIGINT while transfers hang; temps removed, multipart aborted, exit 130.
    def interrupted(args, rule):
        proxy.clear()
        proxy.add(rule)
        p = subprocess.Popen([h.bin] + args + ["--read-timeout", "30", "-j", "4"] + SIZES, env=env, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
        deadline = time.time() + 20
        while rule.fired == 0 and time.time() < deadline:
            time.sleep(0.05)
        time.sleep(0.5)
        t0 = time.time()
        p.send_signal(signal.SIGINT)
        out, err = p.communicate(timeout=60)
        proxy.clear()
        return p.returncode, time.time() - t0, err

    dst = h.path("interrupted-pull")
    rc, secs, err = interrupted(["pull", "s3://faults/base", dst],
                                Rule("stall", lambda r: is_object_get(r) and "big.bin" in r.path, count=-1, stall_s=30))
    h.check(rc == 130 and secs < 10, "SIGINT stops a pull promptly with exit 130", f"rc={rc} {secs:.1f}s {err[-600:]}")
    h.check(not temp_files(dst) and not os.path.exists(os.path.join(dst, "big.bin")),
            "interrupted pull leaves no partial big.bin and no temps", str(sorted(read_tree(dst)) if os.path.exists(dst) else []))
    rc, secs, err = interrupted(["push", h.path("base"), "s3://faults/interrupted-push"],
                                Rule("stall", is_part_put, count=-1, stall_s=30))
    uploads = s3.list_multipart_uploads(Bucket="faults").get("Uploads", [])
    h.check(rc == 130 and secs < 10, "SIGINT stops a push promptly with exit 130", f"rc={rc} {secs:.1f}s {err[-600:]}")
    h.check(not uploads and "big.bin" not in remote_tree("interrupted-push"),
            "interrupted push aborted its multipart upload", str(uploads))
    proxy.close()

h.finish()
