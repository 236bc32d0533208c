"""A small Hugging Face Hub-compatible HTTP server for offline tests (stdlib only).

It implements the subset of the Hub API that `huggingface_hub` 2.4 (and `transformers` on top of it) uses to push
and pull model repos, as read from the installed client source:

- `GET /api/whoami-v2`, `POST /api/repos/create`, `DELETE /api/repos/delete`, `POST /api/validate-yaml`
- `GET /api/{type}s/{repo_id}[/revision/{rev}]` (repo info: `sha`, `siblings`, with sizes and LFS info if `?blobs=1`)
- `GET /api/{type}s/{repo_id}/tree/{rev}[/{path}]`, `POST .../paths-info/{rev}`, `GET .../refs`, `GET .../commits/{rev}`
- `POST .../preupload/{rev}` (regular vs LFS), `POST .../commit/{rev}` (NDJSON: header, file, lfsFile, deletedFile,
  deletedFolder; `?create_pr=1` opens `refs/pr/N`), `POST|DELETE .../branch/{name}`, `POST .../tag/{rev}`
- Git LFS: `POST /{repo_id}.git/info/lfs/objects/batch` (basic transfer), `.../verify`, `PUT|GET|HEAD /_lfs/{oid}`
- `GET|HEAD /[{type}s/]{repo_id}/resolve/{rev}/{path}` with `ETag`, `X-Repo-Commit`, `X-Linked-Etag`, `X-Linked-Size`,
  `Content-Length` and single byte-range requests.

Missing repos, revisions and files answer 404 with the Hub's `X-Error-Code` (`RepoNotFound`, `RevisionNotFound`,
`EntryNotFound`) so the client raises its usual errors. Xet storage is not implemented: clients must run with
`HF_HUB_DISABLE_XET=1` (see `hub_fixtures.hub_env`). Any valid token may write to any namespace; `.gitignore`
handling, gated repos, discussions and multipart LFS uploads are not implemented.

Content lives in a storage folder (content-addressed by sha256 under `objects/`), repo metadata in memory and in
`state.json` next to it, so a server restarted on the same folder sees the same repos.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import os
import re
import shutil
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from fnmatch import fnmatchcase
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

logger = logging.getLogger(__name__)

DEFAULT_TOKENS: dict[str, str] = {"hf_test": "test-user"}
"""Accepted bearer tokens and the user each one authenticates."""
DEFAULT_ORGS: tuple[str, ...] = ("org",)
DEFAULT_BRANCH = "main"
LFS_THRESHOLD = 10 * 1024 * 1024
"""Files this large (bytes) or larger are stored with LFS whatever their name."""

DEFAULT_GITATTRIBUTES = "".join(
    f"{pattern} filter=lfs diff=lfs merge=lfs -text\n"
    for pattern in (
        "*.7z *.arrow *.bin *.bz2 *.ckpt *.ftz *.gz *.h5 *.joblib *.lfs.* *.mlmodel *.model *.msgpack *.npy *.npz"
        " *.onnx *.ot *.parquet *.pb *.pickle *.pkl *.pt *.pth *.rar *.safetensors saved_model/**/* *.tar.* *.tar"
        " *.tflite *.tgz *.wasm *.xz *.zip *.zst *tfevents*"
    ).split()
)
"""Content of the `.gitattributes` file of the initial commit of every new repo, like on the Hub."""

TYPE_FROM_PLURAL = {"models": "model", "datasets": "dataset", "spaces": "space"}
URL_PREFIX = {"model": "", "dataset": "datasets/", "space": "spaces/"}
_REPO_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
_SHA256 = re.compile(r"[0-9a-f]{64}")
_COMMIT_ID = re.compile(r"[0-9a-f]{40}")
_RANGE = re.compile(r"\s*bytes\s*=\s*(\d*)\s*-\s*(\d*)\s*", re.IGNORECASE)
_CHUNK = 1 << 20
_UNSAFE_HEADER_CHARS = re.compile(r"[^\x20-\x7e]")


class HubError(Exception):
    """An error answered to the client: status, message, optional `X-Error-Code` and extra headers."""

    def __init__(self, status: int, message: str, code: str | None = None, headers: Mapping[str, str] | None = None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code
        self.headers = dict(headers or {})


def git_blob_id(data: bytes) -> str:
    """Git object id (sha1) of a blob with this content."""
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def lfs_pointer(sha256: str, size: int) -> bytes:
    """The Git LFS pointer file that stands in the git tree for an LFS object."""
    return f"version https://git-lfs.github.com/spec/v1\noid sha256:{sha256}\nsize {size}\n".encode()


def _now() -> str:
    """Current UTC time in the Hub's format, e.g. `2024-01-31T12:00:00.000Z`."""
    now = datetime.now(timezone.utc)
    return now.strftime("%Y-%m-%dT%H:%M:%S.") + f"{now.microsecond // 1000:03d}Z"


@dataclass(frozen=True)
class FileEntry:
    """A file in a commit: content size and sha256, git blob id, and whether it is stored with LFS."""

    size: int
    sha256: str
    blob_id: str
    lfs: bool

    @classmethod
    def regular(cls, data: bytes, sha256: str) -> FileEntry:
        """Entry of a file committed as a regular git blob."""
        return cls(size=len(data), sha256=sha256, blob_id=git_blob_id(data), lfs=False)

    @classmethod
    def large(cls, sha256: str, size: int) -> FileEntry:
        """Entry of a file committed as an LFS pointer."""
        return cls(size=size, sha256=sha256, blob_id=git_blob_id(lfs_pointer(sha256, size)), lfs=True)

    @property
    def etag(self) -> str:
        """The id the Hub reports for this file: the sha256 for LFS files, the git blob id otherwise."""
        return self.sha256 if self.lfs else self.blob_id

    @property
    def pointer_size(self) -> int:
        """Size of the LFS pointer file."""
        return len(lfs_pointer(self.sha256, self.size))


@dataclass
class Commit:
    """A commit: its id, parent, message, author, date and full file listing."""

    id: str
    parent: str | None
    title: str
    description: str
    author: str
    date: str
    files: dict[str, FileEntry]


@dataclass
class Repo:
    """A repo: type, id, visibility, refs (branches, tags, PR refs) and all its commits by id."""

    repo_type: str
    repo_id: str
    private: bool
    created_at: str
    branches: dict[str, str] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)
    pulls: dict[str, str] = field(default_factory=dict)
    commits: dict[str, Commit] = field(default_factory=dict)

    @property
    def url_path(self) -> str:
        """Path of the repo's web page, e.g. `org/name` or `datasets/org/name`."""
        return URL_PREFIX[self.repo_type] + self.repo_id

    def resolve(self, revision: str) -> Commit | None:
        """Commit of a branch, tag, `refs/pr/N`, `refs/heads/x`, `refs/tags/x` or (full) commit id, or None."""
        commit_id = self.branches.get(revision.removeprefix("refs/heads/")) or self.pulls.get(revision)
        if commit_id is None:
            commit_id = self.tags.get(revision.removeprefix("refs/tags/"))
        if commit_id is None and _COMMIT_ID.fullmatch(revision):
            commit_id = revision
        return self.commits.get(commit_id) if commit_id else None

    def to_json(self) -> dict[str, Any]:
        """Plain JSON form, for `state.json`."""
        commits = {
            cid: {
                "parent": c.parent,
                "title": c.title,
                "description": c.description,
                "author": c.author,
                "date": c.date,
                "files": {p: [e.size, e.sha256, e.blob_id, e.lfs] for p, e in c.files.items()},
            }
            for cid, c in self.commits.items()
        }
        return {
            "repo_type": self.repo_type,
            "repo_id": self.repo_id,
            "private": self.private,
            "created_at": self.created_at,
            "branches": self.branches,
            "tags": self.tags,
            "pulls": self.pulls,
            "commits": commits,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Repo:
        """Inverse of `to_json`."""
        commits = {
            cid: Commit(
                id=cid,
                parent=c["parent"],
                title=c["title"],
                description=c["description"],
                author=c["author"],
                date=c["date"],
                files={p: FileEntry(*entry) for p, entry in c["files"].items()},
            )
            for cid, c in data["commits"].items()
        }
        return cls(
            repo_type=data["repo_type"],
            repo_id=data["repo_id"],
            private=data["private"],
            created_at=data["created_at"],
            branches=dict(data["branches"]),
            tags=dict(data["tags"]),
            pulls=dict(data["pulls"]),
            commits=commits,
        )


def _lfs_patterns(gitattributes: str) -> list[str]:
    """Patterns that a `.gitattributes` file routes through LFS (`filter=lfs`)."""
    patterns = []
    for line in gitattributes.splitlines():
        parts = line.split()
        if parts and not parts[0].startswith("#") and "filter=lfs" in parts[1:]:
            patterns.append(parts[0])
    return patterns


def _matches_gitattributes(pattern: str, path: str) -> bool:
    """Approximate gitattributes matching: a pattern without `/` matches the basename at any depth."""
    if "/" not in pattern.strip("/"):
        return fnmatchcase(PurePosixPath(path).name, pattern)
    return fnmatchcase(path, pattern.lstrip("/"))


def _check_path(path: Any) -> str:
    """Validate a path in a repo (relative, no `..`, no `.git/`) and return it."""
    if not isinstance(path, str) or not path or path.startswith("/") or path.endswith("/"):
        raise HubError(400, f"Invalid path in repo: {path!r}")
    parts = path.split("/")
    if any(part in ("", ".", "..", ".git") for part in parts):
        raise HubError(400, f"Invalid path in repo: {path!r}")
    return path


class HubStore:
    """Repos and their content: objects on disk (by sha256), metadata in memory and in `state.json`.

    All public methods are thread-safe (one re-entrant lock) and raise `HubError` for client mistakes.
    """

    def __init__(self, root: Path, lfs_threshold: int = LFS_THRESHOLD):
        self.root = root
        self.lfs_threshold = lfs_threshold
        self.lock = threading.RLock()
        self.repos: dict[tuple[str, str], Repo] = {}
        self.pending_lfs: dict[str, int] = {}
        (root / "objects").mkdir(parents=True, exist_ok=True)
        (root / "tmp").mkdir(exist_ok=True)
        state = root / "state.json"
        if state.is_file():
            for data in json.loads(state.read_text())["repos"]:
                repo = Repo.from_json(data)
                self.repos[(repo.repo_type, repo.repo_id)] = repo

    # --- objects ---------------------------------------------------------------------------------------------------

    def object_path(self, sha256: str) -> Path:
        """Where the object with this sha256 is (or would be) stored."""
        return self.root / "objects" / sha256[:2] / sha256

    def has_object(self, sha256: str, size: int | None = None) -> bool:
        """Whether the object is stored (with this size, if given)."""
        path = self.object_path(sha256)
        return path.is_file() and (size is None or path.stat().st_size == size)

    def put_bytes(self, data: bytes) -> str:
        """Store content and return its sha256."""
        sha256 = hashlib.sha256(data).hexdigest()
        if not self.has_object(sha256):
            self._publish(sha256, lambda f: f.write(data))
        return sha256

    def expect_lfs(self, oid: str, size: int) -> None:
        """Remember the size announced for an LFS object about to be uploaded."""
        with self.lock:
            self.pending_lfs[oid] = size

    def expected_lfs_size(self, oid: str) -> int | None:
        """Size announced in the LFS batch call for this object, if any."""
        with self.lock:
            return self.pending_lfs.get(oid)

    def put_stream(self, chunks: Iterable[bytes], expected_sha256: str, expected_size: int | None) -> int:
        """Store streamed content that must hash to `expected_sha256` (and have `expected_size`); return its size."""
        digest = hashlib.sha256()
        size = 0

        def write(f: Any) -> None:
            nonlocal size
            for chunk in chunks:
                digest.update(chunk)
                size += len(chunk)
                f.write(chunk)
            if digest.hexdigest() != expected_sha256:
                raise HubError(400, f"Uploaded content does not match oid {expected_sha256}")
            if expected_size is not None and size != expected_size:
                raise HubError(400, f"Uploaded size {size} does not match announced size {expected_size}")

        self._publish(expected_sha256, write)
        with self.lock:
            self.pending_lfs.pop(expected_sha256, None)
        return size

    def _publish(self, sha256: str, write: Callable[[Any], None]) -> None:
        """Write an object to a temp file with `write`, then move it into place atomically."""
        fd, tmp_name = tempfile.mkstemp(dir=self.root / "tmp")
        try:
            with os.fdopen(fd, "wb") as f:
                write(f)
            target = self.object_path(sha256)
            target.parent.mkdir(exist_ok=True)
            os.replace(tmp_name, target)
        except BaseException:
            Path(tmp_name).unlink(missing_ok=True)
            raise

    def read_object(self, sha256: str) -> bytes:
        """Content of a stored object."""
        return self.object_path(sha256).read_bytes()

    # --- repos -----------------------------------------------------------------------------------------------------

    def get(self, repo_type: str, repo_id: str) -> Repo | None:
        """The repo, or None."""
        with self.lock:
            return self.repos.get((repo_type, repo_id))

    def create_repo(self, repo_type: str, repo_id: str, private: bool, author: str) -> Repo:
        """Create a repo whose `main` branch holds an initial commit with the default `.gitattributes`."""
        with self.lock:
            if (repo_type, repo_id) in self.repos:
                raise HubError(409, f"You already created this {repo_type} repo")
            repo = Repo(repo_type=repo_type, repo_id=repo_id, private=private, created_at=_now())
            data = DEFAULT_GITATTRIBUTES.encode()
            files = {".gitattributes": FileEntry.regular(data, self.put_bytes(data))}
            commit = self._new_commit(None, "initial commit", "", author, files)
            repo.commits[commit.id] = commit
            repo.branches[DEFAULT_BRANCH] = commit.id
            self.repos[(repo_type, repo_id)] = repo
            self.save()
            return repo

    def delete_repo(self, repo_type: str, repo_id: str) -> None:
        """Delete a repo (its objects stay, they may be shared)."""
        with self.lock:
            if self.repos.pop((repo_type, repo_id), None) is None:
                raise HubError(404, "Repository not found", "RepoNotFound")
            self.save()

    def upload_mode(self, commit: Commit, path: str, size: int, sample: bytes) -> str:
        """`lfs` for big, binary or `.gitattributes`-tracked files, `regular` otherwise."""
        if size >= self.lfs_threshold or b"\0" in sample:
            return "lfs"
        attributes = commit.files.get(".gitattributes")
        if attributes is not None:
            text = self.read_object(attributes.sha256).decode("utf-8", errors="replace")
            if any(_matches_gitattributes(pattern, path) for pattern in _lfs_patterns(text)):
                return "lfs"
        return "regular"

    def commit(
        self,
        repo: Repo,
        revision: str,
        header: Mapping[str, Any],
        operations: list[tuple[str, Mapping[str, Any]]],
        author: str,
        create_pr: bool,
    ) -> tuple[Commit, str | None]:
        """Apply NDJSON commit operations on top of `revision` (a branch or `refs/pr/N`).

        Returns the new commit and, with `create_pr`, the new PR ref (`refs/pr/N`).
        """
        with self.lock:
            branch = revision.removeprefix("refs/heads/")
            if branch in repo.branches:
                head = repo.commits[repo.branches[branch]]
            elif revision in repo.pulls and not create_pr:
                head = repo.commits[repo.pulls[revision]]
            elif repo.resolve(revision) is None:
                raise HubError(404, f"Invalid rev id: {revision}", "RevisionNotFound")
            else:
                raise HubError(400, f"Can only commit to a branch or a pull request ref, not {revision}")
            parent_commit = header.get("parentCommit")
            if parent_commit and not head.id.startswith(parent_commit):
                raise HubError(412, "A commit has happened since. Please refresh and try again.")
            files = dict(head.files)
            for key, value in operations:
                self._apply(files, key, value)
            title = str(header.get("summary") or "").strip()
            if not title:
                raise HubError(400, "Commit summary is required")
            commit = self._new_commit(head.id, title, str(header.get("description") or ""), author, files)
            repo.commits[commit.id] = commit
            pr_ref = None
            if create_pr:
                pr_ref = f"refs/pr/{len(repo.pulls) + 1}"
                repo.pulls[pr_ref] = commit.id
            elif branch in repo.branches:
                repo.branches[branch] = commit.id
            else:
                repo.pulls[revision] = commit.id
            self.save()
            return commit, pr_ref

    def _apply(self, files: dict[str, FileEntry], key: str, value: Mapping[str, Any]) -> None:
        """Apply one commit operation to a file listing."""
        if key == "file":
            path = _check_path(value.get("path"))
            content = value.get("content", "")
            encoding = value.get("encoding", "utf-8")
            try:
                data = base64.b64decode(content, validate=True) if encoding == "base64" else str(content).encode()
            except ValueError as e:
                raise HubError(400, f"Invalid base64 content for {path}") from e
            files[path] = FileEntry.regular(data, self.put_bytes(data))
        elif key == "lfsFile":
            path = _check_path(value.get("path"))
            oid = str(value.get("oid", ""))
            size = value.get("size")
            if value.get("algo", "sha256") != "sha256" or not _SHA256.fullmatch(oid):
                raise HubError(400, f"Invalid LFS oid for {path}: {oid!r}")
            if not self.has_object(oid, size if isinstance(size, int) else None):
                raise HubError(400, f"LFS object {oid} for {path} has not been uploaded")
            files[path] = FileEntry.large(oid, self.object_path(oid).stat().st_size)
        elif key == "deletedFile":
            path = _check_path(value.get("path"))
            if files.pop(path, None) is None:
                raise HubError(404, f"A file with this name doesn't exist: {path}", "EntryNotFound")
        elif key == "deletedFolder":
            prefix = _check_path(str(value.get("path", "")).rstrip("/")) + "/"
            doomed = [p for p in files if p.startswith(prefix)]
            if not doomed:
                raise HubError(404, f"A folder with this name doesn't exist: {prefix}", "EntryNotFound")
            for p in doomed:
                del files[p]
        else:
            raise HubError(400, f"Unsupported commit operation: {key!r}")

    @staticmethod
    def _new_commit(
        parent: str | None, title: str, description: str, author: str, files: dict[str, FileEntry]
    ) -> Commit:
        """A commit with a fresh sha1-like id."""
        listing = "".join(f"{p}\0{e.blob_id}\n" for p, e in sorted(files.items()))
        seed = f"{parent}\n{title}\n{description}\n{listing}\n{time.time_ns()}\n{uuid.uuid4()}"
        cid = hashlib.sha1(seed.encode()).hexdigest()
        return Commit(
            id=cid, parent=parent, title=title, description=description, author=author, date=_now(), files=files
        )

    def create_ref(self, repo: Repo, kind: str, name: str, target: Commit) -> None:
        """Create a branch or a tag pointing at `target`; 409 if it exists."""
        with self.lock:
            refs = repo.branches if kind == "branch" else repo.tags
            if name in refs:
                raise HubError(409, "Reference already exists")
            if not name or name.startswith("refs/") or any(c in name for c in " ~^:?*[\\"):
                raise HubError(400, f"Invalid reference name: {name!r}")
            refs[name] = target.id
            self.save()

    def delete_ref(self, repo: Repo, kind: str, name: str) -> None:
        """Delete a branch or a tag; 404 if missing."""
        with self.lock:
            refs = repo.branches if kind == "branch" else repo.tags
            if name == DEFAULT_BRANCH and kind == "branch":
                raise HubError(403, "Cannot delete the default branch")
            if refs.pop(name, None) is None:
                raise HubError(404, f"Invalid rev id: {name}", "RevisionNotFound")
            self.save()

    def save(self) -> None:
        """Write repo metadata to `state.json` (atomically)."""
        with self.lock:
            data = {"repos": [repo.to_json() for repo in self.repos.values()]}
            tmp = self.root / "state.json.tmp"
            tmp.write_text(json.dumps(data))
            os.replace(tmp, self.root / "state.json")


def _tree_entries(commit: Commit, base: str, recursive: bool, expand: bool) -> list[dict[str, Any]]:
    """`tree` listing of `base` ("" for the root): files and folders, like the Hub's JSON."""
    prefix = f"{base}/" if base else ""
    folders: dict[str, list[str]] = {}
    entries: list[dict[str, Any]] = []
    for path, entry in sorted(commit.files.items()):
        if not path.startswith(prefix):
            continue
        rest = path[len(prefix) :].split("/")
        for depth in range(1, len(rest)):
            folders.setdefault(prefix + "/".join(rest[:depth]), []).append(entry.blob_id)
        if recursive or len(rest) == 1:
            entries.append(_file_json(path, entry, commit if expand else None))
    for folder, blob_ids in folders.items():
        if recursive or "/" not in folder[len(prefix) :]:
            oid = hashlib.sha1("".join(sorted(blob_ids)).encode()).hexdigest()
            item: dict[str, Any] = {"type": "directory", "oid": oid, "size": 0, "path": folder}
            if expand:
                item["lastCommit"] = {"id": commit.id, "title": commit.title, "date": commit.date}
            entries.append(item)
    entries.sort(key=lambda item: item["path"])
    return entries


def _file_json(path: str, entry: FileEntry, commit: Commit | None) -> dict[str, Any]:
    """One file of a `tree` or `paths-info` answer."""
    item: dict[str, Any] = {"type": "file", "oid": entry.blob_id, "size": entry.size, "path": path}
    if entry.lfs:
        item["lfs"] = {"oid": entry.sha256, "size": entry.size, "pointerSize": entry.pointer_size}
    if commit is not None:
        item["lastCommit"] = {"id": commit.id, "title": commit.title, "date": commit.date}
    return item


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


class _HubHTTPServer(ThreadingHTTPServer):
    """ThreadingHTTPServer carrying the store, the tokens and the request log."""

    daemon_threads = True
    hub: HubServer


_Route = tuple[frozenset[str], re.Pattern[str], Callable[..., None]]
_REPO = r"(?P<repo>[^/]+/[^/]+)"
_API = r"/api/(?P<plural>models|datasets|spaces)/" + _REPO
_PREFIX = r"/(?:(?P<prefix>datasets|spaces)/)?"
_LFS = _PREFIX + _REPO + r"\.git/info/lfs/objects"


class _Handler(BaseHTTPRequestHandler):
    """Routes requests to the Hub endpoints; one instance per connection."""

    protocol_version = "HTTP/1.1"
    server_version = "ftv-test-hub/1.0"
    timeout = 60  # idle keep-alive connections are dropped after this many seconds
    server: _HubHTTPServer

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
            for methods, pattern, func in ROUTES:
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

    # --- endpoints -------------------------------------------------------------------------------------------------

    def whoami(self) -> None:
        """`GET /api/whoami-v2`."""
        user = self._require_user()
        orgs = [{"type": "org", "name": org, "fullname": org, "roleInOrg": "admin"} for org in self.server.hub.orgs]
        self._send_json(
            {
                "type": "user",
                "id": hashlib.sha1(user.encode()).hexdigest()[:24],
                "name": user,
                "fullname": user,
                "email": f"{user}@example.invalid",
                "emailVerified": True,
                "isPro": False,
                "orgs": orgs,
                "auth": {"type": "access_token", "accessToken": {"displayName": "test", "role": "write"}},
            }
        )

    def create_repo(self) -> None:
        """`POST /api/repos/create`: 409 with the repo `url` if it exists (that is what `exist_ok` relies on)."""
        user = self._require_user()
        payload = self._json() or {}
        name, namespace = payload.get("name"), payload.get("organization") or user
        repo_type = payload.get("type") or "model"
        if repo_type not in URL_PREFIX:
            raise HubError(400, f"Unsupported repo type: {repo_type!r}")
        if not isinstance(name, str) or not _REPO_NAME.fullmatch(name) or "--" in name or ".." in name:
            raise HubError(400, f"Invalid repo name: {name!r}")
        repo_id = f"{namespace}/{name}"
        url = f"{self.endpoint}/{URL_PREFIX[repo_type]}{repo_id}"
        private = payload.get("visibility") == "private" or payload.get("private") is True
        try:
            self.store.create_repo(repo_type, repo_id, private, user)
        except HubError as e:
            if e.status == 409:
                self._send_json({"error": e.message, "url": url}, 409, {"X-Error-Message": e.message})
                return
            raise
        self._send_json({"url": url, "name": repo_id, "id": hashlib.sha1(repo_id.encode()).hexdigest()[:24]})

    def delete_repo(self) -> None:
        """`DELETE /api/repos/delete`."""
        user = self._require_user()
        payload = self._json() or {}
        repo_id = f"{payload.get('organization') or user}/{payload.get('name')}"
        self.store.delete_repo(payload.get("type") or "model", repo_id)
        self._send_json({})

    def validate_yaml(self) -> None:
        """`POST /api/validate-yaml`: accept any model card metadata."""
        self._json()
        self._send_json({"errors": [], "warnings": []})

    def info(self, plural: str, repo: str, rev: str | None = None) -> None:
        """`GET /api/{type}s/{repo_id}[/revision/{rev}]`: repo info with `sha` and `siblings`."""
        repo_obj = self._repo(TYPE_FROM_PLURAL[plural], repo)
        commit = self._commit(repo_obj, rev or DEFAULT_BRANCH)
        blobs = self._flag("blobs")
        siblings = []
        for path, entry in sorted(commit.files.items()):
            sibling: dict[str, Any] = {"rfilename": path}
            if blobs:
                sibling.update(size=entry.size, blobId=entry.blob_id)
                if entry.lfs:
                    sibling["lfs"] = {"size": entry.size, "sha256": entry.sha256, "pointerSize": entry.pointer_size}
            siblings.append(sibling)
        self._send_json(
            {
                "_id": hashlib.sha1(repo_obj.url_path.encode()).hexdigest()[:24],
                "id": repo_obj.repo_id,
                "author": repo_obj.repo_id.split("/")[0],
                "sha": commit.id,
                "lastModified": commit.date,
                "createdAt": repo_obj.created_at,
                "private": repo_obj.private,
                "gated": False,
                "disabled": False,
                "downloads": 0,
                "likes": 0,
                "tags": [],
                "siblings": siblings,
                "usedStorage": sum(entry.size for entry in commit.files.values()),
            }
        )

    def tree(self, plural: str, repo: str, rev: str, path: str | None = None) -> None:
        """`GET /api/{type}s/{repo_id}/tree/{rev}[/{path}]` (`recursive`, `expand`), one page without `Link`."""
        commit = self._commit(self._repo(TYPE_FROM_PLURAL[plural], repo), rev)
        base = (path or "").strip("/")
        if base and not any(p.startswith(base + "/") for p in commit.files):
            raise HubError(404, f"Entry not found: {base}", "EntryNotFound", {"X-Repo-Commit": commit.id})
        self._send_json(_tree_entries(commit, base, self._flag("recursive"), self._flag("expand")))

    def paths_info(self, plural: str, repo: str, rev: str) -> None:
        """`POST /api/{type}s/{repo_id}/paths-info/{rev}`: form (or JSON) `paths`, `expand`; unknown paths skipped."""
        commit = self._commit(self._repo(TYPE_FROM_PLURAL[plural], repo), rev)
        if "json" in self.headers.get("Content-Type", ""):
            form = self._json() or {}
            paths, expand = list(form.get("paths", [])), bool(form.get("expand"))
        else:
            form = parse_qs(self._body().decode(errors="replace"))
            paths, expand = form.get("paths", []), form.get("expand", ["false"])[-1].lower() == "true"
        result = []
        for path in paths:
            path = path.strip("/")
            if path in commit.files:
                result.append(_file_json(path, commit.files[path], commit if expand else None))
            elif any(p.startswith(path + "/") for p in commit.files):
                result.extend(e for e in _tree_entries(commit, "", True, expand) if e["path"] == path)
        self._send_json(result)

    def refs(self, plural: str, repo: str) -> None:
        """`GET /api/{type}s/{repo_id}/refs[?include_prs=1]`."""
        repo_obj = self._repo(TYPE_FROM_PLURAL[plural], repo)

        def listing(names: Mapping[str, str], prefix: str) -> list[dict[str, str]]:
            return [{"name": n, "ref": prefix + n, "targetCommit": c} for n, c in sorted(names.items())]

        payload: dict[str, Any] = {
            "branches": listing(repo_obj.branches, "refs/heads/"),
            "tags": listing(repo_obj.tags, "refs/tags/"),
            "converts": [],
        }
        if self._flag("include_prs"):
            payload["pullRequests"] = listing(repo_obj.pulls, "")
        self._send_json(payload)

    def commits(self, plural: str, repo: str, rev: str) -> None:
        """`GET /api/{type}s/{repo_id}/commits/{rev}`: history, newest first."""
        repo_obj = self._repo(TYPE_FROM_PLURAL[plural], repo)
        commit: Commit | None = self._commit(repo_obj, rev)
        history = []
        while commit is not None:
            history.append(
                {
                    "id": commit.id,
                    "title": commit.title,
                    "message": commit.description,
                    "authors": [{"user": commit.author, "avatar": None}],
                    "date": commit.date,
                }
            )
            commit = repo_obj.commits.get(commit.parent) if commit.parent else None
        self._send_json(history)

    def preupload(self, plural: str, repo: str, rev: str) -> None:
        """`POST /api/{type}s/{repo_id}/preupload/{rev}`: `uploadMode` (lfs/regular), `shouldIgnore`, remote `oid`."""
        self._require_user()
        commit = self._commit(self._repo(TYPE_FROM_PLURAL[plural], repo), rev)
        payload = self._json() or {}
        files = []
        for item in payload.get("files", []):
            path = _check_path(item.get("path"))
            try:
                sample = base64.b64decode(item.get("sample") or "")
            except ValueError as e:
                raise HubError(400, f"Invalid sample for {path}") from e
            mode = self.store.upload_mode(commit, path, int(item.get("size") or 0), sample)
            existing = commit.files.get(path)
            files.append(
                {
                    "path": path,
                    "uploadMode": mode,
                    "shouldIgnore": False,
                    "oid": existing.etag if existing is not None else None,
                }
            )
        self._send_json({"files": files, "commitOid": commit.id})

    def commit(self, plural: str, repo: str, rev: str) -> None:
        """`POST /api/{type}s/{repo_id}/commit/{rev}`: NDJSON header + operations."""
        user = self._require_user()
        repo_obj = self._repo(TYPE_FROM_PLURAL[plural], repo)
        header: Mapping[str, Any] | None = None
        operations: list[tuple[str, Mapping[str, Any]]] = []
        for line in self._body().splitlines():
            if not line.strip():
                continue
            try:
                item = json.loads(line)
            except ValueError as e:
                raise HubError(400, "Commit payload is not valid NDJSON") from e
            if item.get("key") == "header":
                header = item.get("value") or {}
            else:
                operations.append((item.get("key"), item.get("value") or {}))
        if header is None:
            raise HubError(400, "Commit payload has no header line")
        create_pr = self._flag("create_pr")
        commit, pr_ref = self.store.commit(repo_obj, rev, header, operations, user, create_pr)
        payload = {
            "success": True,
            "commitOid": commit.id,
            "commitUrl": f"{self.endpoint}/{repo_obj.url_path}/commit/{commit.id}",
            "hookOutput": "",
        }
        if pr_ref is not None:
            payload["pullRequestUrl"] = f"{self.endpoint}/{repo_obj.url_path}/discussions/{pr_ref.rsplit('/', 1)[1]}"
        self._send_json(payload)

    def branch(self, plural: str, repo: str, name: str) -> None:
        """`POST /api/{type}s/{repo_id}/branch/{name}` (`startingPoint`) and `DELETE` of the same."""
        self._require_user()
        repo_obj = self._repo(TYPE_FROM_PLURAL[plural], repo)
        if self.command == "DELETE":
            self.store.delete_ref(repo_obj, "branch", name)
        else:
            start = (self._json() or {}).get("startingPoint") or DEFAULT_BRANCH
            self.store.create_ref(repo_obj, "branch", name, self._commit(repo_obj, start))
        self._send_json({})

    def tag(self, plural: str, repo: str, rev: str) -> None:
        """`POST /api/{type}s/{repo_id}/tag/{rev}` (`tag`); `DELETE .../tag/{tag}`."""
        self._require_user()
        repo_obj = self._repo(TYPE_FROM_PLURAL[plural], repo)
        if self.command == "DELETE":
            self.store.delete_ref(repo_obj, "tag", rev)
        else:
            name = (self._json() or {}).get("tag")
            self.store.create_ref(repo_obj, "tag", str(name or ""), self._commit(repo_obj, rev))
        self._send_json({})

    def lfs_batch(self, prefix: str | None, repo: str) -> None:
        """`POST /{repo}.git/info/lfs/objects/batch`: basic-transfer `upload` (and `download`) actions."""
        repo_obj = self._repo(TYPE_FROM_PLURAL.get(prefix or "models", "model"), repo)
        payload = self._json() or {}
        operation = payload.get("operation")
        if operation == "upload":
            self._require_user()
        elif operation != "download":
            raise HubError(400, f"Unsupported LFS operation: {operation!r}")
        objects = []
        for obj in payload.get("objects", []):
            oid, size = obj.get("oid"), obj.get("size")
            item: dict[str, Any] = {"oid": str(oid), "size": size if isinstance(size, int) else -1}
            if not isinstance(oid, str) or not _SHA256.fullmatch(oid) or not isinstance(size, int) or size < 0:
                item["error"] = {"code": 422, "message": "Invalid oid or size"}
            elif operation == "download":
                if self.store.has_object(oid, size):
                    item["actions"] = {"download": {"href": f"{self.endpoint}/_lfs/{oid}", "header": {}}}
                else:
                    item["error"] = {"code": 404, "message": "Object does not exist"}
            elif not self.store.has_object(oid, size):
                self.store.expect_lfs(oid, size)
                item["authenticated"] = True
                item["actions"] = {
                    "upload": {"href": f"{self.endpoint}/_lfs/{oid}"},
                    "verify": {"href": f"{self.endpoint}/{repo_obj.url_path}.git/info/lfs/objects/verify"},
                }
            objects.append(item)
        body = json.dumps({"transfer": "basic", "objects": objects, "hash_algo": "sha256"}).encode()
        self._send(200, body, ctype="application/vnd.git-lfs+json")

    def lfs_verify(self, prefix: str | None, repo: str) -> None:
        """`POST /{repo}.git/info/lfs/objects/verify`: 404 unless the object was uploaded with that size."""
        self._require_user()
        self._repo(TYPE_FROM_PLURAL.get(prefix or "models", "model"), repo)
        payload = self._json() or {}
        if not self.store.has_object(str(payload.get("oid")), payload.get("size")):
            raise HubError(404, "LFS object not found")
        self._send_json({"message": "ok"})

    def lfs_object(self, oid: str) -> None:
        """`PUT /_lfs/{oid}` (the pre-signed upload URL, checked against the oid) and `GET|HEAD` of it."""
        if self.command == "PUT":
            self.store.put_stream(self._iter_body(), oid, self.store.expected_lfs_size(oid))
            self._send(200, b"", {"ETag": f'"{oid}"'})
        elif not self.store.has_object(oid):
            raise HubError(404, "LFS object not found")
        else:
            self._send_object(oid, self.store.object_path(oid).stat().st_size, {"ETag": f'"{oid}"'})

    def resolve(self, prefix: str | None, repo: str, rev: str, path: str) -> None:
        """`GET|HEAD /[{type}s/]{repo_id}/resolve/{rev}/{path}`: file content with the Hub's metadata headers."""
        repo_obj = self._repo(TYPE_FROM_PLURAL.get(prefix or "models", "model"), repo)
        commit = self._commit(repo_obj, rev)
        entry = commit.files.get(path)
        if entry is None:
            raise HubError(404, "Entry not found", "EntryNotFound", {"X-Repo-Commit": commit.id})
        headers = {"X-Repo-Commit": commit.id, "ETag": f'"{entry.etag}"'}
        if entry.lfs:
            headers.update({"X-Linked-Etag": f'"{entry.sha256}"', "X-Linked-Size": str(entry.size)})
        self._send_object(entry.sha256, entry.size, headers)


def _route(methods: str, pattern: str, func: Callable[..., None]) -> _Route:
    return frozenset(methods.split()), re.compile(pattern), func


ROUTES: list[_Route] = [
    _route("GET", r"/api/whoami-v2", _Handler.whoami),
    _route("POST", r"/api/repos/create", _Handler.create_repo),
    _route("DELETE", r"/api/repos/delete", _Handler.delete_repo),
    _route("POST", r"/api/validate-yaml", _Handler.validate_yaml),
    _route("GET", _API, _Handler.info),
    _route("GET", _API + r"/revision/(?P<rev>[^/]+)", _Handler.info),
    _route("GET", _API + r"/tree/(?P<rev>[^/]+)(?:/(?P<path>.*))?", _Handler.tree),
    _route("POST", _API + r"/paths-info/(?P<rev>[^/]+)", _Handler.paths_info),
    _route("GET", _API + r"/refs", _Handler.refs),
    _route("GET", _API + r"/commits/(?P<rev>[^/]+)", _Handler.commits),
    _route("POST", _API + r"/preupload/(?P<rev>[^/]+)", _Handler.preupload),
    _route("POST", _API + r"/commit/(?P<rev>[^/]+)", _Handler.commit),
    _route("POST DELETE", _API + r"/branch/(?P<name>[^/]+)", _Handler.branch),
    _route("POST DELETE", _API + r"/tag/(?P<rev>[^/]+)", _Handler.tag),
    _route("POST", _LFS + r"/batch", _Handler.lfs_batch),
    _route("POST", _LFS + r"/verify", _Handler.lfs_verify),
    _route("GET HEAD PUT", r"/_lfs/(?P<oid>[0-9a-f]{64})", _Handler.lfs_object),
    _route(
        "GET HEAD",
        _PREFIX + _REPO + r"/resolve/(?P<rev>[^/]+)/(?P<path>.+)",
        _Handler.resolve,
    ),
]


class HubServer:
    """A Hub-compatible server on 127.0.0.1, serving from a storage folder, in a background thread.

    Example:
        ```py
        with HubServer(tmp_path) as hub:
            subprocess.run([sys.executable, "push.py"], env=hub_env(hub.endpoint, tmp_path / "hf_home"), check=True)
            assert "model.safetensors" in hub.files("org/ftv")
        ```
    """

    def __init__(
        self,
        storage_dir: str | os.PathLike[str] | None = None,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        tokens: Mapping[str, str] | None = None,
        orgs: Iterable[str] = DEFAULT_ORGS,
        lfs_threshold: int = LFS_THRESHOLD,
    ):
        self._owns_storage = storage_dir is None
        self.storage_dir = Path(storage_dir) if storage_dir is not None else Path(tempfile.mkdtemp(prefix="hub-"))
        self.store = HubStore(self.storage_dir, lfs_threshold)
        self.host, self.port = host, port
        self.tokens = dict(DEFAULT_TOKENS if tokens is None else tokens)
        self.orgs = tuple(orgs)
        self.lock = threading.Lock()
        self.requests: list[RequestRecord] = []
        self.unhandled: list[str] = []
        self._httpd: _HubHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def endpoint(self) -> str:
        """Base URL, e.g. `http://127.0.0.1:54321` (the port is known once started)."""
        return f"http://{self.host}:{self.port}"

    def start(self) -> HubServer:
        """Bind (port 0 picks a free port) and serve in a daemon thread."""
        if self._httpd is not None:
            return self
        httpd = _HubHTTPServer((self.host, self.port), _Handler)
        httpd.hub = self
        self.port = httpd.server_address[1]
        self._httpd = httpd
        self._thread = threading.Thread(target=httpd.serve_forever, name=f"test-hub-{self.port}", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving, close the socket, and delete the storage folder if it was a temporary one."""
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            if self._thread is not None:
                self._thread.join(timeout=10)
            self._httpd = self._thread = None
        if self._owns_storage:
            shutil.rmtree(self.storage_dir, ignore_errors=True)

    def __enter__(self) -> HubServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- inspection helpers for tests ------------------------------------------------------------------------------

    def _commit(self, repo_id: str, revision: str, repo_type: str) -> Commit:
        """Commit of a repo at a revision, KeyError if missing."""
        repo = self.store.get(repo_type, repo_id)
        commit = repo.resolve(revision) if repo is not None else None
        if commit is None:
            raise KeyError(f"{repo_type} {repo_id}@{revision} not found")
        return commit

    def files(self, repo_id: str, revision: str = DEFAULT_BRANCH, repo_type: str = "model") -> dict[str, FileEntry]:
        """Files of a repo at a revision (KeyError if repo or revision is missing)."""
        return dict(self._commit(repo_id, revision, repo_type).files)

    def read_file(self, repo_id: str, path: str, revision: str = DEFAULT_BRANCH, repo_type: str = "model") -> bytes:
        """Content of a file of a repo at a revision."""
        return self.store.read_object(self._commit(repo_id, revision, repo_type).files[path].sha256)

    def revision_sha(self, repo_id: str, revision: str = DEFAULT_BRANCH, repo_type: str = "model") -> str:
        """Commit id a revision points to."""
        return self._commit(repo_id, revision, repo_type).id
