"""A fake Hugging Face Hub on loopback: just enough of the HTTP API for file downloads.

huggingface_hub fetches a file in two steps: ``HEAD /{repo}/resolve/{revision}/{file}``
for metadata (``X-Repo-Commit``, ``ETag`` -- the sha256 for LFS files --,
``Content-Length``) and ``GET`` of the same URL for the bytes, with
``Range: bytes=N-`` to resume. This stub answers both like the Hub does, and
can misbehave on purpose per file (drop the connection mid-body, answer 500,
send corrupted bytes) so tests can drive resume and checksum paths.
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class Request:
    method: str
    path: str
    range: str | None


@dataclass
class FakeHub:
    files: dict[tuple[str, str], bytes] = field(default_factory=dict)
    """(repo_id, filename) -> bytes; every revision serves them."""
    plans: dict[str, list[str]] = field(default_factory=dict)
    """filename -> actions for its next GETs: ``drop:N`` (send N bytes, hang up), ``500``,
    ``corrupt`` (flip one byte), ``ok``. Consumed one per GET; empty list means ok."""
    lfs: bool = True
    """LFS files carry their sha256 as ETag (as the Hub does); else a git-blob-like sha1."""
    commit: str = "0123456789abcdef0123456789abcdef01234567"
    requests: list[Request] = field(default_factory=list)
    bytes_sent: dict[str, int] = field(default_factory=dict)
    server: ThreadingHTTPServer | None = None

    def add(self, repo_id: str, filename: str, data: bytes) -> None:
        self.files[(repo_id, filename)] = data

    @property
    def url(self) -> str:
        assert self.server is not None
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def gets(self, filename: str) -> list[Request]:
        return [r for r in self.requests if r.method == "GET" and r.path.endswith("/" + filename)]

    def etag(self, data: bytes) -> str:
        if self.lfs:
            return hashlib.sha256(data).hexdigest()
        return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()

    def __enter__(self) -> FakeHub:
        hub = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                pass

            def do_HEAD(self) -> None:
                self._serve(body=False)

            def do_GET(self) -> None:
                self._serve(body=True)

            def _serve(self, body: bool) -> None:
                hub.requests.append(Request(self.command, self.path, self.headers.get("Range")))
                match = re.fullmatch(r"/(.+?/.+?)/resolve/([^/]+)/(.+)", self.path.split("?")[0])
                if not match:
                    return self._error(404, "RepoNotFound", "not a resolve URL")
                repo_id, _revision, filename = match.groups()
                if not any(repo == repo_id for repo, _ in hub.files):
                    return self._error(404, "RepoNotFound", f"repository {repo_id} not found")
                data = hub.files.get((repo_id, filename))
                if data is None:
                    return self._error(404, "EntryNotFound", f"{filename} not found")
                action = "ok"
                if body and hub.plans.get(filename):
                    action = hub.plans[filename].pop(0)
                if action == "500":
                    return self._error(500, None, "internal error")
                headers = {
                    "X-Repo-Commit": hub.commit,
                    "ETag": f'"{hub.etag(data)}"',
                    "Accept-Ranges": "bytes",
                    "Content-Type": "application/octet-stream",
                }
                start = 0
                wanted = self.headers.get("Range")
                if body and wanted:
                    found = re.fullmatch(r"bytes=(\d+)-", wanted.strip())
                    start = int(found.group(1)) if found else 0
                    if start >= len(data):
                        return self._error(416, None, "range not satisfiable")
                payload = data[start:]
                if action == "corrupt":
                    payload = bytes([payload[0] ^ 0xFF]) + payload[1:]
                self.send_response(206 if start else 200)
                for key, value in headers.items():
                    self.send_header(key, value)
                if start:
                    self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                if not body:
                    return None
                if action.startswith("drop:"):
                    payload = payload[: int(action.split(":", 1)[1])]
                    self.close_connection = True
                self.wfile.write(payload)
                self.wfile.flush()
                hub.bytes_sent[filename] = hub.bytes_sent.get(filename, 0) + len(payload)
                return None

            def _error(self, status: int, code: str | None, message: str) -> None:
                payload = json.dumps({"error": message}).encode()
                self.send_response(status)
                if code:
                    self.send_header("X-Error-Code", code)
                    self.send_header("X-Error-Message", message)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(payload)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        ).start()
        return self

    def __exit__(self, *exc: object) -> None:
        assert self.server is not None
        self.server.shutdown()
        self.server.server_close()
