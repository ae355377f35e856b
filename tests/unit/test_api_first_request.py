"""Where the API's connection protocol sees the first request end, before uvicorn's set-up:
the header block and a `Content-Length` body, or at once when a body cannot be waited for."""

from __future__ import annotations

import pytest

from services.api.connections import _FIRST_REQUEST_LIMIT, first_request_end


def _end(head: bytes) -> int:
    block_end = head.index(b"\r\n\r\n") + 4 if b"\r\n\r\n" in head else head.index(b"\n\n") + 2
    return first_request_end(head, block_end)


def test_a_request_without_a_body_ends_with_its_header_block():
    head = b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"
    assert _end(head) == len(head)


@pytest.mark.parametrize("name", [b"Content-Length", b"content-length", b"CONTENT-LENGTH"])
def test_a_content_length_body_is_waited_for(name):
    block = b"PUT /x HTTP/1.1\r\nHost: x\r\n" + name + b": 4000\r\n\r\n"
    assert _end(block + b"ab") == len(block) + 4000


def test_bare_lf_line_endings_are_read_as_h11_reads_them():
    block = b"PUT /x HTTP/1.1\nHost: x\nContent-Length: 12\n\n"
    assert _end(block) == len(block) + 12


@pytest.mark.parametrize(
    "header",
    [
        b"Transfer-Encoding: chunked",
        b"transfer-encoding: gzip, chunked",
        b"Expect: 100-continue",
        b"EXPECT:100-continue",
    ],
)
def test_a_chunked_body_or_an_expect_goes_to_uvicorn_at_once(header):
    head = b"PUT /x HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n" + header + b"\r\n\r\n"
    assert _end(head) == 0


@pytest.mark.parametrize(
    "lengths",
    [
        [b"10", b"10"],  # twice: h11 decides
        [b"1" * 10],  # more digits than any body kept
        [str(_FIRST_REQUEST_LIMIT).encode()],  # header block and body over the bound
    ],
)
def test_lengths_not_waited_for_go_to_uvicorn_at_once(lengths):
    head = b"PUT /x HTTP/1.1\r\nHost: x\r\n"
    head += b"".join(b"Content-Length: " + n + b"\r\n" for n in lengths) + b"\r\n"
    assert _end(head) == 0


def test_a_header_named_like_content_length_is_not_read_as_it():
    head = b"PUT /x HTTP/1.1\r\nHost: x\r\nX-Content-Length: 50\r\n\r\n"
    assert _end(head) == len(head)
