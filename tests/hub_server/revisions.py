"""Repos as the Hub shows them: git-like commits with file listings, branches, tags and PR refs.

Only metadata lives here (content is addressed by sha256 and stored by `store.HubStore`); a commit holds the full file
listing, so any revision can be served without replaying history.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

DEFAULT_BRANCH = "main"

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
SHA256_HEX = re.compile(r"[0-9a-f]{64}")
"""A sha256 hex digest, the form of LFS object ids."""
_COMMIT_ID = re.compile(r"[0-9a-f]{40}")


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


def now_timestamp() -> str:
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
