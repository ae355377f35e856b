"""A fake Instagram Graph API (business discovery) over real HTTP on loopback, for tests.

It answers `GET /{version}/{ig-user-id}?fields=business_discovery.username(H){...}` like the
platform: the same JSON shapes, `+0000` timestamps, hidden like counts as 0, cursor paging
(`media.after(C).limit(N)`), usage headers, and every fault a test can script per handle:
HTTP 429, throttling codes 4/17/32/613, 500/503, a timeout (an answer later than the
client's timeout), a truncated body, malformed JSON, a wrong shape, code 110/2207013 (not
found) and code 190 (invalid token). It counts and timestamps every call it receives.
"""

from __future__ import annotations

import base64
import contextlib
import json
import re
import threading
import time
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

VERSION = "v21.0"
IG_USER_ID = "17841400000000001"
_USERNAME = re.compile(r"business_discovery\.username\(([^)]*)\)")
_MEDIA = re.compile(r"media(?:\.after\(([^)]*)\))?(?:\.limit\((\d+)\))?\{")

# Fault names a test can queue for a handle (consumed one per call, in order).
FAULTS = (
    "429",
    "throttle:4",
    "throttle:17",
    "throttle:32",
    "throttle:613",
    "500",
    "503",
    "timeout",
    "truncated",
    "malformed_json",
    "wrong_shape",
    "not_found",
    "invalid_token",
    "permission",
)


def graph_time(moment: datetime) -> str:
    """Graph's timestamp form: `2021-06-29T17:02:00+0000`."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S+0000")


@dataclass
class FakePost:
    id: str
    timestamp: datetime
    like_count: int
    comments_count: int


@dataclass
class FakeAccount:
    """A business account as the platform knows it (posts newest first)."""

    username: str
    id: str
    followers_count: int
    follows_count: int
    media_count: int
    posts: list[FakePost] = field(default_factory=list)


@dataclass(frozen=True)
class Call:
    """One request the fake received."""

    at: float  # time.monotonic() on arrival
    handle: str | None
    token: str | None
    after: str | None
    answered: str  # "ok", "page", or the fault name


def make_account(
    handle: str,
    *,
    followers: int = 15000,
    follows: int = 300,
    posts: int = 20,
    days: float = 29.0,
    hidden_likes: bool = False,
    now: datetime | None = None,
    account_id: str | None = None,
) -> FakeAccount:
    """An account with `posts` posts spread evenly over the last `days` days."""
    now = now or datetime.now(UTC)
    step = timedelta(days=days) / max(posts, 1)
    digits = str(zlib.crc32(handle.encode()) % 10**9).zfill(9)
    made = [
        FakePost(
            id=f"179{digits}{index:05d}",
            timestamp=(now - step * (index + 0.5)).replace(microsecond=0),
            like_count=0 if hidden_likes else 100 + index,
            comments_count=5 + index % 7,
        )
        for index in range(posts)
    ]
    return FakeAccount(
        username=handle,
        id=account_id or f"178414{digits}",
        followers_count=followers,
        follows_count=follows,
        media_count=posts + 500,
        posts=made,
    )


class FakeGraphAPI:
    """The fake platform: accounts, tokens, scripted faults, usage, and the call log."""

    def __init__(self, *, tokens: tuple[str, ...] = ("test-token",), timeout_delay: float = 1.0):
        self.accounts: dict[str, FakeAccount] = {}
        self.valid_tokens = set(tokens)
        self.faults: dict[str, list[str]] = {}
        self.always: dict[str, str] = {}  # handle -> fault answered on every call
        self.page_faults: dict[str, str] = {}  # handle -> fault answered for pages 2, 3, …
        self.usage_percent = 5.0
        self.regain_minutes = 0
        self.timeout_delay = timeout_delay
        self.calls: list[Call] = []
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # --- scripting -------------------------------------------------------------------------
    def add(self, account: FakeAccount) -> FakeAccount:
        self.accounts[account.username] = account
        return account

    def fail(self, handle: str, *faults: str) -> None:
        """Answer the next calls for `handle` with these faults, then normally."""
        for fault in faults:
            assert fault in FAULTS, fault
        self.faults.setdefault(handle, []).extend(faults)

    def fail_always(self, handle: str, fault: str) -> None:
        assert fault in FAULTS, fault
        self.always[handle] = fault

    def fail_pages(self, handle: str, fault: str) -> None:
        """Answer every call for a page after the first with `fault`."""
        assert fault in FAULTS, fault
        self.page_faults[handle] = fault

    def calls_for(self, handle: str) -> list[Call]:
        with self._lock:
            return [call for call in self.calls if call.handle == handle]

    def call_log(self) -> list[Call]:
        with self._lock:
            return list(self.calls)

    # --- serving ---------------------------------------------------------------------------
    @property
    def port(self) -> int:
        assert self._server is not None
        return int(self._server.server_address[1])

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/{VERSION}"

    def start(self) -> FakeGraphAPI:
        fake = self

        class Handler(_Handler):
            api = fake

        class Server(ThreadingHTTPServer):
            # The default backlog (5) drops SYNs when many workers connect at once; the
            # kernel then retries after 1 s, which a client sees as a connect timeout.
            request_queue_size = 128

        self._server = Server(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    # --- answering -------------------------------------------------------------------------
    def _record(self, call: Call) -> None:
        with self._lock:
            self.calls.append(call)

    def _next_fault(self, handle: str | None, after: str | None) -> str | None:
        if handle is None:
            return None
        with self._lock:
            if after is not None and handle in self.page_faults:
                return self.page_faults[handle]
            if handle in self.always:
                return self.always[handle]
            queue = self.faults.get(handle)
            return queue.pop(0) if queue else None

    def usage_headers(self) -> dict[str, str]:
        percent = self.usage_percent
        return {
            "X-App-Usage": json.dumps({"call_count": percent, "total_cputime": 1, "total_time": 1}),
            "X-Business-Use-Case-Usage": json.dumps(
                {
                    IG_USER_ID: [
                        {
                            "type": "instagram",
                            "call_count": percent,
                            "total_cputime": 1,
                            "total_time": 1,
                            "estimated_time_to_regain_access": self.regain_minutes,
                        }
                    ]
                }
            ),
        }


def _error(code: int, message: str, *, subcode: int | None = None, kind: str = "OAuthException"):
    error: dict[str, object] = {
        "message": message,
        "type": kind,
        "code": code,
        "fbtrace_id": "AbCdEfGhIjKlMnOp",
    }
    if subcode is not None:
        error["error_subcode"] = subcode
        error["is_transient"] = False
        error["error_user_title"] = "Cannot find User"
        error["error_user_msg"] = "The user cannot be found."
    return {"error": error}


_FAULT_ANSWERS: dict[str, tuple[int, dict]] = {
    "throttle:4": (403, _error(4, "Application request limit reached")),
    "throttle:17": (400, _error(17, "User request limit reached")),
    "throttle:32": (400, _error(32, "Page request limit reached")),
    "throttle:613": (400, _error(613, "Calls to this api have exceeded the rate limit.")),
    "500": (500, _error(1, "An unknown error occurred", kind="OAuthException")),
    "not_found": (400, _error(110, "Invalid user id", subcode=2207013)),
    "invalid_token": (
        401,
        _error(190, "Error validating access token: Session has expired."),
    ),
    "permission": (403, _error(10, "Application does not have permission for this action")),
}


class _Handler(BaseHTTPRequestHandler):
    api: FakeGraphAPI
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: object) -> None:  # quiet
        return None

    def do_GET(self) -> None:
        # A client that gave up (its timeout) leaves nothing to answer to.
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            self._answer()

    def _answer(self) -> None:
        api = self.api
        arrived = time.monotonic()
        parts = urlsplit(self.path)
        query = parse_qs(parts.query)
        fields = (query.get("fields") or [""])[0]
        match = _USERNAME.search(fields)
        handle = match.group(1) if match else None
        media = _MEDIA.search(fields)
        after = media.group(1) if media and media.group(1) else None
        limit = int(media.group(2)) if media and media.group(2) else 25
        auth = self.headers.get("Authorization", "")
        token = auth.removeprefix("Bearer ") if auth.startswith("Bearer ") else None
        token = token or (query.get("access_token") or [None])[0]

        if token not in api.valid_tokens:
            api._record(Call(arrived, handle, token, after, "invalid_token"))
            self._json(*_FAULT_ANSWERS["invalid_token"])
            return
        if parts.path != f"/{VERSION}/{IG_USER_ID}" or handle is None:
            api._record(Call(arrived, handle, token, after, "bad_request"))
            self._json(400, _error(100, "Invalid parameter"))
            return
        fault = api._next_fault(handle, after)
        account = api.accounts.get(handle)
        if fault is None and account is None:
            fault = "not_found"  # unknown, renamed or personal: what the platform answers
        api._record(Call(arrived, handle, token, after, fault or ("page" if after else "ok")))
        if fault is not None or account is None:
            self._fault(fault or "not_found")
            return
        start = int(base64.b64decode(after).decode().split(":")[1]) if after else 0
        page = account.posts[start : start + limit]
        media_body: dict[str, object] = {
            "data": [
                {
                    "id": post.id,
                    "timestamp": graph_time(post.timestamp),
                    "like_count": post.like_count,
                    "comments_count": post.comments_count,
                }
                for post in page
            ]
        }
        end = start + len(page)
        cursors = {
            "before": base64.b64encode(f"offset:{start}".encode()).decode(),
            "after": base64.b64encode(f"offset:{end}".encode()).decode(),
        }
        paging: dict[str, object] = {"cursors": cursors}
        if end < len(account.posts):
            paging["next"] = f"https://graph.facebook.com/{VERSION}/{IG_USER_ID}?fields=..."
        media_body["paging"] = paging
        self._json(
            200,
            {
                "business_discovery": {
                    "id": account.id,
                    "username": account.username,
                    "followers_count": account.followers_count,
                    "follows_count": account.follows_count,
                    "media_count": account.media_count,
                    "media": media_body,
                },
                "id": IG_USER_ID,
            },
        )

    def _fault(self, fault: str) -> None:
        if fault in _FAULT_ANSWERS:
            self._json(*_FAULT_ANSWERS[fault])
        elif fault == "429":  # from the edge, before the API: no Graph error object
            self._raw(429, b"Too Many Requests", "text/plain")
        elif fault == "503":
            self._raw(503, b"<html><body>Service Unavailable</body></html>", "text/html")
        elif fault == "timeout":
            time.sleep(self.api.timeout_delay)
            self._json(200, {"business_discovery": None})
        elif fault == "truncated":
            body = b'{"business_discovery": {"id": "1784140", "username": "x", "followers_co'
            self.send_response(200)
            self.send_header("Content-Type", "application/json; charset=UTF-8")
            self.send_header("Content-Length", str(len(body) + 500))
            self.end_headers()
            self.wfile.write(body)
            self.wfile.flush()
            self.close_connection = True
        elif fault == "malformed_json":
            self._raw(200, b'{"business_discovery": {"id": 17841,,}', "application/json")
        elif fault == "wrong_shape":
            self._json(200, {"business_discovery": {"id": "1", "followers_count": "many"}})
        else:
            raise AssertionError(fault)

    def _json(self, status: int, body: object) -> None:
        self._raw(status, json.dumps(body).encode(), "application/json; charset=UTF-8")

    def _raw(self, status: int, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("x-fb-trace-id", "AbCdEfGhIjK")
        for name, value in self.api.usage_headers().items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)


@contextmanager
def fake_graph_api(**kwargs: object) -> Iterator[FakeGraphAPI]:
    """A started fake, stopped afterwards."""
    api = FakeGraphAPI(**kwargs).start()  # type: ignore[arg-type]
    try:
        yield api
    finally:
        api.stop()
