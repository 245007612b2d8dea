"""fmrec data fetch against a local HTTP server on 127.0.0.1 serving a tiny zip and its .md5."""

from __future__ import annotations

import hashlib
import http.server
import io
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from fmrec.data.fetch import NetworkError, fetch
from fmrec.data.readers import load_dataset
from fmrec.errors import InputError, OutputError
from fmrec_cli.main import main as cli
from tests.support.loopback import closed_port, serve_in_background


def tiny_zip() -> bytes:
    buf = io.BytesIO()
    rows = "".join(
        f"{u}\t{m}\t{(u + m) % 5 + 1}\t88{u:04d}{m:04d}\n" for u in range(1, 4) for m in range(1, 25)
    )
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("ml-100k/u.data", rows)
        z.writestr("ml-100k/README", "tiny synthetic stand-in, not MovieLens\n")
    return buf.getvalue()


class Server:
    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}
        self.requests: list[str] = []
        files, requests = self.files, self.requests

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                requests.append(self.path)
                body = files.get(self.path)
                if body is None:
                    self.send_error(404)
                    return
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/movielens/"
        self.close = serve_in_background(self.httpd)


@pytest.fixture
def server() -> Iterator[Server]:
    srv = Server()
    body = tiny_zip()
    srv.files["/movielens/ml-100k.zip"] = body
    # GroupLens' own .md5 files use the BSD format
    srv.files["/movielens/ml-100k.zip.md5"] = (
        f"MD5 (ml-100k.zip) = {hashlib.md5(body).hexdigest()}\n".encode()
    )
    yield srv
    srv.close()


def test_download_verify_unzip_and_cache(server: Server, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    folder = fetch("ml-100k", tmp_path / "a", base_url=server.url, cache_dir=cache, progress=False)
    assert folder == tmp_path / "a" / "ml-100k"
    assert sorted(p.name for p in folder.iterdir()) == ["README", "u.data"]
    assert len(load_dataset(folder).train) + 30 == 72
    assert server.requests == ["/movielens/ml-100k.zip.md5", "/movielens/ml-100k.zip"]
    server.close()  # offline from here: the verified cache is enough
    again = fetch("ml-100k", tmp_path / "b", base_url=server.url, cache_dir=cache, progress=False)
    assert (again / "u.data").read_bytes() == (folder / "u.data").read_bytes()
    assert len(server.requests) == 2


def test_cli_fetch_with_progress(server: Server, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["data", "fetch", "ml-100k", "--out", str(tmp_path / "o"), "--base-url", server.url]
    assert cli([*argv, "--cache-dir", str(tmp_path / "c")]) == 0
    assert '"folder"' in capsys.readouterr().out
    assert cli([*argv, "--cache-dir", str(tmp_path / "c")]) == 2  # never overwrites
    assert "already exists" in capsys.readouterr().err


def test_checksum_mismatch_discards_the_download(server: Server, tmp_path: Path) -> None:
    server.files["/movielens/ml-100k.zip.md5"] = b"0123456789abcdef0123456789abcdef  ml-100k.zip\n"
    with pytest.raises(InputError, match="does not match the published 0123456789abcdef"):
        fetch("ml-100k", tmp_path / "o", base_url=server.url, cache_dir=tmp_path / "c", progress=False)
    assert not (tmp_path / "o").exists()
    assert list((tmp_path / "c").iterdir()) == []


def test_missing_file_is_http_404(server: Server, tmp_path: Path) -> None:
    with pytest.raises(InputError, match="HTTP 404"):
        fetch("ml-1m", tmp_path / "o", base_url=server.url, cache_dir=tmp_path / "c", progress=False)


def test_no_network_fails_fast_with_a_clear_message(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"http://127.0.0.1:{closed_port()}/"
    with pytest.raises(NetworkError, match="cannot reach the server"):
        fetch("ml-25m", tmp_path / "o", base_url=url, cache_dir=tmp_path / "c", timeout=2, progress=False)
    rc = cli(["data", "fetch", "ml-25m", "--out", str(tmp_path / "o"), "--base-url", url, "--timeout", "2"])
    assert rc == 2 and "No network?" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_unknown_dataset_and_bad_zip(
    server: Server, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli(["data", "fetch", "ml-7b", "--out", str(tmp_path / "o")]) == 2
    assert "unknown dataset 'ml-7b'; expected one of ml-100k" in capsys.readouterr().err
    evil = io.BytesIO()
    with zipfile.ZipFile(evil, "w") as z:
        z.writestr("../escape.txt", "x")
    server.files["/movielens/ml-1m.zip"] = evil.getvalue()
    server.files["/movielens/ml-1m.zip.md5"] = hashlib.md5(evil.getvalue()).hexdigest().encode()
    with pytest.raises(InputError, match="outside"):
        fetch("ml-1m", tmp_path / "o", base_url=server.url, cache_dir=tmp_path / "c", progress=False)
    assert not (tmp_path / "escape.txt").exists() and not (tmp_path / "o" / "ml-1m").exists()
    with pytest.raises(OutputError, match="cannot write"):
        blocker = tmp_path / "blocker"
        blocker.write_text("")
        fetch("ml-100k", tmp_path / "o2", base_url=server.url, cache_dir=blocker / "c", progress=False)
