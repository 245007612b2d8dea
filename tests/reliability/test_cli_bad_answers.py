"""`fmrec recommend` / `fmrec similar` against a URL that is not the recommend API (issue 23 item 12)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from fmrec_cli.main import main
from tests.support.loopback import serve_in_background

ITEM = {"rank": 1, "movieId": 50, "score": 0.9, "title": "Star Wars (1977)"}
ANSWERS: dict[str, tuple[int, str, bytes]] = {
    "html": (200, "text/html", b"<!doctype html><html><body>Welcome to nginx!</body></html>"),
    "list": (200, "application/json", b"[1, 2, 3]"),
    "no-title": (200, "application/json", json.dumps({"items": [{**ITEM, "title": None}]}).encode()),
    "no-items": (200, "application/json", b'{"message": "hello"}'),
    "item-not-object": (200, "application/json", b'{"items": [7]}'),
    "string-score": (200, "application/json", json.dumps({"items": [{**ITEM, "score": "high"}]}).encode()),
    "error-list": (400, "application/json", b'["bad"]'),
    "good": (200, "application/json", json.dumps({"userId": 1, "items": [ITEM]}).encode()),
}


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:
            # /<answer>/users/1/recommendations or /<answer>/movies/50/similar
            status, kind, body = ANSWERS[self.path.split("/")[1]]
            self.send_response(status)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.daemon_threads = True
    stop = serve_in_background(httpd)
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        stop()


@pytest.mark.parametrize(
    ("answer", "says"),
    [
        ("html", "not JSON (text/html, starts b'<!doctype html>"),
        ("list", "a JSON list, expected the API's JSON object"),
        ("no-title", "item 1 has no valid 'title'"),
        ("no-items", "the answer has no 'items' list"),
        ("item-not-object", "item 1 has no valid 'rank', 'movieId', 'score', 'title'"),
        ("string-score", "item 1 has no valid 'score'"),
        ("error-list", "HTTP 400: Bad Request"),
    ],
)
@pytest.mark.parametrize("command", [["recommend", "--user", "1"], ["similar", "--movie", "50"]])
def test_an_answer_that_is_not_the_apis_is_a_clear_error(
    server: str, capsys: pytest.CaptureFixture[str], answer: str, says: str, command: list[str]
) -> None:
    assert main([*command, "--api-url", f"{server}/{answer}"]) != 0
    err = capsys.readouterr().err
    assert "fmrec: error:" in err and says in err, err
    assert "Traceback" not in err


def test_a_good_answer_still_prints_its_table(server: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["recommend", "--user", "1", "--api-url", f"{server}/good"]) == 0
    assert "Star Wars (1977)" in capsys.readouterr().out
