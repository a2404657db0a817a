"""A running `hf-predict --serve` for tests: started on a free port (--port 0, read back from its
log), waited on until /ping answers 200, stopped with SIGTERM. Real HTTP through http.client.
`cmd` starts something else that ends up serving, e.g. scripts/sagemaker-serve.sh."""
import http.client
import json
import os
import re
import signal
import subprocess
import tempfile
import time

from hfkit_testlib import tool

PREDICT = tool("hf-predict")


class Server:
    def __init__(self, model, *extra, env=None, ready_timeout=120, cmd=None):
        self.log = tempfile.NamedTemporaryFile(prefix="hfkit-serve-", suffix=".log", delete=False)
        full_env = dict(os.environ)
        full_env.pop("HFKIT_API_KEY", None)
        full_env.update(env or {})
        cmd = cmd or [PREDICT, "--model", model, "--serve", "--port", "0", *extra]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=self.log, env=full_env)
        t0 = time.time()
        self.port = self.host = None
        while self.port is None:
            m = re.search(r"listening on http://([^:\s]+):(\d+)", self.stderr())
            if m:
                # Requests go to 127.0.0.1 either way: a server on 0.0.0.0 answers there too.
                self.host, self.port = m.group(1), int(m.group(2))
            elif self.proc.poll() is not None:
                raise AssertionError(f"server exited {self.proc.returncode}: {self.stderr()}")
            elif time.time() - t0 > ready_timeout:
                raise AssertionError("server did not listen: " + self.stderr())
            else:
                time.sleep(0.02)
        while self.request("GET", "/ping")[0] != 200:
            if self.proc.poll() is not None or time.time() - t0 > ready_timeout:
                raise AssertionError(f"server not ready: {self.stderr()}")
            time.sleep(0.05)

    def stderr(self):
        with open(self.log.name, encoding="utf-8", errors="replace") as f:
            return f.read()

    def url(self, path="/"):
        return f"http://127.0.0.1:{self.port}{path}"

    def request(self, method, path, body=None, headers=None, timeout=60):
        """One request on a fresh connection: (status, headers dict, body bytes)."""
        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            if isinstance(body, (dict, list)):
                body = json.dumps(body)
                headers = {"Content-Type": "application/json", **(headers or {})}
            c.request(method, path, body=body, headers=headers or {})
            r = c.getresponse()
            return r.status, {k.lower(): v for k, v in r.getheaders()}, r.read()
        finally:
            c.close()

    def predict(self, payload, path="/predict", headers=None):
        status, _, body = self.request("POST", path, payload, headers)
        assert status == 200, f"{path}: {status} {body!r}"
        return json.loads(body)

    def stop(self, timeout=30):
        """SIGTERM, then the exit code (the server must be gone within `timeout` seconds)."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=timeout)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait()
            os.unlink(self.log.name)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        if os.path.exists(self.log.name):
            os.unlink(self.log.name)
