"""hf-sync against a real S3 endpoint (moto, with SigV4 checking on) and the AWS CLI as a second
client: what hf-sync pushes, aws downloads byte-identical; what aws uploads (multipart included),
hf-sync pulls identical and verified; incremental re-syncs, --delete, --dry-run, filters, ls, rm,
presign (signature recomputed with botocore), both upload checksum modes."""

import datetime
import json
import os
import urllib.parse
import urllib.request

import botocore.auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from s3harness import Harness, Moto, random_bytes, read_tree, temp_files, write_tree, digest

h = Harness(__doc__)
SMALL_PARTS = ["--multipart-threshold", "8MiB", "--part-size", "5MiB", "-j", "4"]

with Moto(auth=True) as m:
    s3 = m.client()
    s3.create_bucket(Bucket="models")
    env = h.env(m)
    src, out = h.path("src"), h.path("aws-out")
    tree = {
        "model.safetensors": random_bytes(21 * 1024 * 1024 + 7, 1),  # 5 parts of 5 MiB
        "config.json": b'{"hidden_size": 384}',
        "tok/vocab.txt": b"[PAD]\n[UNK]\n[CLS]\n",
        "empty.bin": b"",
        "names/a b+c%25=&;.txt": b"odd characters",
        "names/\u00fcn\u00ef\u00e7\u00f6d\u00e9.txt": b"unicode",
        "deep/a/b/c/d.txt": b"deep",
    }
    write_tree(src, tree)

    # 1. push, then the AWS CLI downloads byte-identical.
    rc, s, err = h.sync_json(["push", src, "s3://models/run"] + SMALL_PARTS, env)
    h.check(rc == 0 and s.get("files_transferred") == len(tree), "push uploads every file", f"rc={rc} {s} {err}")
    rc, _, err = h.aws(["--endpoint-url", m.url, "s3", "cp", "s3://models/run", out, "--recursive"], env)
    h.check(rc == 0 and read_tree(out) == tree, "aws s3 cp downloads what hf-sync pushed, byte-identical",
            f"rc={rc} {err} {digest(read_tree(out))} vs {digest(tree)}")
    mp = s3.head_object(Bucket="models", Key="run/model.safetensors")
    h.check(mp["ETag"].endswith('-5"'), "large file went up as 5 parts", mp["ETag"])
    h.check(mp["Metadata"].get("sha256") == __import__("hashlib").sha256(tree["model.safetensors"]).hexdigest(),
            "full-file SHA-256 recorded as x-amz-meta-sha256", str(mp["Metadata"]))

    # 2. incremental: nothing re-read or re-sent; one change re-sent.
    rc, s, err = h.sync_json(["push", src, "s3://models/run"] + SMALL_PARTS, env)
    h.check(rc == 0 and s.get("files_transferred") == 0 and s.get("files_hashed") == 0 and
            s.get("files_unchanged") == len(tree), "second push: nothing read, nothing sent", f"{s} {err}")
    write_tree(src, {"config.json": b'{"hidden_size": 768}'})
    tree["config.json"] = b'{"hidden_size": 768}'
    rc, s, err = h.sync_json(["push", src, "s3://models/run"] + SMALL_PARTS, env)
    h.check(rc == 0 and [a["path"] for a in s.get("actions", [])] == ["config.json"], "changed file re-sent alone",
            f"{s} {err}")
    fresh = dict(env, XDG_CACHE_HOME=h.path("other-cache"))  # another machine: no manifest
    rc, s, err = h.sync_json(["push", src, "s3://models/run"] + SMALL_PARTS, fresh)
    h.check(rc == 0 and s.get("files_transferred") == 0, "without a manifest, identical remote content is not re-sent",
            f"{s} {err}")

    # 3. pull back: identical, every file verified by SHA-256, no temp files.
    dst = h.path("dst")
    rc, out_, err = h.sync(["pull", "s3://models/run", dst, "-v"] + SMALL_PARTS, env)
    h.check(rc == 0 and read_tree(dst) == tree, "pull restores the pushed tree", f"rc={rc} {err[-2000:]}")
    h.check(err.count("verified by sha256") == len(tree), "pull verified every file by SHA-256", err[-3000:])
    h.check(not temp_files(dst), "no temp files left after pull")
    rc, s, err = h.sync_json(["pull", "s3://models/run", dst] + SMALL_PARTS, env)
    h.check(rc == 0 and s.get("files_transferred") == 0 and s.get("files_hashed") == 0, "second pull: nothing fetched",
            f"{s} {err}")

    # 4. aws uploads (multipart with 5 MiB parts), hf-sync pulls identical and verified.
    awsdir = h.path("aws-src")
    aws_tree = {"big.bin": random_bytes(17 * 1024 * 1024 + 3, 2), "small.txt": b"small", "d/x.json": b"{}"}
    write_tree(awsdir, aws_tree)
    cfg = h.path("aws-config")
    with open(cfg, "w") as f:
        f.write("[default]\ns3 =\n  multipart_threshold = 5MB\n  multipart_chunksize = 5MB\n")
    rc, _, err = h.aws(["--endpoint-url", m.url, "s3", "cp", awsdir, "s3://models/awsup", "--recursive"], env,
                       AWS_CONFIG_FILE=cfg)
    big = s3.head_object(Bucket="models", Key="awsup/big.bin")
    h.check(rc == 0 and big["ETag"].endswith('-4"'), "aws uploaded big.bin as 4 parts", f"{big['ETag']} {err}")
    for label, extra in [("single GET", []), ("ranged GETs", ["--multipart-threshold", "5MiB", "--part-size", "8MiB"])]:
        d = h.path("from-aws-" + label.replace(" ", "-"))
        rc, _, err = h.sync(["pull", "s3://models/awsup", d, "-v"] + extra, env)
        h.check(rc == 0 and read_tree(d) == aws_tree, f"pull of aws-uploaded tree is identical ({label})",
                f"rc={rc} {err[-2000:]}")
        h.check("big.bin: verified by multipart-md5" in err and "small.txt: verified by md5" in err,
                f"aws objects verified by their ETags ({label})", err[-2000:])

    # 5. --delete and --dry-run.
    os.unlink(os.path.join(src, "deep/a/b/c/d.txt"))
    rc, s, err = h.sync_json(["push", src, "s3://models/run", "--delete", "--dry-run"], env)
    h.check(rc == 0 and s.get("actions") == [{"action": "delete", "path": "deep/a/b/c/d.txt", "size": 4}],
            "dry run plans the delete", f"{s} {err}")
    h.check(s3.list_objects_v2(Bucket="models", Prefix="run/deep/")["KeyCount"] == 1, "dry run deleted nothing")
    rc, s, err = h.sync_json(["push", src, "s3://models/run", "--delete"], env)
    h.check(rc == 0 and s.get("files_deleted") == 1 and
            s3.list_objects_v2(Bucket="models", Prefix="run/deep/")["KeyCount"] == 0, "push --delete removes it",
            f"{s} {err}")
    with open(os.path.join(dst, "local-only.txt"), "w") as f:
        f.write("x")
    rc, s, err = h.sync_json(["pull", "s3://models/run", dst, "--delete"], env)
    h.check(rc == 0 and not os.path.exists(os.path.join(dst, "local-only.txt")) and
            not os.path.exists(os.path.join(dst, "deep/a/b/c/d.txt")), "pull --delete removes local extras",
            f"{s} {err}")
    rc, s, err = h.sync_json(["pull", "s3://models/run", h.path("dry"), "--dry-run"], env)
    h.check(rc == 0 and not os.path.exists(h.path("dry")) and len(s.get("actions", [])) == len(tree) - 1,
            "dry-run pull writes nothing", f"{s} {err}")

    # 6. filters.
    rc, s, err = h.sync_json(["push", src, "s3://models/filtered", "--exclude", "*.txt", "--exclude", "tok"], env)
    keys = sorted(o["Key"] for o in s3.list_objects_v2(Bucket="models", Prefix="filtered/").get("Contents", []))
    h.check(keys == ["filtered/config.json", "filtered/empty.bin", "filtered/model.safetensors"],
            "--exclude globs", str(keys))
    rc, s, err = h.sync_json(["push", src, "s3://models/only", "--include", "tok/**"], env)
    keys = sorted(o["Key"] for o in s3.list_objects_v2(Bucket="models", Prefix="only/").get("Contents", []))
    h.check(keys == ["only/tok/vocab.txt"], "--include globs", str(keys))

    # 7. ls and rm.
    rc, out_, err = h.sync(["ls", "s3://models/run"], env)
    h.check(rc == 0 and "DIR  tok/" in out_ and "config.json" in out_, "ls shows one level", out_ + err)
    rc, out_, err = h.sync(["ls", "-r", "--json", "s3://models/run"], env)
    listed = {json.loads(l)["key"] for l in out_.splitlines()}
    h.check(rc == 0 and listed == set(tree) - {"deep/a/b/c/d.txt"}, "ls -r --json lists every key", f"{listed} {err}")
    rc, _, err = h.sync(["rm", "s3://models/run/config.json"], env)
    h.check(rc == 0 and "config.json" not in {o["Key"][4:] for o in s3.list_objects_v2(Bucket="models", Prefix="run/")["Contents"]},
            "rm deletes one object", err)
    rc, _, err = h.sync(["rm", "s3://models/run/config.json"], env)
    h.check(rc == 66, "rm of a missing object exits 66", f"rc={rc} {err}")
    rc, _, err = h.sync(["rm", "-r", "s3://models/filtered"], env)
    h.check(rc == 0 and s3.list_objects_v2(Bucket="models", Prefix="filtered/")["KeyCount"] == 0, "rm -r empties a prefix",
            err)

    # 8. Content-MD5 mode round trip.
    rc, _, err = h.sync(["push", src, "s3://models/md5", "--checksum", "md5"] + SMALL_PARTS, env)
    out2 = h.path("aws-md5")
    rc2, _, err2 = h.aws(["--endpoint-url", m.url, "s3", "cp", "s3://models/md5", out2, "--recursive"], env)
    h.check(rc == 0 and rc2 == 0 and read_tree(out2) == read_tree(src), "--checksum md5 push round-trips via aws",
            err + err2)

    # 9. presign: botocore computes the same signature for the same request and time.
    rc, url, err = h.sync(["presign", "s3://models/run/tok/vocab.txt", "--expires-in", "600"], env)
    url = url.strip()
    q = urllib.parse.parse_qs(urllib.parse.urlsplit(url).query)
    when = datetime.datetime.strptime(q["X-Amz-Date"][0], "%Y%m%dT%H%M%SZ")
    real_now = botocore.auth.get_current_datetime
    botocore.auth.get_current_datetime = lambda *a, **k: when
    try:
        req = AWSRequest(method="GET", url=url.split("?")[0])
        botocore.auth.S3SigV4QueryAuth(Credentials(m.key_id, m.secret), "s3", "us-east-1", expires=600).add_auth(req)
    finally:
        botocore.auth.get_current_datetime = real_now
    theirs = urllib.parse.parse_qs(urllib.parse.urlsplit(req.url).query)["X-Amz-Signature"][0]
    h.check(rc == 0 and theirs == q["X-Amz-Signature"][0], "presigned URL signature equals botocore's",
            f"{url}\n{req.url}")
    m.set_auth(False)  # moto checks header signatures only
    body = urllib.request.urlopen(url).read()
    h.check(body == tree["tok/vocab.txt"], "presigned URL downloads the object", repr(body[:100]))

h.finish()
