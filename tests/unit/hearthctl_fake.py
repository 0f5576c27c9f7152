"""A test double of Hearth's control-plane API, for hearthctl's unit tests only.

It is not the gateway: a small ``http.server`` on a real localhost socket that implements
the handful of Fireworks paths hearthctl calls, over in-memory dicts, and records every
request (method, path, query, JSON body, Authorization header) so the tests can check what
hearthctl sends. Objects settle after a number of GETs the test chooses, so ``--wait`` is
exercised without sleeping. The real gateway is driven in tests/gateway/.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

Json = dict[str, Any]

KEY = "hk-test-key"
ACCOUNT = "acme"
NOW = "2026-01-02T03:04:05Z"

#: collection -> (state while settling, settled state) for objects that have a state.
STATES: dict[str, tuple[str, str]] = {
    "models": ("UPLOADING", "READY"),
    "deployments": ("CREATING", "READY"),
    "deployedModels": ("DEPLOYING", "DEPLOYED"),
    "datasets": ("UPLOADING", "READY"),
    "supervisedFineTuningJobs": ("JOB_STATE_RUNNING", "JOB_STATE_COMPLETED"),
    "users": ("CREATING", "READY"),
}
ID_PARAMETERS = {
    "deployments": "deploymentId",
    "supervisedFineTuningJobs": "supervisedFineTuningJobId",
    "users": "userId",
}
_PATH = re.compile(
    r"^/v1/accounts/(?P<account>[^/:]+)"
    r"(?:/(?P<collection>[A-Za-z]+)(?:/(?P<id>[^/:]+))?)?"
    r"(?::(?P<verb>[A-Za-z]+))?$"
)
_API_KEYS = re.compile(
    r"^/v1/accounts/(?P<account>[^/:]+)/users/(?P<user>[^/:]+)/apiKeys(?::(?P<verb>delete))?$"
)


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, str]
    body: Any
    authorization: str | None
    content_type: str | None


class Error(Exception):
    def __init__(self, status: int, name: str, message: str) -> None:
        super().__init__(message)
        self.status, self.name, self.message = status, name, message


@dataclass
class FakeApi:
    """The API's state; tests read ``requests`` and set ``settle_after`` / ``fail``."""

    base_url: str = ""
    requests: list[Request] = field(default_factory=list)
    objects: dict[str, dict[str, Json]] = field(default_factory=dict)
    api_keys: dict[str, dict[str, Json]] = field(default_factory=dict)
    uploads: dict[str, bytes] = field(default_factory=dict)
    #: GETs of an object before it reaches its settled state.
    settle_after: int = 1
    #: collection/id -> status message: the object settles as FAILED instead.
    fail: dict[str, str] = field(default_factory=dict)
    #: Progress reports a fine-tuning job walks through on successive GETs.
    job_progress: list[Json] = field(default_factory=list)
    _gets: dict[str, int] = field(default_factory=dict)
    _counter: int = 0

    def collection(self, name: str) -> dict[str, Json]:
        return self.objects.setdefault(name, {})

    def add(self, collection: str, object_id: str, **fields: Any) -> Json:
        obj = {"name": f"accounts/{ACCOUNT}/{collection}/{object_id}", "createTime": NOW, **fields}
        self.collection(collection)[object_id] = obj
        return obj

    def calls(self, method: str | None = None, path: str | None = None) -> list[Request]:
        return [
            r
            for r in self.requests
            if (method is None or r.method == method) and (path is None or r.path == path)
        ]

    # -- the API -------------------------------------------------------------------------

    def handle(self, request: Request) -> tuple[int, Json]:
        if request.path.startswith("/upload/"):
            return self._put_upload(request)
        if request.authorization != f"Bearer {KEY}":
            raise Error(401, "UNAUTHENTICATED", "invalid API key")
        keys = _API_KEYS.match(request.path)
        if keys:
            return self._api_keys(request, keys["user"], keys["verb"])
        match = _PATH.match(request.path)
        if not match:
            raise Error(404, "NOT_FOUND", f"no route {request.path}")
        account, collection = match["account"], match["collection"]
        object_id, verb = match["id"], match["verb"]
        if account != ACCOUNT:
            raise Error(403, "PERMISSION_DENIED", f"no access to account {account!r}")
        if collection is None:
            return 200, {"name": f"accounts/{account}", "state": "READY"}
        if object_id is None:
            if request.method == "GET":
                return 200, self._list(collection, request.query)
            if request.method == "POST":
                return 200, self._create(collection, request)
        elif verb is None:
            if request.method == "GET":
                return 200, self._get(collection, object_id)
            if request.method == "PATCH":
                return 200, self._update(collection, object_id, request)
            if request.method == "DELETE":
                self._find(collection, object_id)
                del self.collection(collection)[object_id]
                return 200, {}
        else:
            return 200, self._custom(collection, object_id, verb, request)
        raise Error(405, "UNIMPLEMENTED", f"{request.method} {request.path}")

    def _find(self, collection: str, object_id: str) -> Json:
        try:
            return self.collection(collection)[object_id]
        except KeyError:
            raise Error(404, "NOT_FOUND", f"{collection[:-1]} {object_id!r} not found") from None

    def _new_id(self, prefix: str) -> str:
        self._counter += 1
        return f"{prefix}{self._counter:04d}"

    def _create(self, collection: str, request: Request) -> Json:
        body = dict(request.body or {})
        if collection == "models":
            object_id, fields = body.pop("modelId"), body.pop("model")
        elif collection == "datasets":
            object_id, fields = body.pop("datasetId"), body.pop("dataset")
        elif collection == "deployedModels":
            object_id = str(body["model"]).rsplit("/", 1)[-1] + "-" + self._new_id("x")
            fields = body
        else:
            object_id = request.query.get(ID_PARAMETERS[collection]) or self._new_id("gen")
            fields = body
        if object_id in self.collection(collection):
            raise Error(409, "ALREADY_EXISTS", f"{collection} {object_id!r} already exists")
        state = STATES[collection][0]
        return self.add(collection, object_id, **fields, state=state)

    def _get(self, collection: str, object_id: str) -> Json:
        obj = self._find(collection, object_id)
        key = f"{collection}/{object_id}"
        self._gets[key] = self._gets.get(key, 0) + 1
        if collection == "supervisedFineTuningJobs" and self.job_progress:
            step = min(self._gets[key], len(self.job_progress)) - 1
            obj["jobProgress"] = self.job_progress[step]
            if self._gets[key] < len(self.job_progress):
                return obj
        if self._gets[key] >= self.settle_after and collection != "datasets":
            self._settle(collection, object_id, obj)
        return obj

    def _settle(self, collection: str, object_id: str, obj: Json) -> None:
        reason = self.fail.get(f"{collection}/{object_id}")
        if reason is not None:
            failed = "JOB_STATE_FAILED" if collection.endswith("Jobs") else "FAILED"
            obj.update(state=failed, status={"code": "FAILED_PRECONDITION", "message": reason})
        else:
            obj["state"] = STATES[collection][1]

    def _list(self, collection: str, query: dict[str, str]) -> Json:
        items = list(self.collection(collection).values())
        if "filter" in query:
            key, _, value = query["filter"].partition("=")
            items = [i for i in items if str(i.get(key.strip())) == value.strip().strip('"')]
        size = int(query.get("pageSize", "50"))
        start = int(query.get("pageToken", "0") or "0")
        page: Json = {collection: items[start : start + size], "totalSize": len(items)}
        if start + size < len(items):
            page["nextPageToken"] = str(start + size)
        return page

    def _update(self, collection: str, object_id: str, request: Request) -> Json:
        obj = self._find(collection, object_id)
        mask = request.query.get("updateMask")
        fields = (
            [re.sub(r"_(\w)", lambda m: m[1].upper(), p) for p in mask.split(",")]
            if mask
            else list(request.body)
        )
        for name in fields:
            obj[name] = request.body.get(name)
        return obj

    def _custom(self, collection: str, object_id: str, verb: str, request: Request) -> Json:
        obj = self._find(collection, object_id)
        if verb == "scale" and request.method == "PATCH":
            obj["desiredReplicaCount"] = request.body["replicaCount"]
            return {}
        if verb == "getUploadEndpoint" and request.method == "POST":
            urls = {
                name: f"{self.base_url}/upload/{collection}/{object_id}/{name}?sig=s"
                for name in request.body["filenameToSize"]
            }
            return {"filenameToSignedUrls": urls}
        if verb == "validateUpload":
            content = b"".join(
                data
                for key, data in self.uploads.items()
                if key.startswith(f"{collection}/{object_id}/")
            )
            if not content:
                raise Error(400, "FAILED_PRECONDITION", "nothing was uploaded")
            if collection == "datasets":
                self._settle(collection, object_id, obj)
                if obj["state"] == "READY":
                    obj["exampleCount"] = str(content.count(b"\n"))
            return {}
        if verb in ("cancel", "resume") and request.method == "POST":
            obj["state"] = "JOB_STATE_CANCELLED" if verb == "cancel" else "JOB_STATE_PENDING"
            return {}
        raise Error(404, "NOT_FOUND", f"no method :{verb}")

    def _put_upload(self, request: Request) -> tuple[int, Json]:
        if request.method != "PUT":
            raise Error(405, "UNIMPLEMENTED", "PUT only")
        if request.authorization is not None:
            raise Error(400, "INVALID_ARGUMENT", "signed URLs take no Authorization header")
        key = request.path.removeprefix("/upload/")
        self.uploads[key] = request.body
        return 200, {}

    def _api_keys(self, request: Request, user: str, verb: str | None) -> tuple[int, Json]:
        self._find("users", user)
        keys = self.api_keys.setdefault(user, {})
        if verb == "delete":
            key_id = request.body["keyId"]
            if key_id not in keys:
                raise Error(404, "NOT_FOUND", f"API key {key_id!r} not found")
            del keys[key_id]
            return 200, {}
        if request.method == "POST":
            key_id = self._new_id("key")
            record = {
                "keyId": key_id,
                "prefix": "hk_abc",
                "createTime": NOW,
                **request.body["apiKey"],
            }
            keys[key_id] = record
            return 200, {**record, "key": f"hk_abc_secret_{key_id}"}
        return 200, self._page_of(list(keys.values()), "apiKeys", request.query)

    def _page_of(self, items: list[Json], key: str, query: dict[str, str]) -> Json:
        size = int(query.get("pageSize", "50"))
        start = int(query.get("pageToken", "0") or "0")
        page: Json = {key: items[start : start + size]}
        if start + size < len(items):
            page["nextPageToken"] = str(start + size)
        return page


def _handler(api: FakeApi) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def _serve(self) -> None:
            url = urlsplit(self.path)
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            is_json = (self.headers.get("Content-Type") or "").startswith("application/json")
            request = Request(
                method=self.command,
                path=url.path,
                query={k: v[-1] for k, v in parse_qs(url.query).items()},
                body=json.loads(raw) if is_json and raw else raw,
                authorization=self.headers.get("Authorization"),
                content_type=self.headers.get("Content-Type"),
            )
            api.requests.append(request)
            try:
                status, answer = api.handle(request)
            except Error as error:
                status = error.status
                answer = {"code": 5, "status": error.name, "message": error.message, "details": []}
            data = json.dumps(answer).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_POST = do_PATCH = do_DELETE = do_PUT = _serve

        def log_message(self, format: str, *args: Any) -> None:
            pass

    return Handler


def serve() -> Iterator[FakeApi]:
    """Run the double on a free localhost port for the duration of a test."""
    api = FakeApi()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(api))
    api.base_url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, args=(0.01,), daemon=True)
    thread.start()
    try:
        yield api
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


#: Every variable hearthctl reads; tests start with none of them set.
SETTINGS_VARIABLES = (
    "HEARTH_CONFIG",
    "HEARTH_PROFILE",
    "HEARTH_BASE_URL",
    "HEARTH_ACCOUNT_ID",
    "HEARTH_API_KEY",
    "HEARTH_USER_ID",
    "FIREWORKS_BASE_URL",
    "FIREWORKS_ACCOUNT_ID",
    "FIREWORKS_API_KEY",
)


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """No settings from the environment; the config file in a temporary directory."""
    for variable in SETTINGS_VARIABLES:
        monkeypatch.delenv(variable, raising=False)
    config = tmp_path / "hearth" / "config.toml"
    monkeypatch.setenv("HEARTH_CONFIG", str(config))
    return config


@pytest.fixture
def api(clean_env: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeApi]:
    """The double running, and hearthctl pointed at it through HEARTH_* variables."""
    for fake in serve():
        monkeypatch.setenv("HEARTH_BASE_URL", fake.base_url)
        monkeypatch.setenv("HEARTH_ACCOUNT_ID", ACCOUNT)
        monkeypatch.setenv("HEARTH_API_KEY", KEY)
        yield fake
