"""A real `mlflow server` for tests and benchmarks: sqlite backend store, local artifact root served
through the server (--serve-artifacts, so runs get mlflow-artifacts: URIs), on a free loopback port.

    with MlflowServer(workdir) as server:   # server.uri = "http://127.0.0.1:PORT"
        ...
"""
import os
import socket
import subprocess
import sys
import time
import urllib.request


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class MlflowServer:
    def __init__(self, workdir, port=None):
        self.workdir = workdir
        self.port = port or free_port()
        self.uri = f"http://127.0.0.1:{self.port}"
        self.proc = None

    def start(self, timeout=300):
        os.makedirs(self.workdir, exist_ok=True)
        mlflow = os.path.join(os.path.dirname(sys.executable), "mlflow")
        self.log = open(os.path.join(self.workdir, "server.log"), "ab")
        self.proc = subprocess.Popen(
            [mlflow, "server", "--host", "127.0.0.1", "--port", str(self.port), "--workers", "1",
             "--backend-store-uri", "sqlite:///" + os.path.join(self.workdir, "mlflow.db"),
             "--artifacts-destination", os.path.join(self.workdir, "artifacts"), "--serve-artifacts"],
            stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True)
        t0 = time.time()
        while time.time() - t0 < timeout:
            if self.proc.poll() is not None:
                raise RuntimeError(f"mlflow server exited {self.proc.returncode}; see {self.workdir}/server.log")
            try:
                with urllib.request.urlopen(self.uri + "/health", timeout=2) as r:
                    if r.status == 200:
                        return self
            except OSError:
                time.sleep(0.5)
        raise RuntimeError("mlflow server did not start")

    def stop(self):
        """Kills the server and its workers (its own process group)."""
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, 9)
            self.proc.wait()
        if self.proc:
            self.log.close()
        self.proc = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
