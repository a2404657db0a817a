"""Shared pieces of the S3 tests: a real moto server on a free loopback port (optionally with IAM
signature checking on), the hf-sync binary and the AWS CLI as second client, file-tree helpers, and
a small check() collector so one run reports every failed expectation."""

import argparse
import hashlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

import boto3
from botocore.config import Config

HERE = os.path.dirname(os.path.abspath(__file__))
ADMIN_POLICY = json.dumps({"Version": "2012-10-17",
                           "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]})


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Moto:
    """moto in server mode, started and stopped by the test."""

    def __init__(self, auth=False):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = tempfile.NamedTemporaryFile(prefix="moto-", suffix=".log", delete=False)
        self.proc = subprocess.Popen([sys.executable, os.path.join(HERE, "moto_server.py"), "-H", "127.0.0.1",
                                      "-p", str(self.port)],
                                     stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.time() + 30
        while True:
            try:
                urllib.request.urlopen(self.url + "/moto-api/", timeout=1).read()
                break
            except Exception:
                if self.proc.poll() is not None or time.time() > deadline:
                    raise RuntimeError("moto did not start: " + open(self.log.name).read()[-2000:])
                time.sleep(0.1)
        # Root-like keys for set-up and cross-checks (moto's default account).
        self.key_id, self.secret = "AKIAIOSFODNN7EXAMPLE", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
        if auth:
            iam = self.client("iam")
            iam.create_user(UserName="tester")
            iam.put_user_policy(UserName="tester", PolicyName="all", PolicyDocument=ADMIN_POLICY)
            k = iam.create_access_key(UserName="tester")["AccessKey"]
            self.key_id, self.secret = k["AccessKeyId"], k["SecretAccessKey"]
            trust = json.dumps({"Version": "2012-10-17", "Statement": [
                {"Effect": "Allow", "Principal": {"Federated": "arn:aws:iam::123456789012:oidc-provider/ci"},
                 "Action": "sts:AssumeRoleWithWebIdentity"}]})
            role = iam.create_role(RoleName="trainer", AssumeRolePolicyDocument=trust)["Role"]
            iam.put_role_policy(RoleName="trainer", PolicyName="all", PolicyDocument=ADMIN_POLICY)
            self.role_arn = role["Arn"]
            # From here on every request must carry a valid SigV4 signature (checked with botocore).
            self.set_auth(True)

    def set_auth(self, on):
        """Turns moto's IAM signature checking on (every request) or off."""
        req = urllib.request.Request(self.url + "/moto-api/reset-auth", data=b"0" if on else b"inf", method="POST",
                                     headers={"Content-Type": "text/plain"})
        urllib.request.urlopen(req).read()

    def client(self, service="s3", endpoint=None):
        return boto3.client(service, endpoint_url=endpoint or self.url, region_name="us-east-1",
                            aws_access_key_id=self.key_id, aws_secret_access_key=self.secret,
                            config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 1}))

    def stop(self):
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
        self.log.close()
        os.unlink(self.log.name)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()


class Harness:
    def __init__(self, description):
        p = argparse.ArgumentParser(description=description)
        p.add_argument("--bin", required=True, help="hf-sync binary")
        p.add_argument("--driver", help="storage_driver binary")
        self.args = p.parse_args()
        self.bin = os.path.abspath(self.args.bin)
        self.driver = os.path.abspath(self.args.driver) if self.args.driver else None
        self.tmp = tempfile.mkdtemp(prefix="hfkit-s3-")
        self.failures = []
        self.venv_bin = os.path.dirname(sys.executable)

    def path(self, *parts):
        return os.path.join(self.tmp, *parts)

    def check(self, cond, what, detail=""):
        print(("ok   " if cond else "FAIL ") + what + ("" if cond else f"\n     {detail}"[:3000]), flush=True)
        if not cond:
            self.failures.append(what)
        return cond

    def env(self, moto_or_url, key_id=None, secret=None, **extra):
        url = moto_or_url if isinstance(moto_or_url, str) else moto_or_url.url
        e = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
        e.update({"AWS_ENDPOINT_URL": url, "AWS_REGION": "us-east-1", "AWS_EC2_METADATA_DISABLED": "true",
                  "XDG_CACHE_HOME": self.path("cache"), "HOME": self.path("home")})
        if not isinstance(moto_or_url, str):
            e["AWS_ACCESS_KEY_ID"] = key_id or moto_or_url.key_id
            e["AWS_SECRET_ACCESS_KEY"] = secret or moto_or_url.secret
        elif key_id:
            e["AWS_ACCESS_KEY_ID"], e["AWS_SECRET_ACCESS_KEY"] = key_id, secret
        e.update({k: v for k, v in extra.items() if v is not None})
        for k in [k for k, v in extra.items() if v is None]:
            e.pop(k, None)
        return e

    def sync(self, args, env, timeout=120, input=None):
        """Runs hf-sync; returns (rc, stdout, stderr)."""
        p = subprocess.run([self.bin] + args, env=env, capture_output=True, text=True, timeout=timeout, input=input)
        return p.returncode, p.stdout, p.stderr

    def sync_json(self, args, env, **kw):
        rc, out, err = self.sync(args + ["--json"], env, **kw)
        try:
            return rc, json.loads(out.strip().splitlines()[-1]) if out.strip() else {}, err
        except ValueError:
            return rc, {}, err + "\n(stdout: " + out + ")"

    def aws(self, args, env, **extra_env):
        e = dict(env)
        e.update(extra_env)
        p = subprocess.run([os.path.join(self.venv_bin, "aws")] + args, env=e, capture_output=True, text=True,
                           timeout=180)
        return p.returncode, p.stdout, p.stderr

    def finish(self):
        shutil.rmtree(self.tmp, ignore_errors=True)
        if self.failures:
            print(f"{len(self.failures)} check(s) failed: " + "; ".join(self.failures))
            sys.exit(1)
        print("all checks passed")


def write_tree(root, files):
    for rel, data in files.items():
        p = os.path.join(root, rel)
        os.makedirs(os.path.dirname(p), exist_ok=True)
        with open(p, "wb") as f:
            f.write(data)


def read_tree(root, skip_hidden_temps=False):
    out = {}
    for dirpath, _, names in os.walk(root):
        for n in names:
            p = os.path.join(dirpath, n)
            if os.path.islink(p):
                continue
            with open(p, "rb") as f:
                out[os.path.relpath(p, root)] = f.read()
    return out


def temp_files(root):
    return [os.path.join(d, n) for d, _, names in os.walk(root) for n in names if ".hfsync-" in n]


def digest(tree):
    return {k: hashlib.sha256(v).hexdigest()[:12] + f"/{len(v)}" for k, v in sorted(tree.items())}


def random_bytes(n, seed):
    import random
    r = random.Random(seed)
    return r.randbytes(n)
