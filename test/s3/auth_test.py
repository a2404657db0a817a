"""Credentials and failure exit codes against moto with SigV4 checking on: a wrong secret is exit 77
with the secret never printed (even with -v); the credential chain (env, shared files + AWS_PROFILE,
web identity through moto's STS with the token file re-read on refresh, container credentials,
IMDSv2); missing bucket 66, unreachable endpoint 69, unknown profile 78."""

import http.server
import json
import os
import subprocess
import threading
import urllib.parse

from fault_proxy import FaultProxy
from s3harness import Harness, Moto, free_port, write_tree

h = Harness(__doc__)


class CredentialServer:
    """Stands in for the ECS agent / EC2 metadata service (not S3): serves the moto IAM user's keys,
    and insists on the protocol details (auth token; IMDSv2 session token obtained by PUT first)."""

    def __init__(self, key_id, secret, auth_token=None):
        self.calls = []
        creds = {"AccessKeyId": key_id, "SecretAccessKey": secret, "Token": "", "Expiration": "2099-01-01T00:00:00Z"}
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def reply(self, code, body):
                data = body.encode()
                self.send_response(code)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_PUT(self):
                server.calls.append(("PUT", self.path, dict(self.headers)))
                if self.path == "/latest/api/token" and self.headers.get("X-aws-ec2-metadata-token-ttl-seconds"):
                    return self.reply(200, "imds-session-token")
                self.reply(400, "")

            def do_GET(self):
                server.calls.append(("GET", self.path, dict(self.headers)))
                if self.path.startswith("/latest/"):
                    if self.headers.get("X-aws-ec2-metadata-token") != "imds-session-token":
                        return self.reply(401, "")  # IMDSv2 only
                    if self.path == "/latest/meta-data/iam/security-credentials/":
                        return self.reply(200, "trainer-role\n")
                    if self.path == "/latest/meta-data/iam/security-credentials/trainer-role":
                        return self.reply(200, json.dumps(creds))
                    return self.reply(404, "")
                if auth_token is not None and self.headers.get("Authorization") != auth_token:
                    return self.reply(401, "")
                self.reply(200, json.dumps(creds))

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self):
        self.httpd.shutdown()


with Moto(auth=True) as m:
    m.client().create_bucket(Bucket="bkt")
    src = h.path("src")
    write_tree(src, {"a.txt": b"a", "d/b.txt": b"b"})
    base = h.env(m.url)  # endpoint, region, no credentials

    def push(env, dest="s3://bkt/run", extra=()):
        return h.sync(["push", src, dest, "-v", "--max-attempts", "2"] + list(extra), env)

    def no_secret(err, *secrets):
        return all(s not in err for s in secrets if s)

    # Wrong secret / unknown key: 77, and neither secret is printed.
    wrong = "WRONGsecretValue/abc123+XYZ"
    rc, _, err = push(h.env(m, secret=wrong))
    h.check(rc == 77, "wrong secret exits 77", f"rc={rc} {err[-800:]}")
    h.check("403" in err and no_secret(err, wrong, m.secret), "403 reported, no secret in stderr (-v)", err[-1500:])
    rc, _, err = push(h.env(m, key_id="AKIAUNKNOWNKEY000000", secret=m.secret))
    h.check(rc == 77 and no_secret(err, m.secret), "unknown access key exits 77", f"rc={rc} {err[-500:]}")
    rc, _, err = push(base)
    h.check(rc == 77 and "no AWS credentials" in err, "no credentials anywhere exits 77", f"rc={rc} {err[-500:]}")

    # Other exit codes.
    rc, _, err = push(h.env(m), dest="s3://no-such-bucket/x")
    h.check(rc == 66, "missing bucket exits 66", f"rc={rc} {err[-500:]}")
    rc, _, err = push(h.env(m, AWS_ENDPOINT_URL=f"http://127.0.0.1:{free_port()}"))
    h.check(rc == 69 and "unreachable" in err, "closed port exits 69 after retries", f"rc={rc} {err[-500:]}")
    rc, _, err = push(h.env(m, AWS_PROFILE="nope"))
    h.check(rc == 0, "environment keys win over AWS_PROFILE (SDK order)", f"rc={rc} {err[-500:]}")
    rc, _, err = push(dict(base, AWS_PROFILE="nope"))
    h.check(rc == 78, "unknown AWS_PROFILE exits 78", f"rc={rc} {err[-500:]}")

    # Shared credentials file + AWS_PROFILE.
    os.makedirs(h.path("home/.aws"), exist_ok=True)
    with open(h.path("home/.aws/credentials"), "w") as f:
        f.write(f"[default]\naws_access_key_id = AKIAWRONG\naws_secret_access_key = nope\n\n"
                f"[ci]\naws_access_key_id = {m.key_id}\naws_secret_access_key = {m.secret}\n")
    with open(h.path("home/.aws/config"), "w") as f:
        f.write("[profile ci]\nregion = us-east-1\n")
    rc, _, err = push(dict(base, AWS_PROFILE="ci"))
    h.check(rc == 0 and "shared credentials (profile ci)" in err and no_secret(err, m.secret),
            "profile from ~/.aws/credentials via AWS_PROFILE", f"rc={rc} {err[-800:]}")
    rc, _, err = h.sync(["ls", "s3://bkt/run", "--profile", "ci"], base)
    h.check(rc == 0 and "a.txt" in _, "--profile selects the profile", f"rc={rc} {err[-500:]}")
    os.unlink(h.path("home/.aws/credentials"))
    os.unlink(h.path("home/.aws/config"))

    # Web identity: STS AssumeRoleWithWebIdentity on the same moto, temporary keys then accepted by S3.
    token_file = h.path("web-token")
    with open(token_file, "w") as f:
        f.write("eyJhbGciOiJSUzI1NiJ9.secret-oidc-token.sig")
    wi = dict(base, AWS_ROLE_ARN=m.role_arn, AWS_WEB_IDENTITY_TOKEN_FILE=token_file, AWS_ROLE_SESSION_NAME="ci-run")
    rc, _, err = push(wi, dest="s3://bkt/wi")
    h.check(rc == 0 and "credentials from web identity" in err, "web identity credentials via STS work",
            f"rc={rc} {err[-1500:]}")
    h.check(no_secret(err, "secret-oidc-token"), "web identity token not printed", err[-1500:])

    # The token file is re-read on every refresh (driver forces a refresh per call); proxy records STS.
    proxy = FaultProxy(m.port)
    out = subprocess.run([h.driver, "refresh-token", h.path("rotating-token")],
                                       env=dict(wi, AWS_ENDPOINT_URL=proxy.url,
                                                AWS_WEB_IDENTITY_TOKEN_FILE=h.path("rotating-token")),
                                       capture_output=True, text=True, timeout=60)
    sts = [urllib.parse.parse_qs(r.body.decode()) for r in proxy.requests() if b"AssumeRoleWithWebIdentity" in r.body]
    tokens = [q["WebIdentityToken"][0] for q in sts]
    res = json.loads(out.stdout) if out.returncode == 0 else {}
    h.check(tokens == ["token-A", "token-B"], "refresh re-reads the token file", f"{tokens} {out.stderr}")
    h.check(res.get("first") and res.get("first") != res.get("second") and res.get("has_session"),
            "refresh yields new temporary credentials", str(res))
    proxy.close()

    # Container credentials (ECS / EKS Pod Identity) with an authorization token from a file.
    ecs = CredentialServer(m.key_id, m.secret, auth_token="ecs-auth-token")
    with open(h.path("ecs-token"), "w") as f:
        f.write("ecs-auth-token\n")
    env = dict(base, AWS_CONTAINER_CREDENTIALS_FULL_URI=ecs.url + "/v2/credentials/abc",
               AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE=h.path("ecs-token"))
    rc, _, err = push(env, dest="s3://bkt/ecs")
    h.check(rc == 0 and "container credentials" in err and no_secret(err, m.secret, "ecs-auth-token"),
            "container credentials with auth token", f"rc={rc} {err[-800:]}")
    rc, _, err = push(dict(env, AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE="", AWS_CONTAINER_AUTHORIZATION_TOKEN="bad"),
                      dest="s3://bkt/ecs")
    h.check(rc == 77, "container endpoint refusing the token exits 77", f"rc={rc} {err[-500:]}")
    ecs.close()

    # EC2 instance metadata, IMDSv2 only (session token first).
    imds = CredentialServer(m.key_id, m.secret)
    env = dict(base, AWS_EC2_METADATA_SERVICE_ENDPOINT=imds.url)
    env.pop("AWS_EC2_METADATA_DISABLED")
    rc, _, err = push(env, dest="s3://bkt/imds")
    methods = [(c[0], c[1]) for c in imds.calls]
    h.check(rc == 0 and "EC2 instance metadata" in err, "IMDSv2 credentials work", f"rc={rc} {err[-800:]}")
    h.check(methods[:1] == [("PUT", "/latest/api/token")], "IMDS session token requested first", str(methods))
    imds.close()

h.finish()
