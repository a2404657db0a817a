"""The checkpoint API hf-train uses, against moto through the fault proxy: background uploads with
the completeness marker sent last, remote rotation (marker deleted first), the newest complete
checkpoint found and downloaded identical, incomplete ones ignored, and uploads that catch up after
the store was unreachable (bounded queue, newest wins)."""

import json
import os
import subprocess
import time
import xml.etree.ElementTree as ET

from fault_proxy import FaultProxy, Rule
from s3harness import Harness, Moto, read_tree

MARKER = ".complete"
h = Harness(__doc__)


def driver(args, env, timeout=120):
    p = subprocess.run([h.driver] + args, env=env, capture_output=True, text=True, timeout=timeout)
    lines = [json.loads(l) for l in p.stdout.splitlines() if l.startswith("{")]
    return p.returncode, lines, p.stderr


def deleted_keys(req):
    return [k.text for k in ET.fromstring(req.body).iter() if k.tag.endswith("Key")]


with Moto(auth=True) as m:
    s3 = m.client()
    s3.create_bucket(Bucket="ckpt")
    proxy = FaultProxy(m.port)
    env = h.env(m, AWS_ENDPOINT_URL=proxy.url)

    root = h.path("run")
    rc, out, err = driver(["checkpoints", "s3://ckpt/run", root], env)
    h.check(rc == 0 and len(out) == 3, "checkpoint scenario ran", f"rc={rc} {out} {err[-1500:]}")
    if len(out) == 3:
        h.check(out[0] == {"latest_before": False}, "no checkpoint before the first upload is not an error", str(out[0]))
        st = out[1]["status"]
        h.check(out[1]["drained"] and st["uploaded"] == 3 and st["pending"] == 0 and not st["last_error"],
                "three checkpoints uploaded in the background", str(out[1]))
        h.check(out[2]["complete"] == ["checkpoint-200", "checkpoint-300"] and out[2]["latest"] == "checkpoint-300"
                and out[2]["step"] == 300, "keep_last=2 rotated checkpoint-100 away; newest is 300", str(out[2]))
        local, restored = read_tree(os.path.join(root, "checkpoint-300")), read_tree(out[2]["downloaded"])
        h.check(local == restored and MARKER in restored, "downloaded checkpoint is identical, marker included",
                f"{sorted(local)} vs {sorted(restored)}")
        h.check(not [n for n in os.listdir(os.path.join(root, "restored")) if n.startswith(".")],
                "no temp dirs left after download", str(os.listdir(os.path.join(root, "restored"))))
    keys = sorted(o["Key"] for o in s3.list_objects_v2(Bucket="ckpt", Prefix="run/")["Contents"])
    h.check(not [k for k in keys if k.startswith("run/checkpoint-100/")], "rotated checkpoint fully deleted", str(keys))

    # Marker last on upload, first on deletion.
    log = proxy.requests()
    for step in (100, 200, 300):
        puts = [r.path for r in log if r.method == "PUT" and f"/checkpoint-{step}/" in r.path]
        h.check(puts and puts[-1].endswith("/" + MARKER) and sum(p.endswith(MARKER) for p in puts) == 1,
                f"checkpoint-{step}: marker uploaded last", str(puts))
    deletes = [deleted_keys(r) for r in log if r.method == "POST" and "delete" in r.query]
    ck100 = [d for d in deletes if any("checkpoint-100/" in k for k in d)]
    h.check(len(ck100) >= 2 and ck100[0] == ["run/checkpoint-100/" + MARKER] and
            not any(MARKER in k for d in ck100[1:] for k in d), "rotation deletes the marker first", str(ck100))

    # An incomplete (marker-less) newer checkpoint does not exist for readers.
    s3.put_object(Bucket="ckpt", Key="run/checkpoint-400/model.safetensors", Body=b"half")
    rc, out, err = driver(["latest", "s3://ckpt/run"], env)
    h.check(rc == 0 and out == [{"latest": "checkpoint-300"}], "incomplete checkpoint-400 ignored", f"{out} {err}")

    # Store unreachable while training goes on: the queue keeps the newest, uploads catch up.
    proxy.clear()
    proxy.add(Rule("drop", count=-1))
    go = h.path("go")
    p = subprocess.Popen([h.driver, "outage", "s3://ckpt/outage", h.path("outage"), go], env=env,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 60
    while not os.path.exists(go + ".ready") and time.time() < deadline and p.poll() is None:
        time.sleep(0.1)
    proxy.clear()
    open(go, "w").close()
    out, err = p.communicate(timeout=120)
    lines = [json.loads(l) for l in out.splitlines() if l.startswith("{")]
    h.check(p.returncode == 0 and len(lines) == 2, "outage scenario ran", f"rc={p.returncode} {out} {err[-1500:]}")
    if len(lines) == 2:
        during, after = lines[0]["during"], lines[1]
        h.check(during["uploaded"] == 0 and during["failed_attempts"] > 0 and during["pending"] == 1 and
                during["dropped"] >= 1 and during["last_error"], "while unreachable: failures counted, newest kept",
                str(during))
        h.check(after["drained"] and after["after"]["uploaded"] == 1 and
                after["after"]["last_uploaded"].endswith("checkpoint-3"), "after recovery the newest is uploaded",
                str(after))
    keys = sorted(o["Key"] for o in s3.list_objects_v2(Bucket="ckpt", Prefix="outage/").get("Contents", []))
    h.check(f"outage/checkpoint-3/{MARKER}" in keys and not any(f"checkpoint-1/{MARKER}" in k for k in keys),
            "only the newest checkpoint is complete remotely", str(keys))
    proxy.close()

h.finish()
