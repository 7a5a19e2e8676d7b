"""A Hugging Face hub on loopback, in the hub's URL layout, for the hf:// tests.

What ``huggingface_hub`` asks of the real hub, answered the same way:

- ``HEAD/GET /{owner}/{repo}/resolve/{revision}/{path}``: a 302 to the file's
  LFS object on a "CDN" (another host name, ``localhost``, so the client does
  not follow it for the metadata and drops its token there, as with the real
  CDN), carrying ``X-Repo-Commit``, ``X-Linked-Etag`` (the SHA-256) and
  ``X-Linked-Size``; 404 with ``X-Error-Code: EntryNotFound`` or
  ``RepoNotFound`` otherwise;
- ``GET /lfs/{sha256}`` on the CDN: the bytes, honouring ``Range`` (206);
- ``POST /api/models/{owner}/{repo}/paths-info/{revision}``: each path's size,
  git oid and ``lfs.oid``.

Faults on demand: ``corrupt`` serves other bytes than the SHA-256 says,
``cut_once`` closes the first transfer of each object halfway (the client
resumes with a Range), ``git_etag_only`` leaves out ``X-Linked-Etag``.
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

COMMIT = "0123456789abcdef0123456789abcdef01234567"
RESOLVE = re.compile(r"^/(?P<repo>[^/]+/[^/]+)/resolve/(?P<revision>[^/]+)/(?P<path>.+)$")
PATHS_INFO = re.compile(r"^/api/models/(?P<repo>[^/]+/[^/]+)/paths-info/(?P<revision>[^/]+)$")


@dataclass
class HubFile:
    data: bytes

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.data).hexdigest()

    @property
    def git_oid(self) -> str:
        return hashlib.sha1(self.data).hexdigest()


@dataclass
class FakeHub:
    repos: dict[str, dict[str, HubFile]] = field(default_factory=dict)
    corrupt: bool = False
    cut_once: bool = False
    git_etag_only: bool = False  # no X-Linked-Etag: the checksum must come from paths-info
    requests: list[dict[str, Any]] = field(default_factory=list)
    _cut: set[str] = field(default_factory=set)
    _server: ThreadingHTTPServer | None = None

    def add(self, repo: str, path: str, source: Path | bytes) -> HubFile:
        data = source if isinstance(source, bytes) else source.read_bytes()
        entry = HubFile(data)
        self.repos.setdefault(repo, {})[path] = entry
        return entry

    @property
    def port(self) -> int:
        assert self._server is not None
        return int(self._server.server_address[1])

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> FakeHub:
        hub = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def do_HEAD(self) -> None:
                hub._serve(self, body=False)

            def do_GET(self) -> None:
                hub._serve(self, body=True)

            def do_POST(self) -> None:
                hub._paths_info(self)

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def downloads(self) -> list[dict[str, Any]]:
        return [r for r in self.requests if r["method"] == "GET" and r["path"].startswith("/lfs/")]

    # -- answers ---------------------------------------------------------------

    def _record(self, handler: BaseHTTPRequestHandler) -> None:
        self.requests.append(
            {
                "method": handler.command,
                "path": handler.path,
                "host": handler.headers.get("Host", ""),
                "range": handler.headers.get("Range"),
                "authorization": handler.headers.get("Authorization"),
            }
        )

    def _empty(self, handler: BaseHTTPRequestHandler, status: int, **headers: str) -> None:
        handler.send_response(status)
        for name, value in headers.items():
            handler.send_header(name.replace("_", "-"), value)
        handler.send_header("Content-Length", "0")
        handler.end_headers()

    def _serve(self, handler: BaseHTTPRequestHandler, body: bool) -> None:
        self._record(handler)
        path = handler.path.split("?", 1)[0]
        if path.startswith("/lfs/"):
            return self._object(handler, path.removeprefix("/lfs/"), body)
        match = RESOLVE.match(path)
        if match is None:
            return self._empty(handler, 404)
        files = self.repos.get(match["repo"])
        if files is None:
            return self._empty(handler, 404, X_Error_Code="RepoNotFound")
        entry = files.get(match["path"])
        if entry is None:
            return self._empty(handler, 404, X_Error_Code="EntryNotFound", X_Repo_Commit=COMMIT)
        cdn = f"http://localhost:{self.port}/lfs/{entry.sha256}"
        linked = {} if self.git_etag_only else {"X_Linked_Etag": f'"{entry.sha256}"'}
        self._empty(
            handler,
            302,
            Location=cdn,
            X_Repo_Commit=COMMIT,
            X_Linked_Size=str(len(entry.data)),
            ETag=f'"{entry.git_oid}"',
            **linked,
        )

    def _object(self, handler: BaseHTTPRequestHandler, sha: str, body: bool) -> None:
        found = [f for files in self.repos.values() for f in files.values() if f.sha256 == sha]
        if not found:
            return self._empty(handler, 404)
        data = found[0].data
        if self.corrupt:  # the same size, one byte in the middle changed
            middle = len(data) // 2
            data = data[:middle] + bytes([data[middle] ^ 0xFF]) + data[middle + 1 :]
        start = 0
        status = 200
        ranged = re.match(r"bytes=(\d+)-$", handler.headers.get("Range") or "")
        if ranged:
            start, status = int(ranged.group(1)), 206
        part = data[start:]
        handler.send_response(status)
        handler.send_header("Content-Length", str(len(part)))
        handler.send_header("Content-Type", "application/octet-stream")
        if status == 206:
            handler.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        handler.end_headers()
        if not body:
            return
        if self.cut_once and sha not in self._cut and start == 0:
            self._cut.add(sha)  # half of it, then the connection drops
            handler.wfile.write(part[: len(part) // 2])
            handler.wfile.flush()
            handler.close_connection = True
            handler.connection.shutdown(2)
            return
        handler.wfile.write(part)

    def _paths_info(self, handler: BaseHTTPRequestHandler) -> None:
        self._record(handler)
        match = PATHS_INFO.match(handler.path.split("?", 1)[0])
        length = int(handler.headers.get("Content-Length") or 0)
        raw = handler.rfile.read(length).decode()
        files = self.repos.get(match["repo"]) if match else None
        if files is None:
            return self._empty(handler, 404, X_Error_Code="RepoNotFound")
        try:
            wanted = json.loads(raw).get("paths", [])
        except json.JSONDecodeError:  # form-encoded: paths=a&paths=b
            from urllib.parse import parse_qs

            wanted = parse_qs(raw).get("paths", [])
        answer = [
            {
                "type": "file",
                "path": path,
                "size": len(files[path].data),
                "oid": files[path].git_oid,
                "lfs": {
                    "oid": files[path].sha256,
                    "size": len(files[path].data),
                    "pointerSize": 134,
                },
            }
            for path in wanted
            if path in files
        ]
        payload = json.dumps(answer).encode()
        handler.send_response(200)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Content-Length", str(len(payload)))
        handler.end_headers()
        handler.wfile.write(payload)
