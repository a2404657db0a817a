"""Models by name (lib/hub) on the real binaries, against huggingface_hub itself and a local fake
Hub (fake_hub.py) that serves the same URLs and headers:
- a cache filled by huggingface_hub.snapshot_download is used by hfkit with the server stopped and
  HF_HUB_OFFLINE=1 (hf-predict, hf-preprocess, hf-train; refs/main, @tag, @commit);
- a cache filled by hfkit is read by huggingface_hub and transformers with HF_HUB_OFFLINE=1, and has
  exactly huggingface_hub's layout (refs, relative symlinks into blobs/<etag>, only the files hfkit
  reads);
- HF_HUB_OFFLINE with an empty cache, 401/403/404, the token (HF_TOKEN or the token file) sent to
  the endpoint only and never printed, an interrupted download resumed by a re-run, two processes
  racing, crafted names refused before any path or request is made, a local directory winning."""
import filecmp
import hashlib
import json
import os
import subprocess
import sys
import tempfile

from fake_hub import TOKEN, FakeHub, Repo, git_blob_id
from hfkit_testlib import AMAZON, expect_error, main, make_tiny_bert, run, tempdir, tool

PREDICT = tool("hf-predict")
PREPROCESS = tool("hf-preprocess")
TRAIN = tool("hf-train")
REPO = "fake-org/tiny-bert"
COMMIT_MAIN = "a" * 39 + "1"
COMMIT_V1 = "b" * 39 + "2"
TEXTS = "".join(json.dumps({"text": t}) + "\n" for t in ["a fine day", "terrible, never again", "ok"])
WANTED = ["config.json", "model.safetensors", "special_tokens_map.json", "tokenizer.json", "tokenizer_config.json",
          "vocab.txt"]

WORK = tempfile.TemporaryDirectory(prefix="hfkit-hub-test-")
MODEL = os.path.join(WORK.name, "model")
make_tiny_bert(MODEL)


def model_files(extra=True):
    files = {f: open(os.path.join(MODEL, f), "rb").read() for f in os.listdir(MODEL)}
    if extra:  # files a repo has that hfkit never reads
        files["README.md"] = b"# tiny\n"
        files["flax_model.msgpack"] = b"\0" * 100
    return files


def new_hub(**repo_kw):
    hub = FakeHub()
    v1 = {"config.json": model_files()["config.json"]}
    hub.add(REPO, Repo({COMMIT_MAIN: model_files(), COMMIT_V1: v1}, {"main": COMMIT_MAIN, "v1": COMMIT_V1}, **repo_kw))
    return hub


def env_for(cache, hub=None, offline=False, token=None, home=None):
    e = {"HF_HUB_CACHE": cache, "HF_HUB_OFFLINE": "1" if offline else "0",
         "TRANSFORMERS_OFFLINE": "1" if offline else "0", "HF_ENDPOINT": hub.url if hub else "http://127.0.0.1:9",
         "HF_HOME": home or os.path.join(os.path.dirname(cache), "hf-home"), "HF_TOKEN": token or "",
         "HF_HUB_DISABLE_TELEMETRY": "1", "HF_HUB_DISABLE_XET": "1"}
    return e


def predict(model, env, check=0, cwd=None, extra=()):
    p = subprocess.run([PREDICT, "--model", model, *extra], input=TEXTS, capture_output=True, text=True,
                       env={**os.environ, **env}, cwd=cwd, timeout=300)
    codes = check if isinstance(check, tuple) else (check,)
    assert p.returncode in codes, f"exit {p.returncode}, expected {check}: {p.stderr[-2000:]}"
    return p


def reference_predictions():
    return predict(MODEL, {}).stdout


def python(code, env):
    return run([sys.executable, "-c", code], env=env, check=0).stdout


def storage(cache):
    return os.path.join(cache, "models--fake-org--tiny-bert")


def test_python_cache_used_offline():
    with tempdir() as d:
        cache = os.path.join(d, "cache")
        hub = new_hub()
        python(f"import huggingface_hub as h; print(h.snapshot_download({REPO!r}));"
               f"print(h.hf_hub_download({REPO!r}, 'config.json', revision='v1'))", env_for(cache, hub))
        hub.stop()
        env = env_for(cache, offline=True)
        assert open(os.path.join(storage(cache), "refs", "main")).read() == COMMIT_MAIN
        ref = reference_predictions()
        for name in (REPO, f"{REPO}@main", f"{REPO}@{COMMIT_MAIN}"):
            p = predict(name, env)
            assert p.stdout == ref, name
            assert os.path.join(storage(cache), "snapshots", COMMIT_MAIN) in p.stderr
        # @v1 names another commit whose snapshot holds config.json only: that snapshot is chosen
        p = predict(f"{REPO}@v1", env, check=66)
        assert os.path.join(storage(cache), "snapshots", COMMIT_V1) in p.stderr, p.stderr
        # online with the endpoint unreachable: the incomplete cached snapshot, with a warning
        p = predict(f"{REPO}@v1", env_for(cache), check=66)
        assert "cannot reach" in p.stderr and "using the cached snapshot" in p.stderr, p.stderr
        # hf-preprocess and hf-train take the same names
        data, out = os.path.join(d, "data"), os.path.join(d, "run")
        run([PREPROCESS, "--tokenizer", REPO, "--input", AMAZON, "--output", data, "--max-length", "32", "-q"],
            env=env, check=0)
        ref_data = os.path.join(d, "ref-data")
        run([PREPROCESS, "--tokenizer", MODEL, "--input", AMAZON, "--output", ref_data, "--max-length", "32", "-q"],
            check=0)
        assert filecmp.cmp(os.path.join(data, "train.safetensors"), os.path.join(ref_data, "train.safetensors"),
                           shallow=False)
        run([TRAIN, "--model", REPO, "--data", data, "--output-dir", out, "--max-steps", "2", "--logging-steps", "1",
             "--eval-strategy", "no", "--save-strategy", "no", "-q"], env=env, check=0)
        assert os.path.isfile(os.path.join(out, "model.safetensors"))
        assert os.path.isfile(os.path.join(out, "tokenizer.json")) and not os.path.islink(
            os.path.join(out, "tokenizer.json"))


def check_layout(cache, hub):
    st = storage(cache)
    assert open(os.path.join(st, "refs", "main")).read() == COMMIT_MAIN
    snap = os.path.join(st, "snapshots", COMMIT_MAIN)
    assert sorted(os.listdir(snap)) == WANTED, os.listdir(snap)
    files = model_files()
    for f in WANTED:
        link = os.readlink(os.path.join(snap, f))
        etag = hashlib.sha256(files[f]).hexdigest() if f.endswith(".safetensors") else git_blob_id(files[f])
        assert link == f"../../blobs/{etag}", (f, link)
        assert open(os.path.join(snap, f), "rb").read() == files[f]
    assert sorted(os.listdir(os.path.join(st, "blobs"))) == sorted(
        hashlib.sha256(files[f]).hexdigest() if f.endswith(".safetensors") else git_blob_id(files[f]) for f in WANTED)


def test_hfkit_cache_read_by_python():
    with tempdir() as d:
        cache = os.path.join(d, "cache")
        hub = new_hub(private=True)
        p = predict(REPO, {**env_for(cache, hub, token=TOKEN)}, extra=["-v"])
        assert p.stdout == reference_predictions()
        assert TOKEN not in p.stderr and TOKEN not in p.stdout
        check_layout(cache, hub)
        # the token went to the endpoint, never to the CDN on another host
        cdn = [r for r in hub.requests if r[1].startswith("/cdn/")]
        api = [r for r in hub.requests if not r[1].startswith("/cdn/")]
        assert cdn and all("Authorization" not in r[2] for r in cdn)
        assert api and all(r[2].get("Authorization") == f"Bearer {TOKEN}" for r in api)
        assert not any("README" in r[1] or "flax" in r[1] for r in hub.requests)
        hub.stop()
        env = env_for(cache, offline=True)
        snap = os.path.join(storage(cache), "snapshots", COMMIT_MAIN)
        out = python(f"import huggingface_hub as h; print(h.snapshot_download({REPO!r}));"
                     f"print(h.hf_hub_download({REPO!r}, 'model.safetensors'))", env).split()
        assert out == [snap, os.path.join(snap, "model.safetensors")], out
        python(f"""
import torch
from transformers import AutoModelForSequenceClassification as M, AutoTokenizer as T
a = M.from_pretrained({REPO!r}, local_files_only=True)
b = M.from_pretrained({MODEL!r})
assert all(torch.equal(a.state_dict()[k], v) for k, v in b.state_dict().items())
assert T.from_pretrained({REPO!r}, local_files_only=True)("hello world")["input_ids"] == \
       T.from_pretrained({MODEL!r})("hello world")["input_ids"]
""", env)
        # a second run finds it complete in the cache: no request at all
        hub2 = new_hub(private=True)
        predict(REPO, env_for(cache, hub2, token=TOKEN))
        assert hub2.requests == []
        hub2.stop()


def test_token_file():
    with tempdir() as d:
        cache, home = os.path.join(d, "cache"), os.path.join(d, "home")
        os.makedirs(home)
        with open(os.path.join(home, "token"), "w") as f:
            f.write(TOKEN + "\n")
        hub = new_hub(private=True)
        p = predict(REPO, env_for(cache, hub, home=home), extra=["-v"])
        assert TOKEN not in p.stderr
        hub.stop()


def test_offline_missing():
    with tempdir() as d:
        cache = os.path.join(d, "cache")
        p = predict(REPO, env_for(cache, offline=True), check=66)
        assert "not in the Hugging Face cache" in p.stderr and "HF_HUB_OFFLINE" in p.stderr, p.stderr
        assert not os.path.exists(cache)


def test_http_errors():
    with tempdir() as d:
        cache = os.path.join(d, "cache")
        hub = new_hub(private=True)
        p = predict(REPO, env_for(cache, hub), check=77)
        assert "HF_TOKEN" in p.stderr and "401" in p.stderr, p.stderr
        p = predict(REPO, env_for(cache, hub, token="hf_wrong"), check=77)
        assert "refused" in p.stderr and "hf_wrong" not in p.stderr, p.stderr
        p = predict("fake-org/no-such-model", env_for(cache, hub, token=TOKEN), check=66)
        assert "repository not found" in p.stderr and "404" in p.stderr, p.stderr
        p = predict(f"{REPO}@no-such-branch", env_for(cache, hub, token=TOKEN), check=66)
        assert "revision 'no-such-branch' not found" in p.stderr, p.stderr
        hub.stop()
        gated = new_hub(gated=True)
        p = predict(REPO, env_for(cache, gated, token=TOKEN), check=77)
        assert "gated" in p.stderr and "403" in p.stderr, p.stderr
        gated.stop()
        p = predict(REPO, env_for(cache), check=69)  # nothing listens at the endpoint
        assert "cannot reach" in p.stderr, p.stderr
        assert not os.path.exists(os.path.join(storage(cache), "refs")), "no ref for a failed download"


def test_interrupted_download_resumes():
    with tempdir() as d:
        cache = os.path.join(d, "cache")
        hub = new_hub()
        weights = model_files()["model.safetensors"]
        sha = hashlib.sha256(weights).hexdigest()
        hub.drop.add(sha)
        p = predict(REPO, env_for(cache, hub), check=75)
        assert "interrupted" in p.stderr and "run again" in p.stderr, p.stderr
        blobs = os.path.join(storage(cache), "blobs")
        assert sha + ".incomplete" in os.listdir(blobs) and sha not in os.listdir(blobs)
        assert 0 < os.path.getsize(os.path.join(blobs, sha + ".incomplete")) < len(weights)
        assert not os.path.exists(os.path.join(storage(cache), "refs", "main"))
        assert not os.path.exists(os.path.join(storage(cache), "snapshots", COMMIT_MAIN, "model.safetensors"))
        hub.drop.clear()
        hub.requests.clear()
        p = predict(REPO, env_for(cache, hub))
        assert p.stdout == reference_predictions()
        ranges = [r[2].get("Range") for r in hub.requests if r[1].startswith("/cdn/") and r[0] == "GET"]
        assert ranges and ranges[0] and ranges[0].startswith("bytes="), ranges
        check_layout(cache, hub)
        assert not any(f.endswith(".incomplete") for f in os.listdir(blobs))
        hub.stop()


def test_concurrent_downloads():
    with tempdir() as d:
        cache = os.path.join(d, "cache")
        hub = new_hub()
        hub.slow = 0.002  # the CDN trickles, so both processes want the weights at once
        env = {**os.environ, **env_for(cache, hub)}
        procs = [subprocess.Popen([PREDICT, "--model", REPO], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True, env=env) for _ in range(2)]
        outs = [p.communicate(TEXTS, timeout=300) for p in procs]
        assert [p.returncode for p in procs] == [0, 0], [o[1][-1500:] for o in outs]
        assert all(o[0] == reference_predictions() for o in outs)
        check_layout(cache, hub)
        hub.stop()


def test_crafted_names_never_become_paths():
    with tempdir() as d:
        cache = os.path.join(d, "cache")
        hub = new_hub()
        for name in ("../x", "/abs/path", "a/b/c", "org/../x", "fake-org/tiny-bert@../../x", "..", "org--x/y",
                     ".hidden/x", "fake-org/tiny-bert@"):
            p = predict(name, env_for(cache, hub), check=(64, 66), cwd=d)  # usage or missing directory
            assert "Hugging Face" not in p.stderr, (name, p.stderr)
        assert hub.requests == [] and not os.path.exists(cache)
        hub.stop()


def test_local_directory_wins():
    with tempdir() as d:
        cache = os.path.join(d, "cache")
        hub = new_hub()
        os.makedirs(os.path.join(d, "fake-org"))
        os.symlink(MODEL, os.path.join(d, REPO))
        p = predict(REPO, env_for(cache, hub), cwd=d)
        assert p.stdout == reference_predictions()
        assert hub.requests == [] and not os.path.exists(cache)
        hub.stop()


if __name__ == "__main__":
    main(globals())
