"""hf-predict --serve end to end on the real binary with real HTTP clients (http.client, curl):
every endpoint, the SageMaker / HF inference toolkit request and response shapes, served answers
equal to batch mode's, 32 concurrent clients, the 400/401/404/405/413/429 answers, a slow client
not blocking others, the access log, and SIGTERM with requests in flight (none dropped, exit 0)."""
import functools
import http.client
import json
import math
import os
import signal
import socket
import subprocess
import tempfile
import threading
import time

from hfkit_testlib import DATA, MINILM, main, make_tiny_bert, run, tool
from servelib import PREDICT, Server

WORK = tempfile.TemporaryDirectory(prefix="hfkit-serve-test-")
TEXTS = ["I loved this film, it was wonderful.", "Terrible service, never again.", "ok",
         "The plot was thin but the acting saved it, mostly.", "Stopped working after two days."]


@functools.cache
def tiny():
    out = os.path.join(WORK.name, "tiny")
    make_tiny_bert(out, "--labels", "negative,neutral,positive", "--set", "initializer_range=0.5", seed=1)
    return out


@functools.cache
def minilm():
    """all-MiniLM-L6-v2 with a seeded 2-label head (labels matter: sentiment texts)."""
    import shutil
    import torch
    from transformers import AutoModelForSequenceClassification
    out = os.path.join(WORK.name, "minilm")
    torch.manual_seed(0)
    m = AutoModelForSequenceClassification.from_pretrained(
        MINILM, num_labels=2, id2label={0: "negative", 1: "positive"}, label2id={"negative": 0, "positive": 1})
    m.save_pretrained(out)
    for name in ["vocab.txt", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"]:
        if os.path.exists(os.path.join(MINILM, name)):
            shutil.copyfile(os.path.join(MINILM, name), os.path.join(out, name))
    return out


def sentiment_texts(n):
    with open(os.path.join(DATA, "sentiment", "amazon.jsonl"), encoding="utf-8") as f:
        return [json.loads(l)["text"] for _, l in zip(range(n), f)]


def batch_mode(model, records, *extra):
    p = run([PREDICT, "--model", model, "-q", *extra],
            input="".join(json.dumps(r) + "\n" for r in records), check=0)
    return [json.loads(l) for l in p.stdout.splitlines()]


def test_endpoints_with_http_client_and_curl():
    with Server(tiny()) as s:
        for path in ["/ping", "/health"]:
            status, _, _ = s.request("GET", path)
            assert status == 200, (path, status)
        status, h, body = s.request("GET", "/info")
        info = json.loads(body)
        assert status == 200 and h["content-type"] == "application/json", (status, h)
        assert info["labels"] == ["negative", "neutral", "positive"], info
        assert info["model"] == tiny() and info["device"] == "cpu" and info["max_length"] == 512, info
        assert info["hfkit_version"] and info["task"] == "single_label_classification", info
        status, h, page = s.request("GET", "/")
        assert status == 200 and h["content-type"].startswith("text/html"), (status, h)
        for needle in [b"<textarea", b"<button", b"/predict"]:
            assert needle in page, needle
        # Self-contained: nothing loaded from elsewhere.
        assert b"src=\"http" not in page and b"href=\"http" not in page and b"@import" not in page
        s.predict({"inputs": "warm up the counters"})
        status, h, metrics = s.request("GET", "/metrics")
        m = metrics.decode()
        assert status == 200 and h["content-type"].startswith("text/plain"), (status, h)
        for needle in ['hfkit_requests_total{route="/predict",code="200"} 1', "hfkit_request_duration_seconds_bucket",
                       "hfkit_batch_size_bucket", "hfkit_queue_depth 0", "hfkit_tokens_processed_total",
                       "hfkit_model_load_seconds"]:
            assert needle in m, f"{needle!r} not in /metrics:\n{m}"
        # curl: another client, HTTP/1.1 keep-alive over one connection for two requests.
        p = run(["curl", "-sS", "--fail-with-body", s.url("/ping"), s.url("/invocations"),
                 "-H", "Content-Type: application/json", "-d", '{"inputs": "from curl"}', "-w", "\\n%{http_code}\\n"],
                check=0)
        assert "200" in p.stdout, p.stdout
        p = run(["curl", "-sS", "--fail-with-body", "-X", "POST", s.url("/invocations"),
                 "-H", "Content-Type: application/json", "-d", '{"inputs": "from curl"}'], check=0)
        answer = json.loads(p.stdout)
        assert answer[0]["label"] in info["labels"] and 0 < answer[0]["score"] <= 1, answer
        assert s.stop() == 0


def test_sagemaker_and_hf_shapes():
    with Server(tiny()) as s:
        labels = ["negative", "neutral", "positive"]
        one = s.predict({"inputs": TEXTS[0]}, "/invocations")
        assert isinstance(one, list) and len(one) == 1 and set(one[0]) == {"label", "score"}, one
        many = s.predict({"inputs": TEXTS})
        assert len(many) == len(TEXTS) and all(set(a) == {"label", "score"} for a in many), many
        # Alone or batched with longer texts (padded): the same label, the score to float rounding.
        assert many[0]["label"] == one[0]["label"] and abs(many[0]["score"] - one[0]["score"]) < 1e-5, (many, one)
        top = s.predict({"inputs": TEXTS[0], "parameters": {"top_k": 2}})
        assert len(top) == 2 and top[0]["label"] == one[0]["label"] and top[0]["score"] >= top[1]["score"], top
        all_k = s.predict({"inputs": TEXTS[:2], "parameters": {"top_k": 10}})
        assert len(all_k) == 2 and all(sorted(a["label"] for a in k) == labels for k in all_k), all_k
        assert abs(sum(a["score"] for a in all_k[0]) - 1) < 1e-5, all_k
        # function_to_apply: none gives the logits, sigmoid of which is the sigmoid answer.
        raw = s.predict({"inputs": TEXTS[1], "parameters": {"top_k": 3, "function_to_apply": "none"}})
        sig = s.predict({"inputs": TEXTS[1], "parameters": {"top_k": 3, "function_to_apply": "sigmoid"}})
        soft = s.predict({"inputs": TEXTS[1], "parameters": {"top_k": 3, "function_to_apply": "softmax"}})
        assert [a["label"] for a in raw] == [a["label"] for a in sig] == [a["label"] for a in soft], (raw, sig)
        for r, g in zip(raw, sig):
            assert abs(1 / (1 + math.exp(-r["score"])) - g["score"]) < 1e-5, (r, g)
        assert soft == s.predict({"inputs": TEXTS[1], "parameters": {"top_k": 3}}), soft
        pair = s.predict({"inputs": {"text": "A man eats.", "text_pair": "Someone is eating."}})
        assert len(pair) == 1 and pair[0]["label"] in labels, pair
        pairs = s.predict({"inputs": [{"text": "a", "text_pair": "b"}, {"text": "c", "text_pair": "d"}]})
        assert len(pairs) == 2, pairs
        # JSON Lines, like batch mode: fields pass through, the prediction is added.
        body = "".join(json.dumps({"id": i, "text": t}) + "\n" for i, t in enumerate(TEXTS))
        status, h, out = s.request("POST", "/invocations", body, {"Content-Type": "application/jsonlines"})
        assert status == 200 and h["content-type"] == "application/jsonlines", (status, out)
        records = [json.loads(l) for l in out.decode().splitlines()]
        assert [r["id"] for r in records] == list(range(len(TEXTS))), records
        assert [r["prediction"] for r in records] == [a["label"] for a in many], (records, many)
        assert all(abs(r["score"] - a["score"]) < 1e-5 for r, a in zip(records, many)), (records, many)
        assert s.stop() == 0


def test_served_equals_batch():
    """Same Predictor, same answer: one text per forward pass on both sides is bitwise the same
    computation, so whole records are equal; with dynamic batching labels are equal and scores
    agree to float rounding. Batch mode runs one batch over every thread here, as the server does
    (its default, several batches at once on a share of the threads each, sums in another order)."""
    records = [{"id": i, "text": t, "label": "x"} for i, t in enumerate(sentiment_texts(24))]
    expected = batch_mode(minilm(), records, "--batch-size", "1", "--scores", "--parallel-batches", "1")
    with Server(minilm(), "--max-batch-size", "1", "--scores") as s:
        body = "".join(json.dumps(r) + "\n" for r in records)
        status, _, out = s.request("POST", "/predict", body, {"Content-Type": "application/jsonlines"})
        assert status == 200, out
        assert [json.loads(l) for l in out.decode().splitlines()] == expected
        hf = s.predict({"inputs": [r["text"] for r in records]})
        assert [a["label"] for a in hf] == [e["prediction"] for e in expected]
        assert [a["score"] for a in hf] == [e["score"] for e in expected]
        assert s.stop() == 0
    default_batched = batch_mode(minilm(), records)
    with Server(minilm(), "--max-wait-ms", "20") as s:
        got = [None] * len(records)

        def one(i):
            got[i] = s.predict({"inputs": records[i]["text"]})[0]
        threads = [threading.Thread(target=one, args=(i,)) for i in range(len(records))]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        for g, e in zip(got, default_batched):
            assert g["label"] == e["prediction"] and abs(g["score"] - e["score"]) < 1e-5, (g, e)
        assert s.stop() == 0


def test_32_concurrent_clients_keep_alive():
    with Server(tiny(), "--max-wait-ms", "10") as s:
        reference = {t: s.predict({"inputs": t})[0] for t in TEXTS}
        errors = []

        def client(k):
            c = http.client.HTTPConnection("127.0.0.1", s.port, timeout=60)
            try:
                for i in range(8):
                    t = TEXTS[(k + i) % len(TEXTS)]
                    c.request("POST", "/predict", json.dumps({"inputs": t}), {"Content-Type": "application/json"})
                    r = c.getresponse()
                    body = r.read()
                    if r.status != 200 or json.loads(body)[0]["label"] != reference[t]["label"]:
                        errors.append((r.status, body))
            except Exception as e:  # a dropped connection is an error too
                errors.append(repr(e))
            finally:
                c.close()
        threads = [threading.Thread(target=client, args=(k,)) for k in range(32)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert not errors, errors[:3]
        m = s.request("GET", "/metrics")[2].decode()
        texts = int(next(l.split()[-1] for l in m.splitlines() if l.startswith("hfkit_batch_size_sum")).split(".")[0])
        batches = int(next(l.split()[-1] for l in m.splitlines() if l.startswith("hfkit_batch_size_count")))
        assert texts == 32 * 8 + len(TEXTS), m
        assert batches < texts, f"no request was batched with another: {batches} batches for {texts} texts"
        assert s.stop() == 0


def error_of(response):
    status, h, body = response
    assert h["content-type"] == "application/json", h
    return status, json.loads(body)["error"]


def test_bad_requests_get_clear_answers_and_the_server_keeps_running():
    with Server(tiny(), "--max-body-bytes", "2000") as s:
        cases = [(b"{not json", "malformed JSON"), ({"text": "no inputs"}, "inputs: missing"),
                 ({"inputs": 5}, "inputs: expected a string"), ({"inputs": []}, "inputs: empty list"),
                 ({"inputs": ["a", 3]}, "inputs[1]"), ({"inputs": "a", "parameters": {"top_k": 0}}, "top_k"),
                 ({"inputs": "a", "parameters": {"function_to_apply": "relu"}}, "function_to_apply"),
                 ({"inputs": [{"text": "a", "text_pair": "b"}, "c"]}, "inputs[1]"),
                 (b"[" * 100 + b"]" * 100, "nested deeper")]
        for body, fragment in cases:
            headers = {"Content-Type": "application/json"}
            status, message = error_of(s.request("POST", "/predict", body, headers))
            assert status == 400 and fragment in message, (body, status, message)
        status, message = error_of(s.request("POST", "/predict", '{"id": 1}\n', {"Content-Type": "application/jsonlines"}))
        assert status == 400 and message == 'line 1: field "text": missing', message
        status, message = error_of(s.request("GET", "/nope"))
        assert status == 404 and "/nope" in message, message
        status, h, _ = s.request("GET", "/predict")
        assert status == 405 and h["allow"] == "POST", (status, h)
        status, h, _ = s.request("POST", "/ping", {})
        assert status == 405 and "GET" in h["allow"], (status, h)
        assert s.request("DELETE", "/info")[0] == 405
        status, message = error_of(s.request("POST", "/predict", {"inputs": "x" * 3000}))
        assert status == 413, (status, message)
        assert s.predict({"inputs": "still serving"})
        assert s.stop() == 0


def test_api_key_from_file_and_env_never_logged():
    key = "s3cr3t-key-" + "x" * 20
    key_file = os.path.join(WORK.name, "key")
    with open(key_file, "w") as f:
        f.write(key + "\n")
    for extra, env in [(["--api-key-file", key_file], None), ([], {"HFKIT_API_KEY": key})]:
        with Server(tiny(), *extra, env=env) as s:
            assert s.request("GET", "/ping")[0] == 200  # health checks need no key
            for headers in [{}, {"Authorization": "Bearer wrong"}, {"Authorization": key},
                            {"Authorization": "Bearer " + key[:-1]}]:
                status, h, _ = s.request("POST", "/predict", {"inputs": "a"}, headers)
                assert status == 401 and h.get("www-authenticate") == "Bearer", (headers, status)
            assert s.request("GET", "/metrics")[0] == 401
            ok = s.predict({"inputs": "a"}, headers={"Authorization": "Bearer " + key})
            assert ok[0]["label"]
            log = s.stderr()
            assert s.stop() == 0
            assert key not in log and key[:-1] not in log, "the API key was logged"


def test_full_queue_answers_429_with_retry_after():
    # One text may wait; the first request sits in the queue for company for a second.
    with Server(tiny(), "--max-queue", "2", "--max-wait-ms", "1500") as s:
        first = threading.Thread(target=lambda: s.predict({"inputs": ["a", "b"]}))
        first.start()
        time.sleep(0.3)
        status, h, body = s.request("POST", "/predict", {"inputs": "c"})
        assert status == 429 and h["retry-after"] == "1", (status, h, body)
        first.join()
        status, message = error_of(s.request("POST", "/predict", {"inputs": ["a", "b", "c"]}))
        assert status == 413 and "at most 2" in message, message
        assert s.predict({"inputs": "c"})
        assert s.stop() == 0


def test_slow_client_does_not_block_others():
    with Server(tiny(), "--http-read-timeout", "2") as s:
        slow = socket.create_connection(("127.0.0.1", s.port))
        slow.sendall(b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n")  # headers never end
        t0 = time.time()
        for _ in range(5):
            s.predict({"inputs": "quick"})
        assert time.time() - t0 < 1.5, f"others waited {time.time() - t0:.1f} s behind a slow client"
        slow.settimeout(10)
        try:
            slow.recv(1000)  # the server ends the connection after its read timeout
        except ConnectionResetError:
            pass
        except socket.timeout:
            raise AssertionError("a silent client held its connection past the read timeout")
        slow.close()
        assert s.stop() == 0


def access_log(server, fragment, timeout=10):
    """The server's stderr once a line holding `fragment` is there: the access line of a request is
    written just after its response is sent, so the client may see the answer first."""
    deadline = time.time() + timeout
    log = server.stderr()
    while fragment not in log and time.time() < deadline:
        time.sleep(0.05)
        log = server.stderr()
    return log


def test_access_log_lines_text_and_json():
    with Server(tiny()) as s:
        s.request("GET", "/nope")
        s.predict({"inputs": "a"})
        log = access_log(s, "path=/predict")
        assert s.stop() == 0
    lines = [l for l in log.splitlines() if "access " in l]
    assert any("method=GET path=/nope status=404" in l for l in lines), log
    assert any("method=POST path=/predict status=200" in l and "ms=" in l for l in lines), log
    with Server(tiny(), "--log-format", "json") as s:
        s.predict({"inputs": "a"})
        log = access_log(s, "path=/predict")
        assert s.stop() == 0
    records = [json.loads(l) for l in log.splitlines() if l.strip()]
    assert any(r["message"].startswith("access method=POST path=/predict status=200") for r in records), records


def test_sigterm_answers_requests_in_flight_and_exits_0():
    with Server(tiny(), "--max-wait-ms", "800") as s:
        results = []

        def client(i):
            try:
                results.append(s.request("POST", "/predict", {"inputs": f"text {i}"})[0])
            except Exception as e:
                results.append(repr(e))
        threads = [threading.Thread(target=client, args=(i,)) for i in range(16)]
        for t in threads:
            t.start()
        time.sleep(0.3)  # all 16 are waiting in the batcher for company
        t0 = time.time()
        s.proc.send_signal(signal.SIGTERM)
        for t in threads:
            t.join()
        rc = s.proc.wait(timeout=20)
        assert results == [200] * 16, results
        assert rc == 0 and time.time() - t0 < 10, (rc, time.time() - t0, s.stderr())
        assert "draining" in s.stderr()
        try:
            socket.create_connection(("127.0.0.1", s.port), timeout=2).close()
            raise AssertionError("still accepting after SIGTERM")
        except ConnectionRefusedError:
            pass


def test_port_from_environment_and_bad_flags():
    p = run([PREDICT, "--model", tiny(), "--serve", "--port", "70000"], check=64)
    assert "--port" in p.stderr, p.stderr
    p = run([PREDICT, "--model", tiny(), "--serve"], env={"SAGEMAKER_BIND_TO_PORT": "nope"}, check=64)
    assert "SAGEMAKER_BIND_TO_PORT" in p.stderr, p.stderr
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    proc = subprocess.Popen([PREDICT, "--model", tiny(), "--serve"], env={**os.environ, "SAGEMAKER_BIND_TO_PORT": str(port)},
                            stderr=subprocess.PIPE, text=True)
    try:
        line = ""
        while "listening on" not in line:
            line = proc.stderr.readline()
            assert line, "server exited"
        assert f"127.0.0.1:{port}" in line, line
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=20) == 0


if __name__ == "__main__":
    main(globals())
