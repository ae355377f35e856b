"""Instagram Graph API business discovery: classify answers, parse profiles, fetch accounts.

`classify` and `parse_page` are pure: what a status code and a body mean, exactly as
docs/collector.md tables it. `GraphClient` is the thin async shell: one account = one call,
more when its posts of the last 30 days span several pages (at most 200 posts); every call
is granted by the `BudgetPool`; transient faults are retried with backoff (tenacity) and end
as an `error` snapshot, never as `not_found`.

The token travels in the `Authorization` header, never in the URL, so that no URL logged by
httpx, no exception message and no metric can carry it.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any, Final

import httpx
import orjson
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_result,
    stop_after_attempt,
    wait_exponential_jitter,
)

from services.collector import metrics as m
from services.collector.budget import BudgetPool, TokenBudget, Usage, parse_usage_headers
from services.common.clock import format_timestamp, utcnow
from services.common.contracts import MAX_RECENT_POSTS
from services.common.events import (
    MAX_COUNT,
    PLATFORM_ID_PATTERN,
    build_metrics_event,
    build_recent_post,
)

log = logging.getLogger("collector.graph")

WINDOW: Final = timedelta(hours=720)
NOT_FOUND_CODE: Final = 110
NOT_FOUND_SUBCODE: Final = 2207013
INVALID_TOKEN_CODE: Final = 190
THROTTLING_CODES: Final = frozenset({4, 17, 32, 613})
_PLATFORM_ID = re.compile(PLATFORM_ID_PATTERN)
# Graph writes `2021-06-29T17:02:00+0000`; RFC 3339 forms with `Z` or `+00:00` are accepted too.
_GRAPH_TIME = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:Z|[+-]\d{2}:?\d{2})$")
_MAX_DETAIL: Final = 200


class Outcome(StrEnum):
    """What one Graph call came to."""

    OK = "ok"
    NOT_FOUND = "not_found"  # code 110, subcode 2207013: unknown, renamed or personal account
    THROTTLED = "throttled"  # codes 4, 17, 32, 613
    HTTP_429 = "http_429"
    SERVER_ERROR = "server_error"  # HTTP 5xx
    TIMEOUT = "timeout"
    TRANSPORT_ERROR = "transport_error"  # connection refused or reset, protocol error
    MALFORMED = "malformed"  # not JSON, truncated, or not the shape asked for
    INVALID_TOKEN = "invalid_token"  # code 190
    OTHER_ERROR = "other_error"  # any other error the platform returned: not retried


RETRIED: Final = frozenset(
    {
        Outcome.THROTTLED,
        Outcome.HTTP_429,
        Outcome.SERVER_ERROR,
        Outcome.TIMEOUT,
        Outcome.TRANSPORT_ERROR,
        Outcome.MALFORMED,
    }
)
THROTTLING: Final = frozenset({Outcome.THROTTLED, Outcome.HTTP_429})


class MalformedBody(ValueError):
    """A 200 answer that is not the business-discovery document asked for."""


@dataclass(frozen=True, slots=True)
class Post:
    """One media item: id, publication time (UTC), likes and comments as reported."""

    id: str
    published_at: datetime
    likes: int
    comments: int


@dataclass(frozen=True, slots=True)
class Page:
    """One business-discovery answer: the profile and one page of its media."""

    account_id: str
    followers: int
    follows: int
    media_count: int
    posts: tuple[Post, ...]
    after: str | None  # cursor of the next page, None on the last one


@dataclass(frozen=True, slots=True)
class CallResult:
    """A classified answer. `detail` is for logs: short, and never holds a token."""

    outcome: Outcome
    page: Page | None = None
    http_status: int | None = None
    code: int | None = None
    subcode: int | None = None
    detail: str = ""
    usage: Usage | None = None


def parse_graph_time(text: object) -> datetime:
    """Parse a Graph timestamp (`2021-06-29T17:02:00+0000`) exactly, into aware UTC."""
    if not isinstance(text, str) or not _GRAPH_TIME.match(text):
        raise MalformedBody(f"timestamp {str(text)[:40]!r} is not YYYY-MM-DDTHH:MM:SS+0000")
    normalised = text[:-1] + "+00:00" if text.endswith("Z") else text
    if normalised[-5] in "+-" and normalised[-3] != ":":  # +0000 -> +00:00
        normalised = normalised[:-2] + ":" + normalised[-2:]
    try:
        return datetime.fromisoformat(normalised).astimezone(UTC)
    except ValueError as error:
        raise MalformedBody(f"timestamp {text!r}: {error}") from None


def _count(obj: dict, key: str, *, default: int | None = None) -> int:
    value = obj.get(key, default)
    if type(value) is not int or not 0 <= value <= MAX_COUNT:
        raise MalformedBody(f"{key} is {str(value)[:40]!r}, not a count")
    return value


def _platform_id(value: object, what: str) -> str:
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str) or not _PLATFORM_ID.match(value):
        raise MalformedBody(f"{what} {str(value)[:40]!r} is not a platform id")
    return value


def parse_page(document: object) -> Page:
    """The profile and media page of a business-discovery answer, or MalformedBody."""
    if not isinstance(document, dict):
        raise MalformedBody("the body is not a JSON object")
    profile = document.get("business_discovery")
    if not isinstance(profile, dict):
        raise MalformedBody("no business_discovery object in the body")
    media = profile.get("media", {"data": []})
    if not isinstance(media, dict) or not isinstance(media.get("data"), list):
        raise MalformedBody("media is not a {data: [...]} object")
    posts = []
    for item in media["data"]:
        if not isinstance(item, dict):
            raise MalformedBody("a media item is not an object")
        posts.append(
            Post(
                id=_platform_id(item.get("id"), "media id"),
                published_at=parse_graph_time(item.get("timestamp")),
                # Hidden like counts come back as 0 (since 2021-05-26) or, rarely, absent.
                likes=_count(item, "like_count", default=0),
                comments=_count(item, "comments_count", default=0),
            )
        )
    paging = media.get("paging")
    after = None
    if isinstance(paging, dict) and paging.get("next"):
        cursors = paging.get("cursors")
        after = cursors.get("after") if isinstance(cursors, dict) else None
        if after is not None and not isinstance(after, str):
            raise MalformedBody("paging.cursors.after is not a string")
    return Page(
        account_id=_platform_id(profile.get("id"), "account id"),
        followers=_count(profile, "followers_count"),
        follows=_count(profile, "follows_count"),
        media_count=_count(profile, "media_count"),
        posts=tuple(posts),
        after=after or None,
    )


def classify(status: int, body: bytes, usage: Usage | None = None) -> CallResult:
    """What an HTTP answer of the business-discovery endpoint means (docs/collector.md)."""
    try:
        document: Any = orjson.loads(body)
    except orjson.JSONDecodeError as error:
        if status >= 500:
            return CallResult(Outcome.SERVER_ERROR, http_status=status, usage=usage)
        if status == 429:
            return CallResult(Outcome.HTTP_429, http_status=status, usage=usage)
        return CallResult(
            Outcome.MALFORMED,
            http_status=status,
            detail=f"body is not JSON ({_short(str(error))}; {len(body)} bytes)",
            usage=usage,
        )
    problem = document.get("error") if isinstance(document, dict) else None
    if isinstance(problem, dict):
        code = problem.get("code") if type(problem.get("code")) is int else None
        subcode = (
            problem.get("error_subcode") if type(problem.get("error_subcode")) is int else None
        )
        detail = _short(f"{problem.get('type', '')}: {problem.get('message', '')}")
        if code == NOT_FOUND_CODE and subcode == NOT_FOUND_SUBCODE:
            outcome = Outcome.NOT_FOUND
        elif code == INVALID_TOKEN_CODE:
            outcome = Outcome.INVALID_TOKEN
        elif code in THROTTLING_CODES:
            outcome = Outcome.THROTTLED
        elif status == 429:
            outcome = Outcome.HTTP_429
        elif status >= 500 or problem.get("is_transient") is True:
            outcome = Outcome.SERVER_ERROR
        else:
            outcome = Outcome.OTHER_ERROR
        return CallResult(
            outcome, http_status=status, code=code, subcode=subcode, detail=detail, usage=usage
        )
    if status == 429:
        return CallResult(Outcome.HTTP_429, http_status=status, usage=usage)
    if status >= 500:
        return CallResult(Outcome.SERVER_ERROR, http_status=status, usage=usage)
    if status != 200:
        return CallResult(
            Outcome.OTHER_ERROR,
            http_status=status,
            detail=f"HTTP {status} without an error object",
            usage=usage,
        )
    try:
        page = parse_page(document)
    except MalformedBody as malformed:
        return CallResult(
            Outcome.MALFORMED, http_status=status, detail=_short(str(malformed)), usage=usage
        )
    return CallResult(Outcome.OK, page=page, http_status=status, usage=usage)


def _short(text: str) -> str:
    return text if len(text) <= _MAX_DETAIL else text[: _MAX_DETAIL - 1] + "…"


def fields_expression(handle: str, page_size: int, after: str | None) -> str:
    """The `fields` parameter asking for a profile and one page of its media."""
    media = "media"
    if after is not None:
        media += f".after({after})"
    media += f".limit({page_size}){{id,timestamp,like_count,comments_count}}"
    return (
        f"business_discovery.username({handle})"
        f"{{id,username,followers_count,follows_count,media_count,{media}}}"
    )


@dataclass(frozen=True, slots=True)
class GraphPolicy:
    """Timeouts, retries and paging of the client (Settings gives the defaults)."""

    timeout: float = 10.0
    max_attempts: int = 3
    backoff_initial: float = 1.0
    backoff_max: float = 30.0
    page_size: int = 50


@dataclass(slots=True)
class Observation:
    """One account observed: the snapshot to produce and how it went."""

    handle: str
    status: str  # ok | not_found | error
    event: dict[str, Any]
    calls: int = 0
    outcomes: list[Outcome] = field(default_factory=list)


class GraphClient:
    """Async business-discovery client: paging, retries, budgets, classification."""

    def __init__(
        self,
        *,
        base_url: str,
        ig_user_id: str,
        pool: BudgetPool,
        policy: GraphPolicy = GraphPolicy(),
        clock: Callable[[], datetime] = utcnow,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.ig_user_id = ig_user_id
        self.pool = pool
        self.policy = policy
        self.clock = clock
        self._http = httpx.AsyncClient(
            timeout=httpx.Timeout(policy.timeout),
            transport=transport,
            headers={"Accept": "application/json"},
            follow_redirects=False,
        )

    def __repr__(self) -> str:
        return f"GraphClient({self.base_url!r}, ig_user_id={self.ig_user_id!r}, {self.pool!r})"

    async def aclose(self) -> None:
        await self._http.aclose()

    async def observe(self, handle: str) -> Observation:
        """Observe one account: an `ok`, `not_found` or `error` snapshot (NoUsableToken raises)."""
        started = time.monotonic()
        observation = Observation(handle, "error", {})
        try:
            observation = await self._observe(handle, observation)
        finally:
            m.FETCH_SECONDS.labels("graph").observe(time.monotonic() - started)
        return observation

    async def _observe(self, handle: str, observation: Observation) -> Observation:
        posts: list[Post] = []
        first: Page | None = None
        observed_at: datetime | None = None
        after: str | None = None
        while True:
            result = await self._call(handle, after, observation)
            if result.outcome is Outcome.NOT_FOUND and first is None:
                return self._finish(observation, "not_found", self.clock())
            if result.outcome is not Outcome.OK or result.page is None:
                # Not found on a later page (the account vanished mid-way) is not evidence
                # enough: a transient `error`, observed again later.
                log.warning(
                    "graph: %s: %s after %d call(s)%s",
                    handle,
                    result.outcome.value,
                    observation.calls,
                    f" ({result.detail})" if result.detail else "",
                )
                return self._finish(observation, "error", observed_at or self.clock())
            page = result.page
            if first is None:
                first, observed_at = page, self.clock()
            posts.extend(page.posts)
            assert observed_at is not None
            oldest = min((post.published_at for post in page.posts), default=None)
            if (
                page.after is None
                or len(posts) >= MAX_RECENT_POSTS
                or oldest is None
                or oldest <= observed_at - WINDOW
            ):
                break
            after = page.after
        return self._finish(observation, "ok", observed_at, first, posts)

    def _finish(
        self,
        observation: Observation,
        status: str,
        observed_at: datetime,
        page: Page | None = None,
        posts: list[Post] | None = None,
    ) -> Observation:
        observation.status = status
        if status == "ok":
            assert page is not None and posts is not None
            start = observed_at - WINDOW
            in_window = sorted(
                {
                    post.id: post for post in posts if start < post.published_at <= observed_at
                }.values(),
                key=lambda post: (post.published_at, post.id),
                reverse=True,
            )[:MAX_RECENT_POSTS]
            observation.event = build_metrics_event(
                handle=observation.handle,
                account_id=page.account_id,
                observed_at=observed_at,
                status="ok",
                source="graph",
                followers=page.followers,
                follows=page.follows,
                media_count=page.media_count,
                recent_posts=[
                    build_recent_post(
                        post_id=post.id,
                        published_at=format_timestamp(post.published_at),
                        likes=post.likes,
                        comments=post.comments,
                    )
                    for post in in_window
                ],
            )
        else:
            observation.event = build_metrics_event(
                handle=observation.handle,
                observed_at=observed_at,
                status="not_found" if status == "not_found" else "error",
                source="graph",
            )
        return observation

    async def _call(self, handle: str, after: str | None, observation: Observation) -> CallResult:
        """One page, retried with backoff while the fault is transient."""
        policy = self.policy
        retrying = AsyncRetrying(
            stop=stop_after_attempt(policy.max_attempts),
            wait=wait_exponential_jitter(
                multiplier=policy.backoff_initial,
                max=policy.backoff_max,
                jitter=policy.backoff_initial,
            ),
            retry=retry_if_result(lambda result: result.outcome in RETRIED),
            retry_error_callback=_last_result,
        )
        result: CallResult = await retrying(self._call_once, handle, after, observation)
        return result

    async def _call_once(
        self, handle: str, after: str | None, observation: Observation
    ) -> CallResult:
        """One call on some valid token; a rejected token is dropped and another one tried."""
        while True:
            token = await self.pool.acquire()
            result = await self._request(token, handle, after)
            observation.calls += 1
            observation.outcomes.append(result.outcome)
            m.GRAPH_CALLS.labels(result.outcome.value).inc()
            if result.outcome in THROTTLING:
                self.pool.throttled(token, result.usage)
                log.warning(
                    "graph: token #%d throttled (%s%s); it rests before its next call",
                    token.index,
                    result.outcome.value,
                    f" code {result.code}" if result.code is not None else "",
                )
            if result.outcome is not Outcome.INVALID_TOKEN:
                return result
            if not token.valid:
                continue  # already dropped by a call that was in flight at the same time
            self.pool.invalidate(token)
            log.error(
                "graph: token #%d of %d was rejected by the platform (code 190: %s); it is no "
                "longer used: renew it in OBS_GRAPH_TOKENS",
                token.index,
                len(self.pool.tokens),
                result.detail,
            )

    async def _request(self, token: TokenBudget, handle: str, after: str | None) -> CallResult:
        request = self._http.build_request(
            "GET",
            f"{self.base_url}/{self.ig_user_id}",
            params={"fields": fields_expression(handle, self.policy.page_size, after)},
            headers={"Authorization": f"Bearer {token.secret()}"},
        )
        usage: Usage | None = None
        try:
            response = await self._http.send(request, stream=True)
            try:
                usage = parse_usage_headers(response.headers)
                body = await response.aread()
            except (httpx.RemoteProtocolError, httpx.ReadError) as error:
                # The connection closed before the announced Content-Length: truncated.
                return CallResult(
                    Outcome.MALFORMED,
                    http_status=response.status_code,
                    detail=f"truncated answer ({type(error).__name__})",
                    usage=usage,
                )
            finally:
                await response.aclose()
            return classify(response.status_code, body, usage)
        except httpx.TimeoutException as error:
            return CallResult(
                Outcome.TIMEOUT,
                detail=f"no answer within {self.policy.timeout} s ({type(error).__name__})",
            )
        except httpx.TransportError as error:
            return CallResult(Outcome.TRANSPORT_ERROR, detail=type(error).__name__)
        finally:
            self.pool.release(token, usage)


def _last_result(state: RetryCallState) -> CallResult:
    """After the last attempt, the last classified answer (not an exception)."""
    assert state.outcome is not None
    result: CallResult = state.outcome.result()
    return result
