"""A local stand-in for the Hugging Face Hub, serving the URLs and headers huggingface_hub and hfkit
use (huggingface_hub's file_download.py / hf_api.py):

  GET  /api/models/{repo}/revision/{rev}       {"id", "sha", "siblings": [{"rfilename"}]}
  GET  /api/models/{repo}/tree/{rev}           [{"type": "file", "path", "size", "oid", "lfs"?}]
  HEAD/GET /{repo}/resolve/{rev}/{file}        small files: 200, ETag = git blob id, Content-Length;
                                               LFS files (*.safetensors): 302 to the "CDN" with
                                               X-Linked-Etag = sha256, X-Linked-Size
  HEAD/GET /cdn/{sha256}                       the bytes, Range supported (206)

Every resolve/ answer carries X-Repo-Commit; errors carry X-Error-Code (RepoNotFound,
RevisionNotFound, EntryNotFound, GatedRepo) with 401/403/404 as the Hub answers. The CDN is the same
server reached as "localhost" while the endpoint is "127.0.0.1": another host, so clients must not
send the token there. Faults: `drop` (sha256s whose CDN GET sends half the body then closes the
connection) and `slow` (seconds between 1 KiB chunks of CDN bodies). Every request is recorded.
"""
import hashlib
import json
import threading
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

TOKEN = "hf_fakehub_secret_token_0123456789"


def git_blob_id(data):
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


class Repo:
    def __init__(self, commits, refs, private=False, gated=False):
        self.commits = commits  # {sha: {filename: bytes}}
        self.refs = refs        # {"main": sha, ...}
        self.private = private
        self.gated = gated

    def commit(self, rev):
        if rev in self.commits:
            return rev
        return self.refs.get(rev)


class FakeHub:
    def __init__(self):
        self.repos = {}
        self.requests = []  # (method, path, headers)
        self.drop = set()
        self.slow = 0.0
        self.blobs = {}
        hub = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_HEAD(self):
                hub._handle(self, body=False)

            def do_GET(self):
                hub._handle(self, body=True)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def add(self, repo_id, repo):
        self.repos[repo_id] = repo
        for files in repo.commits.values():
            for data in files.values():
                self.blobs[hashlib.sha256(data).hexdigest()] = data

    def stop(self):
        self.server.shutdown()
        self.server.server_close()

    # ---- answers ----

    def _send(self, h, status, headers=(), data=b"", body=True):
        h.send_response(status)
        sent_length = False
        for k, v in headers:
            h.send_header(k, v)
            sent_length |= k.lower() == "content-length"
        if not sent_length:
            h.send_header("Content-Length", str(len(data)))
        h.end_headers()
        if body and data:
            h.wfile.write(data)

    def _error(self, h, status, code, body, commit=None):
        headers = [("X-Error-Code", code)] + ([("X-Repo-Commit", commit)] if commit else [])
        self._send(h, status, headers, json.dumps({"error": code}).encode(), body)

    def _authorized(self, h, repo, body):
        """None when the request may see `repo`, else after sending the Hub's refusal."""
        auth = h.headers.get("Authorization")
        good = auth == f"Bearer {TOKEN}"
        if repo is None or (repo.private and not good):
            if good:
                self._error(h, 404, "RepoNotFound", body)
            else:
                self._error(h, 401, "RepoNotFound", body)
            return False
        if repo.gated:
            if auth is None:
                self._error(h, 401, "GatedRepo", body)
            else:
                self._error(h, 403, "GatedRepo", body)
            return False
        return True

    def _lookup(self, h, repo_id, rev, body):
        """(repo, commit) the request may see, or (None, None) after sending the refusal."""
        repo = self.repos.get(repo_id)
        if not self._authorized(h, repo, body):
            return None, None
        commit = repo.commit(urllib.parse.unquote(rev))
        if commit is None:
            self._error(h, 404, "RevisionNotFound", body)
        return repo, commit

    def _handle(self, h, body):
        parsed = urllib.parse.urlsplit(h.path)
        path = parsed.path
        self.requests.append((h.command, h.path, dict(h.headers)))
        if path.startswith("/cdn/"):
            return self._cdn(h, path[len("/cdn/"):], body)
        if path.startswith("/api/models/"):
            rest = path[len("/api/models/"):]
            for kind in ("/revision/", "/tree/"):
                if kind in rest:
                    repo_id, rev = rest.split(kind, 1)
                    repo_id = urllib.parse.unquote(repo_id)
                    repo, commit = self._lookup(h, repo_id, rev, body)
                    if commit is None:
                        return
                    files = repo.commits[commit]
                    if kind == "/revision/":
                        info = {"id": repo_id, "sha": commit, "private": repo.private,
                                "siblings": [{"rfilename": f} for f in sorted(files)]}
                    else:
                        info = [self._tree_entry(f, d) for f, d in sorted(files.items())]
                    data = json.dumps(info).encode()
                    return self._send(h, 200, [("Content-Type", "application/json")], data, body)
        if "/resolve/" in path:
            repo_id, rest = path.lstrip("/").split("/resolve/", 1)
            rev, _, filename = rest.partition("/")
            filename = urllib.parse.unquote(filename)
            repo, commit = self._lookup(h, repo_id, rev, body)
            if commit is None:
                return
            data = repo.commits[commit].get(filename)
            if data is None:
                return self._error(h, 404, "EntryNotFound", body, commit)
            headers = [("X-Repo-Commit", commit), ("Accept-Ranges", "bytes")]
            if filename.endswith(".safetensors"):
                sha = hashlib.sha256(data).hexdigest()
                return self._send(h, 302, headers + [
                    ("ETag", f'"{git_blob_id(data)}"'), ("X-Linked-Etag", f'"{sha}"'),
                    ("X-Linked-Size", str(len(data))), ("Location", f"http://localhost:{self.port}/cdn/{sha}")],
                    b"", body)
            return self._send(h, 200, headers + [("ETag", f'"{git_blob_id(data)}"')], data, body)
        self._send(h, 404, [], b"not found", body)

    def _tree_entry(self, name, data):
        e = {"type": "file", "path": name, "size": len(data), "oid": git_blob_id(data)}
        if name.endswith(".safetensors"):
            e["lfs"] = {"oid": hashlib.sha256(data).hexdigest(), "size": len(data), "pointerSize": 134}
        return e

    def _cdn(self, h, sha, body):
        data = self.blobs.get(sha)
        if data is None:
            return self._send(h, 404, [], b"no such blob", body)
        start = 0
        rng = h.headers.get("Range")
        if rng and rng.startswith("bytes=") and rng.endswith("-"):
            start = int(rng[len("bytes="):-1])
        if start >= len(data) and start > 0:
            return self._send(h, 416, [("Content-Range", f"bytes */{len(data)}")], b"", body)
        status = 206 if start > 0 else 200
        headers = [("Content-Length", str(len(data) - start)), ("ETag", f'"{sha}"')]
        if status == 206:
            headers.append(("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}"))
        h.send_response(status)
        for k, v in headers:
            h.send_header(k, v)
        h.end_headers()
        if not body:
            return
        part = data[start:]
        if sha in self.drop:
            h.wfile.write(part[: len(part) // 2])
            h.wfile.flush()
            h.close_connection = True
            return
        chunk = 1024 if self.slow else len(part) or 1
        for i in range(0, len(part), chunk):
            h.wfile.write(part[i:i + chunk])
            h.wfile.flush()
            if self.slow:
                threading.Event().wait(self.slow)
