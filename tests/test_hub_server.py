"""Tests of the local Hub server (`tests/hub_server/`) with raw HTTP, `huggingface_hub` and `transformers` clients."""

from __future__ import annotations

import base64
import hashlib
import http.client
import json
import struct
import subprocess
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from tests.hub_server import DEFAULT_TOKENS, LFS_THRESHOLD, HubServer

AUTH = {"Authorization": f"Bearer {next(iter(DEFAULT_TOKENS))}"}
HubRun = Callable[..., subprocess.CompletedProcess[str]]


def _http(
    server: HubServer,
    method: str,
    path: str,
    body: bytes | Iterable[bytes] | None = None,
    headers: dict[str, str] | None = None,
) -> tuple[int, http.client.HTTPMessage, bytes]:
    """One raw request to the server (no proxies, no client library): status, headers, body.

    An iterable body is sent with chunked transfer encoding.
    """
    conn = http.client.HTTPConnection(urlsplit(server.endpoint).netloc, timeout=10)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        response = conn.getresponse()
        return response.status, response.headers, response.read()
    finally:
        conn.close()


def _ndjson(*items: dict[str, Any]) -> bytes:
    return b"".join(json.dumps(item).encode() + b"\n" for item in items)


def _last_json_line(stdout: str) -> Any:
    return json.loads(stdout.strip().splitlines()[-1])


def test_raw_http_endpoints(tmp_path: Path) -> None:
    """Auth, repo creation, commit, resolve headers, ranges, Hub error headers, and state kept across a restart."""
    with HubServer(tmp_path / "storage") as hub:
        assert _http(hub, "GET", "/api/whoami-v2")[0] == 401
        status, _, body = _http(hub, "GET", "/api/whoami-v2", headers=AUTH)
        assert status == 200 and json.loads(body)["name"] == "test-user"

        create = json.dumps({"name": "raw", "organization": "org", "type": "model"}).encode()
        assert _http(hub, "POST", "/api/repos/create", create)[0] == 401
        status, _, body = _http(hub, "POST", "/api/repos/create", create, AUTH)
        assert status == 200 and json.loads(body)["url"] == f"{hub.endpoint}/org/raw"
        status, _, body = _http(hub, "POST", "/api/repos/create", create, AUTH)
        assert status == 409 and json.loads(body)["url"] == f"{hub.endpoint}/org/raw"

        content = b"0123456789"
        encoded = base64.b64encode(content).decode()
        payload = _ndjson(
            {"key": "header", "value": {"summary": "add digits", "description": ""}},
            {"key": "file", "value": {"path": "dir/digits.txt", "content": encoded, "encoding": "base64"}},
        )
        status, _, body = _http(hub, "POST", "/api/models/org/raw/commit/main", payload, AUTH)
        assert status == 200, body
        sha = json.loads(body)["commitOid"]
        assert len(sha) == 40 and hub.revision_sha("org/raw") == sha

        status, headers, body = _http(hub, "HEAD", "/org/raw/resolve/main/dir/digits.txt")
        assert status == 200 and body == b""
        assert headers["X-Repo-Commit"] == sha
        assert headers["Content-Length"] == "10"
        assert headers["ETag"] == f'"{hub.files("org/raw")["dir/digits.txt"].blob_id}"'
        assert "X-Linked-Etag" not in headers

        status, headers, body = _http(
            hub, "GET", "/org/raw/resolve/main/dir/digits.txt", headers={"Range": "bytes=2-4"}
        )
        assert (status, body, headers["Content-Range"]) == (206, b"234", "bytes 2-4/10")
        status, headers, body = _http(
            hub, "GET", f"/org/raw/resolve/{sha}/dir/digits.txt", headers={"Range": "bytes=-3"}
        )
        assert (status, body) == (206, b"789")
        assert _http(hub, "GET", "/org/raw/resolve/main/dir/digits.txt", headers={"Range": "bytes=10-"})[0] == 416

        status, headers, _ = _http(hub, "GET", "/org/nope/resolve/main/x.txt")
        assert (status, headers["X-Error-Code"]) == (404, "RepoNotFound")
        status, headers, _ = _http(hub, "HEAD", "/org/raw/resolve/main/nope.txt")
        assert (status, headers["X-Error-Code"], headers["X-Repo-Commit"]) == (404, "EntryNotFound", sha)
        status, headers, _ = _http(hub, "GET", "/org/raw/resolve/nope/dir/digits.txt")
        assert (status, headers["X-Error-Code"]) == (404, "RevisionNotFound")
        status, headers, _ = _http(hub, "GET", "/api/models/org/nope")
        assert (status, headers["X-Error-Code"]) == (404, "RepoNotFound")
        assert hub.unhandled == []

    with HubServer(tmp_path / "storage") as restarted:
        assert restarted.read_file("org/raw", "dir/digits.txt") == content
        status, _, body = _http(restarted, "GET", "/api/models/org/raw")
        assert status == 200 and json.loads(body)["sha"] == sha


def test_raw_http_lfs_flow(hub_server: HubServer) -> None:
    """Preupload modes, LFS batch + chunked PUT + verify, lfsFile commit, LFS resolve headers, tree and paths-info."""
    create = json.dumps({"name": "rawlfs", "organization": "org"}).encode()
    assert _http(hub_server, "POST", "/api/repos/create", create, AUTH)[0] == 200
    data = b"pretend these are weights"
    oid = hashlib.sha256(data).hexdigest()

    def sample(content: bytes) -> str:
        return base64.b64encode(content).decode()

    files = [
        {"path": "w.safetensors", "sample": sample(data), "size": len(data)},
        {"path": "notes.md", "sample": sample(b"hi"), "size": 2},
        {"path": "raw.dat", "sample": sample(b"\x00\x01"), "size": 2},
        {"path": "huge.txt", "sample": sample(b"aaa"), "size": LFS_THRESHOLD},
    ]
    body = json.dumps({"files": files}).encode()
    status, _, answer = _http(hub_server, "POST", "/api/models/org/rawlfs/preupload/main", body, AUTH)
    assert status == 200
    modes = {f["path"]: f["uploadMode"] for f in json.loads(answer)["files"]}
    assert modes == {"w.safetensors": "lfs", "notes.md": "regular", "raw.dat": "lfs", "huge.txt": "lfs"}

    batch = json.dumps({"operation": "upload", "transfers": ["basic"], "objects": [{"oid": oid, "size": len(data)}]})
    status, _, answer = _http(hub_server, "POST", "/org/rawlfs.git/info/lfs/objects/batch", batch.encode(), AUTH)
    assert status == 200
    (obj,) = json.loads(answer)["objects"]
    upload, verify = obj["actions"]["upload"]["href"], obj["actions"]["verify"]["href"]
    assert upload.startswith(hub_server.endpoint) and verify.startswith(hub_server.endpoint)
    assert _http(hub_server, "PUT", urlsplit(upload).path, b"wrong content")[0] == 400
    assert _http(hub_server, "PUT", urlsplit(upload).path, iter([data[:7], data[7:]]))[0] == 200  # chunked
    verify_body = json.dumps({"oid": oid, "size": len(data)}).encode()
    assert _http(hub_server, "POST", urlsplit(verify).path, verify_body, AUTH)[0] == 200
    status, _, answer = _http(hub_server, "POST", "/org/rawlfs.git/info/lfs/objects/batch", batch.encode(), AUTH)
    assert "actions" not in json.loads(answer)["objects"][0]  # already stored: nothing to upload

    missing = {"key": "lfsFile", "value": {"path": "x.bin", "algo": "sha256", "oid": "0" * 64, "size": 1}}
    header = {"key": "header", "value": {"summary": "add weights"}}
    assert _http(hub_server, "POST", "/api/models/org/rawlfs/commit/main", _ndjson(header, missing), AUTH)[0] == 400
    add = {"key": "lfsFile", "value": {"path": "sub/w.safetensors", "algo": "sha256", "oid": oid, "size": len(data)}}
    status, _, answer = _http(hub_server, "POST", "/api/models/org/rawlfs/commit/main", _ndjson(header, add), AUTH)
    assert status == 200, answer

    status, headers, _ = _http(hub_server, "HEAD", "/org/rawlfs/resolve/main/sub/w.safetensors")
    assert status == 200
    assert headers["ETag"] == headers["X-Linked-Etag"] == f'"{oid}"'
    assert headers["X-Linked-Size"] == headers["Content-Length"] == str(len(data))
    assert _http(hub_server, "GET", "/org/rawlfs/resolve/main/sub/w.safetensors")[2] == data

    status, _, answer = _http(hub_server, "GET", "/api/models/org/rawlfs/tree/main")
    assert [(e["type"], e["path"]) for e in json.loads(answer)] == [("file", ".gitattributes"), ("directory", "sub")]
    status, _, answer = _http(hub_server, "GET", "/api/models/org/rawlfs/tree/main/sub?recursive=true")
    (entry,) = json.loads(answer)
    assert entry["path"] == "sub/w.safetensors" and entry["lfs"]["oid"] == oid and entry["size"] == len(data)
    form = b"paths=sub%2Fw.safetensors&paths=nope&expand=false"
    form_headers = {"Content-Type": "application/x-www-form-urlencoded"}
    status, _, answer = _http(hub_server, "POST", "/api/models/org/rawlfs/paths-info/main", form, form_headers)
    assert [e["path"] for e in json.loads(answer)] == ["sub/w.safetensors"]


def test_huggingface_hub_push_and_pull_two_revisions(hub_server: HubServer, hub_run: HubRun) -> None:
    """upload_folder (regular + LFS files), a second commit, then downloads of both revisions."""
    code = """
    import json, os
    from pathlib import Path
    from huggingface_hub import CommitOperationAdd, CommitOperationDelete, HfApi, hf_hub_download, snapshot_download

    api = HfApi()
    assert api.whoami()["name"] == "test-user"
    url = api.create_repo("org/roundtrip")
    assert url.repo_id == "org/roundtrip" and api.create_repo("org/roundtrip", exist_ok=True) == url

    folder = Path("folder")
    (folder / "sub").mkdir(parents=True)
    (folder / "notes.txt").write_text("first version\\n")
    big = os.urandom(LFS_THRESHOLD + 12345)
    (folder / "big.bin").write_bytes(big)
    (folder / "sub" / "weights.safetensors").write_bytes(b"not really safetensors")
    first = api.upload_folder(repo_id="org/roundtrip", folder_path=folder, commit_message="first")
    info1 = api.model_info("org/roundtrip", files_metadata=True)
    siblings = {s.rfilename: {"size": s.size, "lfs": s.lfs is not None} for s in info1.siblings}

    second = api.create_commit(
        repo_id="org/roundtrip",
        commit_message="second",
        operations=[
            CommitOperationAdd("notes.txt", b"second version\\n"),
            CommitOperationAdd("big.bin", folder / "big.bin"),  # unchanged: dropped before upload
            CommitOperationDelete("sub/weights.safetensors"),
        ],
    )
    # same folder again: nothing changed, no new commit
    again = api.upload_folder(repo_id="org/roundtrip", folder_path=folder, path_in_repo="", allow_patterns="big.bin")

    def read(revision, name):
        return Path(hf_hub_download("org/roundtrip", name, revision=revision)).read_bytes()

    snap1 = Path(snapshot_download("org/roundtrip", revision=first.oid))
    snap2 = Path(snapshot_download("org/roundtrip"))
    print(json.dumps({
        "first": first.oid,
        "second": second.oid,
        "again": again.oid,
        "info_sha": info1.sha,
        "siblings": siblings,
        "notes_v1": read(first.oid, "notes.txt").decode(),
        "notes_v2": read(None, "notes.txt").decode(),
        "big_ok": read(first.oid, "big.bin") == big and read("main", "big.bin") == big,
        "snap1": sorted(str(p.relative_to(snap1)) for p in snap1.rglob("*") if p.is_file()),
        "snap2": sorted(str(p.relative_to(snap2)) for p in snap2.rglob("*") if p.is_file()),
        "snap2_notes": (snap2 / "notes.txt").read_text(),
        "files_v1": api.list_repo_files("org/roundtrip", revision=first.oid),
        "commits": [c.title for c in api.list_repo_commits("org/roundtrip")],
    }))
    """.replace("LFS_THRESHOLD", str(LFS_THRESHOLD))
    out = _last_json_line(hub_run(code, check=True).stdout)

    assert out["first"] == out["info_sha"] != out["second"] == out["again"]
    assert out["second"] == hub_server.revision_sha("org/roundtrip")
    assert out["siblings"] == {
        ".gitattributes": {"size": len(hub_server.read_file("org/roundtrip", ".gitattributes")), "lfs": False},
        "notes.txt": {"size": 14, "lfs": False},
        "big.bin": {"size": LFS_THRESHOLD + 12345, "lfs": True},
        "sub/weights.safetensors": {"size": 22, "lfs": True},
    }
    assert out["notes_v1"] == "first version\n"
    assert out["notes_v2"] == out["snap2_notes"] == "second version\n"
    assert out["big_ok"]
    assert out["snap1"] == [".gitattributes", "big.bin", "notes.txt", "sub/weights.safetensors"]
    assert out["snap2"] == [".gitattributes", "big.bin", "notes.txt"]
    assert out["files_v1"] == out["snap1"]
    assert out["commits"] == ["second", "first", "initial commit"]

    files = hub_server.files("org/roundtrip", out["first"])
    assert files["big.bin"].lfs and files["sub/weights.safetensors"].lfs and not files["notes.txt"].lfs
    puts = [r.path for r in hub_server.requests if r.method == "PUT" and r.status == 200]
    assert f"/_lfs/{files['big.bin'].sha256}" in puts
    assert puts.count(f"/_lfs/{files['big.bin'].sha256}") == 1  # the unchanged big file was uploaded once
    assert hub_server.unhandled == []


def test_huggingface_hub_errors(hub_run: HubRun) -> None:
    """Missing repos, files and revisions raise the usual huggingface_hub errors; private repos need the token."""
    code = """
    import json
    from huggingface_hub import HfApi, file_exists, hf_hub_download, repo_exists, snapshot_download
    from huggingface_hub.errors import (
        EntryNotFoundError, RemoteEntryNotFoundError,
    )

    api = HfApi()
    api.create_repo("org/errors")
    api.upload_file(path_or_fileobj=b"a", path_in_repo="a.txt", repo_id="org/errors")
    api.create_repo("org/secret", private=True)
    api.upload_file(path_or_fileobj=b"s", path_in_repo="s.txt", repo_id="org/secret")

    def raised(fn):
        try:
            fn()
        except Exception as e:
            return type(e).__name__
        return None

    print(json.dumps({
        "info": raised(lambda: api.model_info("org/nope")),
        "snapshot": raised(lambda: snapshot_download("org/nope")),
        "download_repo": raised(lambda: hf_hub_download("org/nope", "a.txt")),
        "download_file": raised(lambda: hf_hub_download("org/errors", "nope.txt")),
        "download_revision": raised(lambda: hf_hub_download("org/errors", "a.txt", revision="nope")),
        "create_existing": raised(lambda: api.create_repo("org/errors")),
        "bad_token": raised(lambda: api.whoami(token="hf_wrong")),
        "private_anonymous": raised(lambda: hf_hub_download("org/secret", "s.txt", token=False)),
        "private_with_token": open(hf_hub_download("org/secret", "s.txt")).read(),
        "exists": [repo_exists("org/errors"), repo_exists("org/nope"), file_exists("org/errors", "a.txt"),
                   file_exists("org/errors", "b.txt")],
        "is_entry_error": issubclass(RemoteEntryNotFoundError, EntryNotFoundError),
    }))
    """
    out = _last_json_line(hub_run(code, check=True).stdout)
    assert out == {
        "info": "RepositoryNotFoundError",
        "snapshot": "RepositoryNotFoundError",
        "download_repo": "RepositoryNotFoundError",
        "download_file": "RemoteEntryNotFoundError",
        "download_revision": "RevisionNotFoundError",
        "create_existing": "HfHubHTTPError",
        "bad_token": "HfHubHTTPError",
        "private_anonymous": "RepositoryNotFoundError",
        "private_with_token": "s",
        "exists": [True, False, True, False],
        "is_entry_error": True,
    }


def _safetensors_keys(data: bytes) -> set[str]:
    """Tensor names in a safetensors file (8-byte little-endian header length, then a JSON header)."""
    (header_len,) = struct.unpack("<Q", data[:8])
    return set(json.loads(data[8 : 8 + header_len])) - {"__metadata__"}


def test_transformers_push_to_hub_and_from_pretrained(hub_server: HubServer, hub_run: HubRun, tmp_path: Path) -> None:
    """A tiny BertModel pushed with `push_to_hub` comes back identical from `AutoModel.from_pretrained`."""
    push = """
    import torch
    from safetensors.torch import save_file
    from transformers import BertConfig, BertModel

    torch.manual_seed(0)
    config = BertConfig(vocab_size=99, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=37)
    model = BertModel(config)
    commit = model.push_to_hub("org/tiny", token="hf_test")
    print("pushed", commit.oid)
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, "reference.safetensors")
    """
    hub_run(push, hf_home=tmp_path / "push_home", check=True)

    files = hub_server.files("org/tiny")
    assert {"config.json", "model.safetensors", "README.md"} <= set(files)
    assert not any(name.endswith((".bin", ".pt", ".pth")) for name in files)
    assert files["model.safetensors"].lfs and not files["config.json"].lfs
    weights = hub_server.read_file("org/tiny", "model.safetensors")
    assert "embeddings.word_embeddings.weight" in _safetensors_keys(weights)
    assert json.loads(hub_server.read_file("org/tiny", "config.json"))["hidden_size"] == 32

    load = """
    import torch
    from safetensors.torch import load_file
    from transformers import AutoModel

    reference = load_file("reference.safetensors")
    model = AutoModel.from_pretrained("org/tiny")
    state = model.state_dict()
    assert type(model).__name__ == "BertModel", type(model)
    assert set(state) == set(reference), set(state) ^ set(reference)
    for name, tensor in reference.items():
        assert torch.equal(state[name], tensor), name
    try:
        AutoModel.from_pretrained("org/does-not-exist")
    except OSError as e:
        assert "not a valid model identifier" in str(e), e
    else:
        raise AssertionError("missing repo did not raise")
    print("identical")
    """
    result = hub_run(load, hf_home=tmp_path / "load_home", check=True)  # fresh cache: everything is downloaded
    assert result.stdout.strip().splitlines()[-1] == "identical"
    downloads = {r.path for r in hub_server.requests if r.method == "GET" and "/org/tiny/resolve/" in r.path}
    assert any(path.endswith("/model.safetensors") for path in downloads)
    assert hub_server.unhandled == []
