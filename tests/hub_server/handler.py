"""HTTP plumbing shared by all endpoints: routing, request bodies, answers, byte ranges, auth, Hub-style errors."""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any, ClassVar
from urllib.parse import parse_qs, unquote, urlsplit

from .revisions import Commit, HubError, Repo
from .store import HubStore

if TYPE_CHECKING:
    from .server import HubServer

logger = logging.getLogger(__name__)

_RANGE = re.compile(r"\s*bytes\s*=\s*(\d*)\s*-\s*(\d*)\s*", re.IGNORECASE)
_CHUNK = 1 << 20
_UNSAFE_HEADER_CHARS = re.compile(r"[^\x20-\x7e]")


def _parse_range(header: str | None, size: int) -> tuple[int, int] | None:
    """Inclusive byte range asked by a `Range` header, None to send everything; 416 if unsatisfiable."""
    match = _RANGE.fullmatch(header or "")
    if match is None or not (match[1] or match[2]):
        return None  # absent, malformed or multi-range: serve the whole file
    if match[1]:
        start = int(match[1])
        end = min(int(match[2]), size - 1) if match[2] else size - 1
    else:
        start, end = max(size - int(match[2]), 0), size - 1
        if int(match[2]) == 0:
            start = size
    if start >= size or start > end:
        raise HubError(416, "Requested range not satisfiable", headers={"Content-Range": f"bytes */{size}"})
    return start, end


@dataclass(frozen=True)
class RequestRecord:
    """One request the server answered: method, path (with query) and status."""

    method: str
    path: str
    status: int


class HubHTTPServer(ThreadingHTTPServer):
    """ThreadingHTTPServer carrying the store, the tokens and the request log."""

    daemon_threads = True
    hub: HubServer


Route = tuple[frozenset[str], re.Pattern[str], Callable[..., None]]


class BaseHubHandler(BaseHTTPRequestHandler):
    """Routes requests to the endpoints in `routes`; one instance per connection.

    The endpoints are methods of subclasses (`api.RepoApiHandler`, `transfer.TransferHandler`).
    """

    protocol_version = "HTTP/1.1"
    server_version = "ftv-test-hub/1.0"
    timeout = 60  # idle keep-alive connections are dropped after this many seconds
    server: HubHTTPServer
    routes: ClassVar[list[Route]] = []
    """(methods, path pattern, endpoint) tried in order; set by `server.HubRequestHandler`."""

    def do_GET(self) -> None:
        """Dispatch a GET (HEAD, POST, PUT and DELETE go the same way)."""
        self._dispatch()

    do_HEAD = do_POST = do_PUT = do_DELETE = do_GET

    def log_message(self, format: str, *args: Any) -> None:
        """Log to `logging` instead of stderr."""
        logger.debug("%s - %s", self.address_string(), format % args)

    # --- plumbing --------------------------------------------------------------------------------------------------

    @property
    def store(self) -> HubStore:
        """The server's store."""
        return self.server.hub.store

    @property
    def endpoint(self) -> str:
        """Base URL of the server."""
        return self.server.hub.endpoint

    def _dispatch(self) -> None:
        """Find the route, run it, turn `HubError`s into Hub-style error answers, log the request."""
        self._status = 0
        self._body_state = "unread"
        split = urlsplit(self.path)
        self.query = parse_qs(split.query)
        try:
            for methods, pattern, func in self.routes:
                match = pattern.fullmatch(split.path)
                if match and self.command in methods:
                    func(self, **{k: unquote(v) if v is not None else None for k, v in match.groupdict().items()})
                    break
            else:
                with self.server.hub.lock:
                    self.server.hub.unhandled.append(f"{self.command} {self.path}")
                raise HubError(404, f"Sorry, we can't find the page you are looking for ({self.command} {split.path})")
            self._drain()
        except HubError as e:
            self._drain()
            headers = {"X-Error-Message": _UNSAFE_HEADER_CHARS.sub("?", e.message), **e.headers}
            if e.code:
                headers["X-Error-Code"] = e.code
            self._send_json({"error": e.message}, e.status, headers)
        except Exception as e:  # a bug in the server: answer 500 and keep serving
            logger.exception("test hub failed on %s %s", self.command, self.path)
            self.close_connection = True
            if not self._status:
                self._send_json({"error": f"{type(e).__name__}: {e}"}, 500)
        finally:
            with self.server.hub.lock:
                self.server.hub.requests.append(RequestRecord(self.command, self.path, self._status))

    def _iter_body(self) -> Iterator[bytes]:
        """Yield the request body in chunks (Content-Length or chunked transfer encoding); once per request."""
        if self._body_state != "unread":
            return
        self._body_state = "reading"
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            while True:
                line = self.rfile.readline(1024).split(b";")[0].strip()
                try:
                    size = int(line or b"0", 16)
                except ValueError as e:
                    self.close_connection = True
                    raise HubError(400, "Malformed chunked request body") from e
                if size == 0:
                    while self.rfile.readline(1024) not in (b"\r\n", b"\n", b""):
                        pass  # trailers
                    break
                yield from self._read_exactly(size)
                self.rfile.readline(1024)
        else:
            yield from self._read_exactly(int(self.headers.get("Content-Length") or 0))
        self._body_state = "done"

    def _read_exactly(self, size: int) -> Iterator[bytes]:
        """Yield exactly `size` bytes from the connection."""
        while size > 0:
            data = self.rfile.read(min(size, _CHUNK))
            if not data:
                self.close_connection = True
                raise HubError(400, "Request body ended early")
            size -= len(data)
            yield data

    def _drain(self) -> None:
        """Read what is left of the body so the connection can be reused, or close it if that is impossible."""
        if self._body_state == "unread":
            try:
                for _ in self._iter_body():
                    pass
            except (HubError, ValueError, OSError):
                self.close_connection = True
        elif self._body_state == "reading":
            self.close_connection = True

    def _body(self) -> bytes:
        """The whole request body."""
        return b"".join(self._iter_body())

    def _json(self) -> Any:
        """The request body parsed as JSON (None if empty)."""
        body = self._body()
        try:
            return json.loads(body) if body.strip() else None
        except ValueError as e:
            raise HubError(400, "Request body is not valid JSON") from e

    def _send(
        self, status: int, body: bytes = b"", headers: Mapping[str, str] | None = None, ctype: str = "application/json"
    ) -> None:
        """Answer with a body (not written for HEAD)."""
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        if self.command != "HEAD" and body:
            self.wfile.write(body)
        self._status = status

    def _send_json(self, payload: Any, status: int = 200, headers: Mapping[str, str] | None = None) -> None:
        """Answer with JSON."""
        self._send(status, json.dumps(payload).encode(), headers)

    def _send_object(self, sha256: str, size: int, headers: dict[str, str]) -> None:
        """Answer with a stored object (or the byte range asked for), streaming it from disk."""
        byte_range = _parse_range(self.headers.get("Range"), size)
        start, end = byte_range if byte_range else (0, size - 1)
        status = 206 if byte_range else 200
        if byte_range:
            headers["Content-Range"] = f"bytes {start}-{end}/{size}"
        self.send_response(status)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(end - start + 1))
        self.send_header("Accept-Ranges", "bytes")
        for key, value in headers.items():
            self.send_header(key, value)
        self.end_headers()
        self._status = status
        if self.command == "HEAD":
            return
        with open(self.store.object_path(sha256), "rb") as f:
            f.seek(start)
            remaining = end - start + 1
            while remaining > 0:
                data = f.read(min(remaining, _CHUNK))
                if not data:
                    break
                self.wfile.write(data)
                remaining -= len(data)

    def _user(self) -> str | None:
        """User authenticated by the bearer token, None without token; 401 for an unknown token."""
        auth = self.headers.get("Authorization")
        if not auth:
            return None
        scheme, _, token = auth.partition(" ")
        user = self.server.hub.tokens.get(token.strip()) if scheme.lower() == "bearer" else None
        if user is None:
            raise HubError(401, "Invalid credentials in Authorization header")
        return user

    def _require_user(self) -> str:
        """User authenticated by the bearer token; 401 without one."""
        user = self._user()
        if user is None:
            raise HubError(401, "You must be authenticated (Authorization: Bearer <token>) to do this")
        return user

    def _repo(self, repo_type: str, repo_id: str) -> Repo:
        """The repo, or 404 RepoNotFound (also for private repos without a token)."""
        repo = self.store.get(repo_type, repo_id)
        if repo is None or (repo.private and self._user() is None):
            raise HubError(404, "Repository not found", "RepoNotFound")
        return repo

    def _commit(self, repo: Repo, revision: str) -> Commit:
        """The commit a revision points to, or 404 RevisionNotFound."""
        commit = repo.resolve(revision)
        if commit is None:
            raise HubError(404, f"Invalid rev id: {revision}", "RevisionNotFound")
        return commit

    def _flag(self, name: str) -> bool:
        """Whether a query parameter is set to a true value."""
        values = self.query.get(name)
        return bool(values) and values[-1].lower() in ("1", "true", "yes")
