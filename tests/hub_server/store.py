"""Content and repo storage: objects on disk by sha256, repo metadata in memory and in `state.json`."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from fnmatch import fnmatchcase
from pathlib import Path, PurePosixPath
from typing import Any

from .revisions import (
    DEFAULT_BRANCH,
    DEFAULT_GITATTRIBUTES,
    SHA256_HEX,
    Commit,
    FileEntry,
    HubError,
    Repo,
    now_timestamp,
)

LFS_THRESHOLD = 10 * 1024 * 1024
"""Files this large (bytes) or larger are stored with LFS whatever their name."""


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


def check_path(path: Any) -> str:
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
            repo = Repo(repo_type=repo_type, repo_id=repo_id, private=private, created_at=now_timestamp())
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
            path = check_path(value.get("path"))
            content = value.get("content", "")
            encoding = value.get("encoding", "utf-8")
            try:
                data = base64.b64decode(content, validate=True) if encoding == "base64" else str(content).encode()
            except ValueError as e:
                raise HubError(400, f"Invalid base64 content for {path}") from e
            files[path] = FileEntry.regular(data, self.put_bytes(data))
        elif key == "lfsFile":
            path = check_path(value.get("path"))
            oid = str(value.get("oid", ""))
            size = value.get("size")
            if value.get("algo", "sha256") != "sha256" or not SHA256_HEX.fullmatch(oid):
                raise HubError(400, f"Invalid LFS oid for {path}: {oid!r}")
            if not self.has_object(oid, size if isinstance(size, int) else None):
                raise HubError(400, f"LFS object {oid} for {path} has not been uploaded")
            files[path] = FileEntry.large(oid, self.object_path(oid).stat().st_size)
        elif key == "deletedFile":
            path = check_path(value.get("path"))
            if files.pop(path, None) is None:
                raise HubError(404, f"A file with this name doesn't exist: {path}", "EntryNotFound")
        elif key == "deletedFolder":
            prefix = check_path(str(value.get("path", "")).rstrip("/")) + "/"
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
            id=cid,
            parent=parent,
            title=title,
            description=description,
            author=author,
            date=now_timestamp(),
            files=files,
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
