"""A loopback stand-in for the Hugging Face hub, so the hub code paths run without a network.

    with HubServer() as hub:
        hub.add_dataset("stanfordnlp/imdb", {"plain_text/train-00000-of-00001.parquet": data, ...})
        hub.add_model("sentence-transformers/all-MiniLM-L6-v2", snapshot_folder, revision)
        hub.add_error("dataset", "someone/gated", 401, "GatedRepo")
        env = {**os.environ, **hub.environment()}   # HF_ENDPOINT=http://127.0.0.1:PORT, online
        subprocess.run(["textlora", "train", ...], env=env)

Written by hand (stdlib http.server): no library serves the hub's API offline.
It answers only the routes that huggingface_hub and datasets call to resolve a
repository and download its files (found by reading their source and by
logging what this server receives, see `requests`):

    GET  /api/{models|datasets}/{repo}[/revision/{rev}]      repo info: sha, siblings
    GET  /api/{models|datasets}/{repo}/tree/{rev}[/{path}]   folder listing (?recursive=true)
    POST /api/{models|datasets}/{repo}/paths-info/{rev}      entries of the given paths
    HEAD|GET /{repo}/resolve/{rev}/{path}                    a model file
    HEAD|GET /datasets/{repo}/resolve/{rev}/{path}           a dataset file

with the headers huggingface_hub reads (X-Repo-Commit, ETag, Content-Length)
and its error headers (X-Error-Code: RepoNotFound | EntryNotFound |
RevisionNotFound | GatedRepo). Anything else is a 404 logged as unknown.
It binds 127.0.0.1 only, answers at most `max_requests` requests, reads
request bodies of 64 KiB at most, and stops itself after `lifetime` seconds
even if a test forgets to.
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
from urllib.parse import parse_qs, unquote, urlsplit

MAX_BODY = 64 * 1024
LAST_MODIFIED = "2024-01-04T16:13:41.000Z"


def git_blob_sha(data: bytes) -> str:
    """The id git (and the hub's ETag for a non-LFS file) gives a file's content."""
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


@dataclass
class Repo:
    kind: str
    """model | dataset"""
    repo_id: str
    sha: str
    files: dict[str, bytes | Path] = field(default_factory=dict)
    """Repository path -> content (bytes, or a local file read on demand)."""
    error: tuple[int, str, str] | None = None
    """(status, X-Error-Code, X-Error-Message) every request for this repo is answered with."""
    _etags: dict[str, str] = field(default_factory=dict)

    def content(self, path: str) -> bytes:
        value = self.files[path]
        return value.read_bytes() if isinstance(value, Path) else value

    def size(self, path: str) -> int:
        value = self.files[path]
        return value.stat().st_size if isinstance(value, Path) else len(value)

    def etag(self, path: str) -> str:
        if path not in self._etags:
            self._etags[path] = git_blob_sha(self.content(path))
        return self._etags[path]

    def entry(self, path: str) -> dict[str, Any]:
        if path in self.files:
            return {"type": "file", "oid": self.etag(path), "size": self.size(path), "path": path}
        return {"type": "directory", "oid": hashlib.sha1(path.encode()).hexdigest(), "size": 0, "path": path}

    def folders(self) -> set[str]:
        out = set()
        for path in self.files:
            parts = path.split("/")[:-1]
            out.update("/".join(parts[: i + 1]) for i in range(len(parts)))
        return out

    def listing(self, folder: str, recursive: bool) -> list[dict[str, Any]] | None:
        """Entries under `folder` ("" is the root), or None where no such folder exists."""
        folder = folder.strip("/")
        if folder and folder not in self.folders():
            return None
        prefix = f"{folder}/" if folder else ""
        paths = sorted(p for p in self.files.keys() | self.folders() if p.startswith(prefix) and p != folder)
        if not recursive:
            paths = [p for p in paths if "/" not in p[len(prefix):]]
        return [self.entry(p) for p in paths]

    def info(self) -> dict[str, Any]:
        return {
            "_id": hashlib.sha1(self.repo_id.encode()).hexdigest()[:24], "id": self.repo_id,
            "author": self.repo_id.split("/")[0], "sha": self.sha, "lastModified": LAST_MODIFIED,
            "private": False, "gated": False, "disabled": False, "downloads": 0, "likes": 0, "tags": [],
            "siblings": [{"rfilename": p} for p in sorted(self.files)],
            "createdAt": LAST_MODIFIED, "usedStorage": sum(self.size(p) for p in self.files),
        }


# /api/models/ORG/NAME/...  and  /api/datasets/ORG/NAME/...
API = re.compile(r"^/api/(?P<kind>models|datasets)/(?P<repo>[^/]+/[^/]+)(?P<rest>/.*)?$")
# /datasets/ORG/NAME/resolve/REV/PATH  and  /ORG/NAME/resolve/REV/PATH (models)
RESOLVE = re.compile(r"^/(?:(?P<datasets>datasets)/)?(?P<repo>[^/]+/[^/]+)/resolve/(?P<rev>[^/]+)/(?P<path>.+)$")


class HubServer:
    """A threaded HTTP server on 127.0.0.1:(random port) answering the hub routes above."""

    def __init__(self, max_requests: int = 2000, lifetime: float = 300.0):
        self.repos: dict[tuple[str, str], Repo] = {}
        self.requests: list[tuple[str, str, int]] = []
        """(method, path, status) of every request, in order."""
        self.max_requests = max_requests
        self.lifetime = lifetime
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._timer: threading.Timer | None = None

    # ----------------------------------------------------------------- content

    def add_dataset(self, repo_id: str, files: dict[str, bytes | Path], sha: str | None = None) -> Repo:
        return self._add(Repo("dataset", repo_id, sha or hashlib.sha1(repo_id.encode()).hexdigest(), dict(files)))

    def add_model(self, repo_id: str, folder: str | Path, sha: str) -> Repo:
        """A model repo whose files are those of `folder` (recursively), at commit `sha`."""
        folder = Path(folder)
        files = {p.relative_to(folder).as_posix(): p for p in sorted(folder.rglob("*")) if p.is_file()}
        return self._add(Repo("model", repo_id, sha, files))

    def add_error(self, kind: str, repo_id: str, status: int, code: str, message: str = "") -> Repo:
        """A repo every request for which is refused (e.g. 404 RepoNotFound, 401 GatedRepo)."""
        return self._add(Repo(kind, repo_id, "0" * 40, error=(status, code, message or code)))

    def _add(self, repo: Repo) -> Repo:
        self.repos[(repo.kind, repo.repo_id)] = repo
        return repo

    # ----------------------------------------------------------------- lifecycle

    @property
    def endpoint(self) -> str:
        assert self._server is not None, "start the server first"
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def environment(self) -> dict[str, str]:
        """What points huggingface_hub and datasets at this server, online (read at their import)."""
        return {"HF_ENDPOINT": self.endpoint, "HF_HUB_OFFLINE": "0", "HF_DATASETS_OFFLINE": "0",
                "HF_HUB_DISABLE_TELEMETRY": "1", "HF_HUB_DISABLE_XET": "1", "HF_HUB_ETAG_TIMEOUT": "10",
                "HF_HUB_DOWNLOAD_TIMEOUT": "10"}

    def start(self) -> "HubServer":
        server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        server.daemon_threads = True
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
        self._thread.start()
        self._timer = threading.Timer(self.lifetime, self.stop)
        self._timer.daemon = True
        self._timer.start()
        return self

    def stop(self) -> None:
        with self._lock:
            server, self._server = self._server, None
        if self._timer is not None and self._timer is not threading.current_thread():
            self._timer.cancel()
        if server is not None:
            server.shutdown()
            server.server_close()

    def __enter__(self) -> "HubServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # ----------------------------------------------------------------- answers

    def answer(self, method: str, target: str, body: bytes) -> tuple[int, dict[str, str], bytes]:
        url = urlsplit(target)
        path, query = unquote(url.path), parse_qs(url.query)
        match = API.match(path)
        if match:
            kind = match["kind"][:-1]
            return self._api(method, self.repos.get((kind, match["repo"])), kind, match["repo"], match["rest"] or "",
                             query, body)
        match = RESOLVE.match(path)
        if match and method in ("GET", "HEAD"):
            kind = "dataset" if match["datasets"] else "model"
            return self._resolve(self.repos.get((kind, match["repo"])), kind, match["repo"], match["rev"],
                                 match["path"], method)
        return _error(404, "", f"no such route: {method} {path}")

    def _refused(self, repo: Repo | None):
        if repo is None:
            return _error(404, "RepoNotFound", "Repository not found")
        if repo.error is not None:
            return _error(*repo.error)
        return None

    def _revision_ok(self, repo: Repo, rev: str) -> bool:
        return rev in ("main", repo.sha)

    def _api(self, method: str, repo: Repo | None, kind: str, repo_id: str, rest: str, query, body: bytes):
        refused = self._refused(repo)
        if refused:
            return refused
        parts = rest.strip("/").split("/", 2) if rest.strip("/") else []
        if method == "GET" and (not parts or parts[0] == "revision"):
            if len(parts) > 1 and not self._revision_ok(repo, parts[1]):
                return _error(404, "RevisionNotFound", "Invalid rev id")
            return _json(repo.info())
        if method == "GET" and parts and parts[0] == "tree" and len(parts) >= 2:
            if not self._revision_ok(repo, parts[1]):
                return _error(404, "RevisionNotFound", "Invalid rev id")
            listing = repo.listing(parts[2] if len(parts) > 2 else "", query.get("recursive", ["false"])[0] == "true")
            return _json(listing) if listing is not None else _error(404, "EntryNotFound", "Path not found")
        if method == "POST" and parts and parts[0] == "paths-info" and len(parts) >= 2:
            if not self._revision_ok(repo, parts[1]):
                return _error(404, "RevisionNotFound", "Invalid rev id")
            asked = _form_or_json_paths(body)
            known = repo.files.keys() | repo.folders()
            return _json([repo.entry(p.strip("/")) for p in asked if p.strip("/") in known])
        return _error(404, "", f"no such route: {method} /api/{kind}s/{repo_id}{rest}")

    def _resolve(self, repo: Repo | None, kind: str, repo_id: str, rev: str, path: str, method: str):
        refused = self._refused(repo)
        if refused:
            return refused
        if not self._revision_ok(repo, rev):
            return _error(404, "RevisionNotFound", "Invalid rev id")
        if path not in repo.files:
            return _error(404, "EntryNotFound", "Entry not found")
        headers = {"X-Repo-Commit": repo.sha, "ETag": f'"{repo.etag(path)}"', "Content-Length": str(repo.size(path)),
                   "Accept-Ranges": "bytes", "Content-Type": "application/octet-stream"}
        return 200, headers, b"" if method == "HEAD" else repo.content(path)


def _form_or_json_paths(body: bytes) -> list[str]:
    text = body.decode("utf-8", "replace")
    if text.lstrip().startswith("{"):
        paths = json.loads(text).get("paths", [])
        return [paths] if isinstance(paths, str) else list(paths)
    return parse_qs(text).get("paths", [])


def _json(value: Any) -> tuple[int, dict[str, str], bytes]:
    data = json.dumps(value).encode()
    return 200, {"Content-Type": "application/json", "Content-Length": str(len(data))}, data


def _error(status: int, code: str, message: str) -> tuple[int, dict[str, str], bytes]:
    data = json.dumps({"error": message}).encode()
    headers = {"Content-Type": "application/json", "Content-Length": str(len(data)), "X-Error-Message": message}
    if code:
        headers["X-Error-Code"] = code
    return status, headers, data


def _handler(hub: HubServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        timeout = 30  # a stalled client does not hold a thread forever

        def _serve(self, method: str) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            if length > MAX_BODY:
                status, headers, data = _error(413, "", "request body too large")
            else:
                body = self.rfile.read(length) if length else b""
                with hub._lock:
                    over = len(hub.requests) >= hub.max_requests
                status, headers, data = _error(503, "", "request limit reached") if over else \
                    hub.answer(method, self.path, body)
            with hub._lock:
                hub.requests.append((method, self.path, status))
            self.send_response(status)
            for key, value in headers.items():
                self.send_header(key, value)
            self.end_headers()
            if method != "HEAD":
                self.wfile.write(data)

        def do_GET(self) -> None:
            self._serve("GET")

        def do_HEAD(self) -> None:
            self._serve("HEAD")

        def do_POST(self) -> None:
            self._serve("POST")

        def log_message(self, *args) -> None:  # `requests` holds the log; keep test output clean
            pass

    return Handler
