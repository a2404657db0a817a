"""hf-registry publish/resolve and hf-predict --model REGISTRY/NAME[@VERSION], on a local registry
and on S3 (moto): the version holds the model and a complete manifest, `latest` names it, versions
are immutable, bad names and missing versions are clear errors, a version without its manifest
(a publish that died) is invisible, and predictions through a reference equal those of the dir."""
import json
import os
import sys

from hfkit_testlib import SRC, AMAZON, expect_error, main, make_tiny_bert, run, tempdir, tokenize_amazon, tool

sys.path.insert(0, os.path.join(SRC, "test", "s3"))

REGISTRY = tool("hf-registry")
PREDICT = tool("hf-predict")
MANIFEST_KEYS = {"name", "version", "created", "hfkit_version", "git_commit", "parent_model", "training_config",
                 "data_sha256", "tokenizer_sha256", "dataset", "eval_metrics", "files"}


def trained_like(work):
    """A tiny model dir with what hf-train leaves beside it, a dataset and hf-eval metrics."""
    model = os.path.join(work, "run")
    make_tiny_bert(model, "--labels", "negative,positive")
    with open(os.path.join(model, "hfkit_config.yaml"), "w") as f:
        f.write("model: \"/models/base\"\nlearning_rate: 0.001\n")
    os.makedirs(os.path.join(model, "checkpoint-5"))
    with open(os.path.join(model, "checkpoint-5", "optimizer.pt"), "w") as f:
        f.write("not published")
    data = os.path.join(work, "data")
    tokenize_amazon(tool("hf-preprocess"), model, data)
    metrics = os.path.join(work, "eval.json")
    with open(metrics, "w") as f:
        json.dump({"accuracy": 0.75, "n": 100}, f)
    return model, data, metrics


def predictions(model, env=None):
    return run([PREDICT, "--model", model, "--input", AMAZON, "-q"], env=env, check=0).stdout


def check_registry(reg, model, data, metrics, env=None, local=True):
    pub = [REGISTRY, "publish", "--registry", reg, "--name", "sentiment", "--model", model, "--dataset", data,
           "--metrics", metrics]
    p = run(pub + ["--version", "v1"], env=env, check=0)
    assert p.stdout == f"{reg}/sentiment@v1\n", p.stdout
    p = run(pub + ["--version", "v2"], env=env, check=0)
    assert p.stdout == f"{reg}/sentiment@v2\n", p.stdout
    # Versions are immutable.
    p = run(pub + ["--version", "v1"], env=env, check=73)
    assert "already published" in p.stderr, p.stderr
    for bad in ["../x", "latest", "a b", ""]:
        run(pub + ["--version", bad], env=env, check=64)
    resolved = run([REGISTRY, "resolve", f"{reg}/sentiment"], env=env, check=0).stdout.strip()
    assert resolved.endswith("/sentiment/v2"), resolved
    v1 = run([REGISTRY, "resolve", f"{reg}/sentiment@v1"], env=env, check=0).stdout.strip()
    assert v1.endswith("/sentiment/v1"), v1
    assert run([REGISTRY, "resolve", f"{reg}/sentiment@latest"], env=env, check=0).stdout.strip() == resolved
    if local:
        assert resolved == os.path.join(reg, "sentiment", "v2")
    with open(os.path.join(resolved, "manifest.json")) as f:
        m = json.load(f)
    assert MANIFEST_KEYS <= set(m), MANIFEST_KEYS - set(m)
    with open(os.path.join(data, "dataset.json")) as f:
        dataset = json.load(f)
    assert m["name"] == "sentiment" and m["version"] == "v2" and m["eval_metrics"] == {"accuracy": 0.75, "n": 100}
    assert m["data_sha256"] == dataset["source_sha256"] and m["tokenizer_sha256"] == dataset["tokenizer_sha256"], m
    assert m["parent_model"] == "/models/base" and "learning_rate" in m["training_config"], m
    assert m["hfkit_version"] and m["git_commit"] and m["created"].endswith("Z"), m
    paths = [f["path"] for f in m["files"]]
    assert "model.safetensors" in paths and "config.json" in paths and "hfkit_config.yaml" in paths, paths
    assert not any(p.startswith("checkpoint-") for p in paths), paths
    assert not os.path.exists(os.path.join(resolved, "checkpoint-5")), "checkpoints were published"
    assert all(len(f["sha256"]) == 64 for f in m["files"]), m["files"]
    # Served and batch-predicted through the reference: the same as from the directory.
    assert predictions(f"{reg}/sentiment@v1", env) == predictions(model)
    p = run([REGISTRY, "resolve", f"{reg}/sentiment@v9"], env=env, check=66)
    errors = [l for l in p.stderr.splitlines() if ": error: " in l]
    assert len(errors) == 1 and "sentiment@v9" in errors[0] and "no such published version" in errors[0], p.stderr
    p = run([REGISTRY, "resolve", f"{reg}/nothing@latest"], env=env, check=66)
    assert "no published version" in p.stderr, p.stderr


def test_local_registry():
    with tempdir() as work:
        model, data, metrics = trained_like(work)
        reg = os.path.join(work, "registry")
        check_registry(reg, model, data, metrics)
        with open(os.path.join(reg, "sentiment", "latest")) as f:
            assert f.read() == "v2\n"
        # A version whose publish died before its manifest does not exist for readers.
        os.makedirs(os.path.join(reg, "sentiment", "v3"))
        expect_error([REGISTRY, "resolve", f"{reg}/sentiment@v3"], 66, "no such published version")
        # file:// is the same registry.
        p = run([REGISTRY, "resolve", f"file://{reg}/sentiment@v1"], check=0)
        assert p.stdout.strip().endswith("sentiment/v1"), p.stdout
        expect_error([REGISTRY, "publish", "--registry", reg, "--name", "x", "--model", data], 66,
                     "not a model directory")


def test_s3_registry_on_moto():
    from s3harness import Moto
    with tempdir() as work, Moto() as moto:
        moto.client().create_bucket(Bucket="models")
        model, data, metrics = trained_like(work)
        env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
        env.update({"AWS_ENDPOINT_URL": moto.url, "AWS_REGION": "us-east-1", "AWS_ACCESS_KEY_ID": moto.key_id,
                    "AWS_SECRET_ACCESS_KEY": moto.secret, "AWS_EC2_METADATA_DISABLED": "true",
                    "HFKIT_MODEL_CACHE": os.path.join(work, "cache")})
        check_registry("s3://models/registry", model, data, metrics, env=env, local=False)
        keys = [o["Key"] for o in moto.client().list_objects_v2(Bucket="models")["Contents"]]
        assert "registry/sentiment/latest" in keys and "registry/sentiment/v1/manifest.json" in keys, keys
        # Remote versions are pulled into the model cache.
        cached = run([REGISTRY, "resolve", "s3://models/registry/sentiment@v1"], env=env, check=0).stdout.strip()
        assert cached.startswith(os.path.join(work, "cache")), cached


if __name__ == "__main__":
    main(globals())
