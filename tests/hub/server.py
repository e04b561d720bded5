"""A small in-memory Hugging Face Hub for tests: the parts of the Hub HTTP API that `huggingface_hub` 2.x calls.

It speaks what the real client code paths need, so `HfApi.create_repo`, `upload_folder`/`create_commit` (preupload,
LFS batch + PUT + verify, the ndjson commit), `hf_hub_download`/`from_pretrained("<id>")` (HEAD/GET resolve with
`X-Repo-Commit`, `ETag`, `X-Linked-Etag`, `X-Linked-Size`), `list_repo_tree` (with `Link` pagination),
`get_paths_info`, `repo_info` and `datasets.load_dataset("<id>")` run unchanged against it. Point a client at it with
``HF_ENDPOINT=<server.url>`` and ``HF_HUB_DISABLE_XET=1`` set before `huggingface_hub` is imported.

Accounts are tokens mapped to a user and the user's organisations (with the role there); a missing or unknown token
gets 401 where the Hub wants one, writing outside the user's namespace or into an org with only read access gets 403,
and private repos are invisible (404) to everyone else. `fail_next` and `drop_next` inject server errors and dropped
connections, `slow_down` a slow answer. Storage is in memory: repo -> commits -> {path: bytes}.

Example:
    >>> with HubServer({"hf_alice": Account("alice", orgs={"acme": "write"})}) as hub:
    ...     hub.url          # e.g. http://127.0.0.1:40321 -> HF_ENDPOINT
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import PurePosixPath
from typing import Any
from urllib.parse import parse_qs, unquote, urlencode, urlsplit

import yaml

LFS_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".ckpt", ".png", ".jpg", ".parquet", ".arrow", ".zip", ".gz")
LFS_MIN_SIZE = 10 * 1024 * 1024  # the Hub stores files of 10 MB and more in LFS
WRITE_ROLES = ("admin", "write", "contributor")
REPO_TYPES = {"models": "model", "datasets": "dataset", "spaces": "space"}
URL_PREFIXES = {"model": "", "dataset": "datasets/", "space": "spaces/"}


@dataclass
class Account:
    """Who a token belongs to: a user, their organisations with the role there, and the token's own role."""

    name: str
    orgs: dict[str, str] = field(default_factory=dict)  # org name -> "admin" | "write" | "contributor" | "read"
    token_role: str = "write"  # "read" tokens cannot write anywhere


@dataclass
class Commit:
    oid: str
    title: str
    files: dict[str, bytes]
    date: str


@dataclass
class Repo:
    repo_type: str
    repo_id: str
    private: bool
    commits: list[Commit] = field(default_factory=list)

    @property
    def head(self) -> Commit:
        return self.commits[-1]

    def at(self, revision: str) -> Commit | None:
        """The commit a revision names: `main`, a full or a 7+ character commit id; None when unknown."""
        revision = unquote(revision)
        if revision in ("main", "refs/heads/main"):
            return self.head
        if len(revision) >= 7:
            return next((c for c in reversed(self.commits) if c.oid.startswith(revision)), None)
        return None


class ApiError(Exception):
    """An HTTP error answer, with the Hub's `X-Error-Code` when it has one."""

    def __init__(
        self,
        status: int,
        message: str,
        code: str | None = None,
        headers: dict[str, str] | None = None,
        body: dict[str, Any] | None = None,
    ):
        super().__init__(message)
        self.status, self.message, self.code = status, message, code
        self.headers, self.body = headers or {}, body or {}


def git_blob_sha1(data: bytes) -> str:
    """The git object id of a blob (what the Hub reports as a regular file's oid and ETag)."""
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def lfs_pointer(data: bytes) -> bytes:
    """The git-lfs pointer file that stands in the git tree for an LFS file."""
    oid = hashlib.sha256(data).hexdigest()
    return f"version https://git-lfs.github.com/spec/v1\noid sha256:{oid}\nsize {len(data)}\n".encode()


def is_lfs(path: str, data_or_sample: bytes, size: int) -> bool:
    """The Hub's rule of thumb: binary-looking content, big files and known binary suffixes go to LFS."""
    return path.lower().endswith(LFS_SUFFIXES) or size >= LFS_MIN_SIZE or b"\0" in data_or_sample[:512]


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")


def _new_oid() -> str:
    return hashlib.sha1(uuid.uuid4().bytes).hexdigest()


# --------------------------------------------------------------------------- the server


class HubServer:
    """A threaded HTTP server on 127.0.0.1 holding repos in memory (use as a context manager or start/stop).

    Args:
        accounts: token -> Account.
        tree_page_size: entries per page of the tree listing (the Hub uses 1000; small values test pagination).
    """

    def __init__(self, accounts: dict[str, Account] | None = None, tree_page_size: int = 1000):
        self.accounts = dict(accounts or {})
        self.tree_page_size = tree_page_size
        self.repos: dict[tuple[str, str], Repo] = {}
        self.lfs_objects: dict[str, bytes] = {}
        self.log: list[tuple[str, str, int]] = []  # (method, path, status) of every answered request
        self.tokens_seen: list[tuple[str, str | None]] = []  # (path, bearer token or None) of every request
        self._faults: list[tuple[str, int, str | None]] = []  # ("fail", status, path part) / ("drop", 0, part)
        self.delays: dict[str, float] = {}  # path part -> seconds every matching request waits before its answer
        self._lock = threading.RLock()
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # ---- lifecycle

    @property
    def url(self) -> str:
        assert self._httpd is not None, "the server is not started"
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> HubServer:
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self._httpd.daemon_threads = True
        self._httpd.hub = self  # type: ignore[attr-defined]
        self._thread = threading.Thread(target=self._httpd.serve_forever, args=(0.05,), name="hub-server", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None

    def __enter__(self) -> HubServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ---- fault injection

    def fail_next(self, n: int, status: int = 500, path: str | None = None) -> None:
        """Answer the next n requests (whose path contains `path`, when given) with `status`."""
        with self._lock:
            self._faults += [("fail", status, path)] * n

    def drop_next(self, n: int, path: str | None = None) -> None:
        """Close the connection of the next n requests (whose path contains `path`) without answering."""
        with self._lock:
            self._faults += [("drop", 0, path)] * n

    def slow_down(self, path: str, seconds: float) -> None:
        """Answer every request whose path contains `path` only after `seconds` (a slow Hub; until cleared)."""
        with self._lock:
            self.delays[path] = seconds

    def clear_faults(self) -> None:
        with self._lock:
            self._faults.clear()
            self.delays.clear()

    def _delay(self, path: str) -> float:
        with self._lock:
            return sum(seconds for part, seconds in self.delays.items() if part in path)

    def _take_fault(self, path: str) -> tuple[str, int] | None:
        with self._lock:
            for i, (kind, status, part) in enumerate(self._faults):
                if part is None or part in path:
                    del self._faults[i]
                    return kind, status
        return None

    # ---- direct access for tests

    def add_repo(
        self,
        repo_id: str,
        files: dict[str, bytes] | None = None,
        repo_type: str = "model",
        private: bool = False,
    ) -> Repo:
        """Create a repo with one commit holding `files`, without going through HTTP (test set-up)."""
        with self._lock:
            repo = Repo(repo_type, repo_id, private)
            repo.commits.append(Commit(_new_oid(), "initial commit", {".gitattributes": b""}, _now()))
            self.repos[(repo_type, repo_id)] = repo
            if files:
                self._commit(repo, "add files", {**repo.head.files, **files})
            return repo

    def files(self, repo_id: str, repo_type: str = "model") -> dict[str, bytes]:
        """The files at the head of a repo."""
        return dict(self.repos[(repo_type, repo_id)].head.files)

    def requests(self, path_part: str = "", method: str | None = None) -> list[tuple[str, str, int]]:
        """Logged requests whose path contains path_part (and of that method)."""
        return [r for r in self.log if path_part in r[1] and (method is None or r[0] == method)]

    # ---- model

    def _commit(self, repo: Repo, title: str, files: dict[str, bytes]) -> Commit:
        commit = Commit(_new_oid(), title, files, _now())
        repo.commits.append(commit)
        for path, data in files.items():
            if is_lfs(path, data, len(data)):
                self.lfs_objects.setdefault(hashlib.sha256(data).hexdigest(), data)
        return commit

    def account(self, request: Request, required: bool = True) -> Account | None:
        """The caller's account: 401 for an unknown token, and for no token when one is required."""
        token = request.token
        if token is None:
            if required:
                raise ApiError(401, "Authorization header is required", headers={"X-Error-Message": "Unauthorized"})
            return None
        if token not in self.accounts:
            raise ApiError(401, "Invalid credentials in Authorization header")
        return self.accounts[token]

    def can_read(self, repo: Repo, account: Account | None) -> bool:
        if not repo.private:
            return True
        namespace = repo.repo_id.split("/")[0]
        return account is not None and (namespace == account.name or namespace in account.orgs)

    def check_write(self, account: Account, namespace: str, what: str) -> None:
        """403 unless the token may write and the namespace is the user's or an org where they can write."""
        if account.token_role != "write":
            raise ApiError(403, f"You have read access but not the required permissions for this operation ({what})")
        if namespace == account.name or account.orgs.get(namespace) in WRITE_ROLES:
            return
        raise ApiError(403, f'You don\'t have the rights to {what} under the namespace "{namespace}"')

    def find_repo(self, request: Request, repo_type: str, repo_id: str, write: bool = False) -> Repo:
        """The repo, if the caller may see it (404/401 RepoNotFound otherwise) and write to it when asked."""
        account = self.account(request, required=write)
        repo = self.repos.get((repo_type, repo_id))
        if repo is None or not self.can_read(repo, account):
            status = 401 if account is None else 404
            raise ApiError(status, "Repository not found", code="RepoNotFound")
        if write:
            assert account is not None
            self.check_write(account, repo_id.split("/")[0], f"write to {repo_id}")
        return repo

    def commit_at(self, repo: Repo, revision: str) -> Commit:
        commit = repo.at(revision)
        if commit is None:
            raise ApiError(404, f"Invalid rev id: {unquote(revision)}", code="RevisionNotFound")
        return commit

    def repo_url(self, repo_type: str, repo_id: str) -> str:
        return f"{self.url}/{URL_PREFIXES[repo_type]}{repo_id}"


# --------------------------------------------------------------------------- requests and routes


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: Any
    body: bytes
    params: dict[str, str]

    @property
    def token(self) -> str | None:
        auth = self.headers.get("Authorization") or ""
        return auth[7:].strip() if auth.lower().startswith("bearer ") else None

    def json(self) -> Any:
        return json.loads(self.body or b"{}")

    def flag(self, name: str) -> bool:
        return (self.query.get(name) or ["false"])[0].lower() in ("1", "true")


@dataclass
class Response:
    status: int = 200
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)

    @classmethod
    def json(cls, data: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
        body = json.dumps(data).encode()
        return cls(status, body, {"Content-Type": "application/json", **(headers or {})})


Handler = Callable[[HubServer, Request], Response]
ROUTES: list[tuple[str, re.Pattern[str], Handler]] = []
_REPO = r"(?P<repo_id>[^/]+/[^/]+)"
_TYPE = r"(?P<type>models|datasets|spaces)"


def route(methods: str, pattern: str) -> Callable[[Handler], Handler]:
    """Register a handler for the methods ("GET HEAD") and a path regex (named groups become params)."""

    def register(handler: Handler) -> Handler:
        for method in methods.split():
            ROUTES.append((method, re.compile(f"^{pattern}$"), handler))
        return handler

    return register


@route("GET", "/api/whoami-v2")
def whoami(hub: HubServer, req: Request) -> Response:
    account = hub.account(req)
    assert account is not None
    orgs = [
        {"type": "org", "name": org, "fullname": org.title(), "roleInOrg": role} for org, role in account.orgs.items()
    ]
    token_info = {"displayName": "test token", "role": account.token_role}
    return Response.json(
        {
            "type": "user",
            "id": hashlib.md5(account.name.encode()).hexdigest()[:24],
            "name": account.name,
            "fullname": account.name.title(),
            "orgs": orgs,
            "auth": {"type": "access_token", "accessToken": token_info},
        }
    )


@route("GET", "/api/agent-harnesses")
def agent_harnesses(hub: HubServer, req: Request) -> Response:
    """huggingface_hub asks for this registry once (to describe the caller in its user agent)."""
    return Response.json({"standardEnvVars": [], "harnesses": {}})


@route("POST", "/api/repos/create")
def create_repo(hub: HubServer, req: Request) -> Response:
    account = hub.account(req)
    assert account is not None
    payload = req.json()
    repo_type = payload.get("type") or "model"
    namespace = payload.get("organization") or account.name
    repo_id = f"{namespace}/{payload['name']}"
    hub.check_write(account, namespace, f"create a {repo_type}")
    with hub._lock:
        if (repo_type, repo_id) in hub.repos:
            url = hub.repo_url(repo_type, repo_id)  # the client reads it when exist_ok=True
            raise ApiError(409, f"You already created this {repo_type} repo", body={"url": url})
        private = payload.get("visibility") == "private" or bool(payload.get("private"))
        hub.add_repo(repo_id, repo_type=repo_type, private=private)
    return Response.json({"url": hub.repo_url(repo_type, repo_id), "name": repo_id, "id": _new_oid()[:24]})


@route("POST", "/api/validate-yaml")
def validate_yaml(hub: HubServer, req: Request) -> Response:
    content = req.json().get("content", "")
    match = re.match(r"^---\s*\n(.*?)\n---\s*\n", content, re.DOTALL)
    try:
        metadata = yaml.safe_load(match.group(1)) if match else {}
    except yaml.YAMLError as exc:
        return Response.json({"errors": [{"message": f"Invalid YAML: {exc}"}], "warnings": []}, status=400)
    if metadata is not None and not isinstance(metadata, dict):
        return Response.json({"errors": [{"message": "metadata must be a mapping"}], "warnings": []}, status=400)
    return Response.json({"errors": [], "warnings": []})


@route("GET", f"/api/{_TYPE}/{_REPO}(?:/revision/(?P<revision>[^/]+))?")
def repo_info(hub: HubServer, req: Request) -> Response:
    repo_type = REPO_TYPES[req.params["type"]]
    repo = hub.find_repo(req, repo_type, req.params["repo_id"])
    commit = hub.commit_at(repo, req.params.get("revision") or "main")
    blobs = req.flag("blobs")
    siblings = [
        {"rfilename": path, **(_blob_info(path, data) if blobs else {})} for path, data in sorted(commit.files.items())
    ]
    namespace = repo.repo_id.split("/")[0]
    return Response.json(
        {
            "_id": hashlib.md5(repo.repo_id.encode()).hexdigest()[:24],
            "id": repo.repo_id,
            "author": namespace,
            "sha": commit.oid,
            "lastModified": commit.date,
            "createdAt": repo.commits[0].date,
            "private": repo.private,
            "disabled": False,
            "gated": False,
            "downloads": 0,
            "likes": 0,
            "tags": [],
            "siblings": siblings,
        }
    )


def _blob_info(path: str, data: bytes) -> dict[str, Any]:
    info: dict[str, Any] = {"size": len(data), "blobId": git_blob_sha1(data)}
    if is_lfs(path, data, len(data)):
        pointer = lfs_pointer(data)
        info.update(
            blobId=git_blob_sha1(pointer),
            lfs={"sha256": hashlib.sha256(data).hexdigest(), "size": len(data), "pointerSize": len(pointer)},
        )
    return info


@route("POST", f"/api/{_TYPE}/{_REPO}/preupload/(?P<revision>[^/]+)")
def preupload(hub: HubServer, req: Request) -> Response:
    repo = hub.find_repo(req, REPO_TYPES[req.params["type"]], req.params["repo_id"], write=True)
    head = hub.commit_at(repo, req.params["revision"])
    files = []
    for item in req.json().get("files", []):
        sample = base64.b64decode(item.get("sample", ""))
        mode = "lfs" if is_lfs(item["path"], sample, int(item.get("size", 0))) else "regular"
        existing = head.files.get(item["path"])
        oid = None
        if existing is not None:
            oid = hashlib.sha256(existing).hexdigest() if mode == "lfs" else git_blob_sha1(existing)
        files.append({"path": item["path"], "uploadMode": mode, "shouldIgnore": False, "oid": oid})
    return Response.json({"files": files, "commitOid": head.oid})


@route("POST", f"/api/{_TYPE}/{_REPO}/commit/(?P<revision>[^/]+)")
def commit(hub: HubServer, req: Request) -> Response:
    repo_type = REPO_TYPES[req.params["type"]]
    repo = hub.find_repo(req, repo_type, req.params["repo_id"], write=True)
    if unquote(req.params["revision"]) not in ("main", "refs/heads/main"):
        raise ApiError(404, f"Invalid rev id: {req.params['revision']}", code="RevisionNotFound")
    lines = [json.loads(line) for line in req.body.splitlines() if line.strip()]
    if not lines or lines[0].get("key") != "header":
        raise ApiError(400, "the first ndjson line must be the commit header")
    header = lines[0]["value"]
    with hub._lock:
        parent = header.get("parentCommit")
        if parent and not repo.head.oid.startswith(parent):
            raise ApiError(412, "A commit has happened since. Please refresh and try again.")
        files = dict(repo.head.files)
        for line in lines[1:]:
            key, value = line["key"], line["value"]
            path = value["path"]
            if key == "file":
                files[path] = base64.b64decode(value["content"])
            elif key == "lfsFile":
                if value["oid"] not in hub.lfs_objects:
                    raise ApiError(422, f"LFS object {value['oid']} for {path} was never uploaded")
                files[path] = hub.lfs_objects[value["oid"]]
            elif key == "deletedFile":
                if files.pop(path, None) is None:
                    raise ApiError(404, "A file with this name doesn't exist", code="EntryNotFound")
            elif key == "deletedFolder":
                files = {p: d for p, d in files.items() if not p.startswith(path.rstrip("/") + "/")}
            else:
                raise ApiError(400, f"unknown commit operation {key!r}")
        new = hub._commit(repo, header.get("summary") or "commit", files)
    commit_url = f"{hub.repo_url(repo_type, repo.repo_id)}/commit/{new.oid}"
    return Response.json({"success": True, "commitOid": new.oid, "commitUrl": commit_url, "pullRequestUrl": None})


@route("POST", r"/(?P<prefix>datasets/|spaces/)?" + _REPO + r"\.git/info/lfs/objects/batch")
def lfs_batch(hub: HubServer, req: Request) -> Response:
    repo_type = {"datasets/": "dataset", "spaces/": "space"}.get(req.params.get("prefix") or "", "model")
    repo_id = req.params["repo_id"]
    payload = req.json()
    hub.find_repo(req, repo_type, repo_id, write=payload.get("operation") == "upload")
    objects = []
    for obj in payload.get("objects", []):
        oid, size = obj["oid"], int(obj["size"])
        entry: dict[str, Any] = {"oid": oid, "size": size, "authenticated": True}
        stored = hub.lfs_objects.get(oid)
        if stored is None or len(stored) != size:  # else: already stored, nothing to upload ("actions" left out)
            entry["actions"] = {
                "upload": {"href": f"{hub.url}/lfs-storage/{oid}", "header": {}},
                "verify": {"href": f"{hub.url}/{URL_PREFIXES[repo_type]}{repo_id}.git/info/lfs/objects/verify"},
            }
        objects.append(entry)
    return Response(200, json.dumps({"transfer": "basic", "objects": objects}).encode(), _LFS_JSON)


_LFS_JSON = {"Content-Type": "application/vnd.git-lfs+json"}


@route("PUT", "/lfs-storage/(?P<oid>[0-9a-f]{64})")
def lfs_put(hub: HubServer, req: Request) -> Response:
    """The storage the batch API points uploads at (a signed S3 URL on the real Hub: no token needed)."""
    if hashlib.sha256(req.body).hexdigest() != req.params["oid"]:
        raise ApiError(400, "uploaded content does not match its sha256 oid")
    with hub._lock:
        hub.lfs_objects[req.params["oid"]] = req.body
    return Response(200, b"", {"ETag": f'"{hashlib.md5(req.body).hexdigest()}"'})


@route("POST", r"/(?P<prefix>datasets/|spaces/)?" + _REPO + r"\.git/info/lfs/objects/verify")
def lfs_verify(hub: HubServer, req: Request) -> Response:
    obj = req.json()
    stored = hub.lfs_objects.get(obj.get("oid", ""))
    if stored is None or len(stored) != int(obj.get("size", -1)):
        raise ApiError(404, f"LFS object {obj.get('oid')} not found")
    return Response.json({"success": True})


@route("GET HEAD", r"/(?P<prefix>datasets/|spaces/)?" + _REPO + "/resolve/(?P<revision>[^/]+)/(?P<path>.+)")
def resolve(hub: HubServer, req: Request) -> Response:
    repo_type = {"datasets/": "dataset", "spaces/": "space"}.get(req.params.get("prefix") or "", "model")
    repo = hub.find_repo(req, repo_type, req.params["repo_id"])
    commit = hub.commit_at(repo, req.params["revision"])
    path = unquote(req.params["path"])
    headers = {"X-Repo-Commit": commit.oid}
    if path not in commit.files:
        raise ApiError(404, "Entry not found", code="EntryNotFound", headers=headers)
    data = commit.files[path]
    if is_lfs(path, data, len(data)):
        sha256 = hashlib.sha256(data).hexdigest()
        headers.update({"ETag": f'"{sha256}"', "X-Linked-Etag": f'"{sha256}"', "X-Linked-Size": str(len(data))})
    else:
        headers["ETag"] = f'"{git_blob_sha1(data)}"'
    headers.update({"Accept-Ranges": "bytes", "Content-Type": "application/octet-stream"})
    status, start, end = 200, 0, len(data)
    if match := re.fullmatch(r"bytes=(\d*)-(\d*)", req.headers.get("Range") or ""):
        first, last = match.groups()
        start = int(first) if first else max(len(data) - int(last or 0), 0)
        end = min(int(last) + 1, len(data)) if first and last else len(data)
        if start >= len(data) and len(data) > 0:
            raise ApiError(416, "Range Not Satisfiable", headers={"Content-Range": f"bytes */{len(data)}"})
        status = 206
        headers["Content-Range"] = f"bytes {start}-{max(end - 1, start)}/{len(data)}"
    return Response(status, data[start:end], headers)


def _entries(commit: Commit, base: str, recursive: bool, expand: bool) -> list[dict[str, Any]]:
    """Tree entries under `base` (the repo root when empty): folders first, then files, each sorted by path."""
    prefix = f"{base}/" if base else ""
    folders: set[str] = set()
    files: list[str] = []
    for path in commit.files:
        if not path.startswith(prefix):
            continue
        parts = PurePosixPath(path[len(prefix) :]).parts
        for depth in range(1, len(parts)):
            if recursive or depth == 1:
                folders.add(prefix + "/".join(parts[:depth]))
        if recursive or len(parts) == 1:
            files.append(path)
    last_commit = {"id": commit.oid, "title": commit.title, "date": commit.date}
    out: list[dict[str, Any]] = []
    for folder in sorted(folders):
        out.append({"type": "directory", "oid": git_blob_sha1(folder.encode()), "size": 0, "path": folder})
    for path in sorted(files):
        info = _blob_info(path, commit.files[path])
        entry = {"type": "file", "oid": info["blobId"], "size": info["size"], "path": path}
        if "lfs" in info:
            entry["lfs"] = {
                "oid": info["lfs"]["sha256"],
                "size": info["size"],
                "pointerSize": info["lfs"]["pointerSize"],
            }
        out.append(entry)
    if expand:
        for entry in out:
            entry["lastCommit"] = last_commit
    return out


@route("GET", f"/api/{_TYPE}/{_REPO}/tree/(?P<revision>[^/]+)(?:/(?P<path>.+))?")
def tree(hub: HubServer, req: Request) -> Response:
    repo = hub.find_repo(req, REPO_TYPES[req.params["type"]], req.params["repo_id"])
    commit = hub.commit_at(repo, req.params["revision"])
    base = unquote(req.params.get("path") or "").strip("/")
    entries = _entries(commit, base, req.flag("recursive"), req.flag("expand"))
    if base and not entries:
        raise ApiError(404, f"{base} does not exist on {req.params['revision']}", code="EntryNotFound")
    start = int((req.query.get("cursor") or ["0"])[0])
    page = entries[start : start + hub.tree_page_size]
    headers = {}
    if start + hub.tree_page_size < len(entries):
        query = {k: v[0] for k, v in req.query.items()} | {"cursor": str(start + hub.tree_page_size)}
        headers["Link"] = f'<{hub.url}{req.path}?{urlencode(query)}>; rel="next"'
    return Response.json(page, headers=headers)


@route("POST", f"/api/{_TYPE}/{_REPO}/paths-info/(?P<revision>[^/]+)")
def paths_info(hub: HubServer, req: Request) -> Response:
    repo = hub.find_repo(req, REPO_TYPES[req.params["type"]], req.params["repo_id"])
    commit = hub.commit_at(repo, req.params["revision"])
    form = parse_qs(req.body.decode())
    expand = (form.get("expand") or ["false"])[0].lower() == "true"
    wanted = [p.strip("/") for p in form.get("paths", [])]
    every = _entries(commit, "", recursive=True, expand=expand)
    return Response.json([entry for entry in every if entry["path"] in wanted])


# --------------------------------------------------------------------------- HTTP plumbing


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "TinyHub/1.0"

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the stdlib's name
        pass  # the hub keeps its own log

    def _read_body(self) -> bytes:
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            chunks = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    self.rfile.readline()
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _dispatch(self) -> None:
        hub: HubServer = self.server.hub  # type: ignore[attr-defined]
        split = urlsplit(self.path)
        body = self._read_body()
        auth = self.headers.get("Authorization") or ""
        hub.tokens_seen.append((split.path, auth[7:].strip() if auth.lower().startswith("bearer ") else None))
        fault = hub._take_fault(split.path)
        if delay := hub._delay(split.path):
            time.sleep(delay)
        if fault and fault[0] == "drop":
            hub.log.append((self.command, split.path, 0))
            self.close_connection = True
            return
        if fault:
            response = Response.json({"error": "injected failure"}, status=fault[1])
        else:
            response = self._route(hub, split.path, parse_qs(split.query), body)
        hub.log.append((self.command, split.path, response.status))
        self.send_response(response.status)
        for name, value in response.headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(response.body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(response.body)

    def _route(self, hub: HubServer, path: str, query: dict[str, list[str]], body: bytes) -> Response:
        for method, pattern, handler in ROUTES:
            if method == self.command and (match := pattern.match(path)):
                params = {k: v for k, v in match.groupdict().items() if v is not None}
                request = Request(self.command, path, query, self.headers, body, params)
                try:
                    return handler(hub, request)
                except ApiError as exc:
                    headers = {"X-Error-Message": exc.message, **exc.headers}
                    if exc.code:
                        headers["X-Error-Code"] = exc.code
                    return Response.json({"error": exc.message, **exc.body}, status=exc.status, headers=headers)
        return Response.json({"error": f"no route for {self.command} {path}"}, status=404)

    do_GET = do_HEAD = do_POST = do_PUT = do_DELETE = _dispatch  # noqa: N815 - the stdlib's names
