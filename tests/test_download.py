"""`python -m replication.download` against a real HTTP server on 127.0.0.1 serving
synthetic files: hash checked before the rename, resume with a Range request after a
dropped connection, a server that ignores ranges, wrong bytes, a present file left alone,
and the safe extraction of the aux archive. No traffic leaves this machine."""

import hashlib
import http.server
import io
import json
import re
import socket
import tarfile
import threading

import numpy as np
import pytest

from replication import fetch
from replication.commands import download as dl
from replication.commands import main as replication_main
from replication.commands.common import run_cli
from replication.errors import ReplicationError

TIMEOUT = 10.0
PAYLOAD = bytes(range(256)) * 40  # 10,240 bytes


class FileServer:
    """Serves `files` (path -> bytes) the way `modes` (path -> good, drop, ignore-range,
    default good) says, and records every request's path and Range header (and If-Range,
    in `if_ranges`). Each file has a strong ETag made from its content, unless
    `validators[path]` is "none" (no ETag, no Last-Modified) or "date" (Last-Modified
    only, from `dates`); a Range request whose If-Range does not match gets the whole file."""

    def __init__(self):
        self.files: dict[str, bytes] = {}
        self.modes: dict[str, str] = {}
        self.validators: dict[str, str] = {}
        self.dates: dict[str, str] = {}
        self.requests: list[tuple[str, str | None]] = []
        self.if_ranges: list[str | None] = []
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            timeout = TIMEOUT

            def log_message(self, *args):
                pass

            def do_GET(self):
                server.requests.append((self.path, self.headers.get("Range")))
                server.if_ranges.append(self.headers.get("If-Range"))
                body = server.files.get(self.path)
                if body is None:
                    self.send_error(404)
                    return
                mode = server.modes.get(self.path, "good")
                kind = server.validators.get(self.path, "etag")
                validator = {"etag": f'"{hashlib.sha1(body).hexdigest()[:16]}"', "none": None,
                             "date": server.dates.get(self.path, "Tue, 01 Dec 2026 10:00:00 GMT")}[kind]
                match = re.fullmatch(r"bytes=(\d+)-", self.headers.get("Range") or "")
                if match is not None and self.headers.get("If-Range") is not None \
                        and self.headers.get("If-Range") != validator:
                    match = None  # the file changed since the partial was begun: send all of it

                def validators():
                    if kind == "etag":
                        self.send_header("ETag", validator)
                    elif kind == "date":
                        self.send_header("Last-Modified", validator)

                if mode == "drop":  # announce the whole file, send half of it, close
                    self.send_response(200)
                    validators()
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body[: len(body) // 2])
                    self.wfile.flush()
                    self.close_connection = True
                    return
                if mode == "ignore-range" or match is None:
                    self.send_response(200)
                    validators()
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                    return
                start = int(match[1])
                if start >= len(body):
                    self.send_response(416)
                    self.send_header("Content-Range", f"bytes */{len(body)}")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                self.send_response(206)
                validators()
                self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
                self.send_header("Content-Length", str(len(body) - start))
                self.end_headers()
                self.wfile.write(body[start:])

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.base = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    def url(self, name: str) -> str:
        return f"{self.base}/{name}"

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(TIMEOUT)


@pytest.fixture(autouse=True)
def _no_proxy(monkeypatch):
    """Requests to 127.0.0.1 must not be sent to a proxy named in the environment."""
    for name in ("http_proxy", "https_proxy", "all_proxy", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")


@pytest.fixture
def server():
    srv = FileServer()
    yield srv
    srv.close()


def _item(data: bytes, name="blob.bin", **kwargs) -> fetch.Item:
    return fetch.Item("test", name, "http://127.0.0.1:9/unused", "sha1", hashlib.sha1(data).hexdigest(), **kwargs)


def _validated(target, url, body):
    """Record the server's ETag for `body` beside a partial download, as the first attempt did."""
    record = {"url": url, "validator": f'"{hashlib.sha1(body).hexdigest()[:16]}"'}
    fetch.validator_path(target).write_text(json.dumps(record))


def _get(item, folder, url, **kwargs):
    return fetch.download(item, folder, url=url, progress=False, timeout=TIMEOUT, **kwargs)


def test_a_good_download_is_checked_and_renamed(server, tmp_path):
    server.files["/blob.bin"] = PAYLOAD
    result = _get(_item(PAYLOAD), tmp_path, server.url("blob.bin"))
    assert result.fetched and result.path == tmp_path / "blob.bin"
    assert result.path.read_bytes() == PAYLOAD
    assert (result.algorithm, result.digest) == ("sha1", hashlib.sha1(PAYLOAD).hexdigest())
    assert result.sha256 == hashlib.sha256(PAYLOAD).hexdigest()
    assert not fetch.partial_path(result.path).exists()
    assert server.requests == [("/blob.bin", None)]

    # A catalogue item with the expected digest given explicitly (md5, as for vgg16).
    server.files["/other.bin"] = PAYLOAD[::-1]
    md5 = hashlib.md5(PAYLOAD[::-1]).hexdigest()
    result = _get("vgg16", tmp_path, server.url("other.bin"), digest=md5, algorithm="md5")
    assert result.path == tmp_path / fetch.ITEMS["vgg16"].filename and result.digest == md5


def test_a_dropped_connection_keeps_the_partial_and_the_next_run_resumes(server, tmp_path):
    server.files["/blob.bin"] = PAYLOAD
    server.modes["/blob.bin"] = "drop"
    item = _item(PAYLOAD)
    half = len(PAYLOAD) // 2
    with pytest.raises(ReplicationError) as err:
        _get(item, tmp_path, server.url("blob.bin"))
    assert f"interrupted after {half} of {len(PAYLOAD)} bytes" in str(err.value)
    assert "run the same command again to resume" in str(err.value)
    partial = fetch.partial_path(tmp_path / "blob.bin")
    assert partial.name == ".blob.bin.download" and partial.read_bytes() == PAYLOAD[:half]
    assert not (tmp_path / "blob.bin").exists()

    server.modes["/blob.bin"] = "good"
    result = _get(item, tmp_path, server.url("blob.bin"))
    assert server.requests[-1] == ("/blob.bin", f"bytes={half}-")
    assert result.fetched and result.path.read_bytes() == PAYLOAD and not partial.exists()


def test_a_server_that_ignores_the_range_restarts_from_zero(server, tmp_path):
    server.files["/blob.bin"] = PAYLOAD
    server.modes["/blob.bin"] = "ignore-range"
    partial = fetch.partial_path(tmp_path / "blob.bin")
    partial.write_bytes(b"x" * 3000)  # not even a prefix of the file: must be thrown away
    _validated(tmp_path / "blob.bin", server.url("blob.bin"), PAYLOAD)
    result = _get(_item(PAYLOAD), tmp_path, server.url("blob.bin"))
    assert server.requests == [("/blob.bin", "bytes=3000-")]
    assert result.path.read_bytes() == PAYLOAD and not partial.exists()


def test_a_complete_partial_is_checked_without_fetching_more(server, tmp_path):
    server.files["/blob.bin"] = PAYLOAD
    fetch.partial_path(tmp_path / "blob.bin").write_bytes(PAYLOAD)  # killed between the last byte and the rename
    _validated(tmp_path / "blob.bin", server.url("blob.bin"), PAYLOAD)
    result = _get(_item(PAYLOAD), tmp_path, server.url("blob.bin"))
    assert server.requests == [("/blob.bin", f"bytes={len(PAYLOAD)}-")]  # answered 416
    assert result.fetched and result.path.read_bytes() == PAYLOAD


def test_wrong_bytes_leave_neither_target_nor_partial(server, tmp_path):
    wrong = PAYLOAD[:-1] + b"!"
    server.files["/blob.bin"] = wrong
    item = _item(PAYLOAD)
    with pytest.raises(ReplicationError) as err:
        _get(item, tmp_path, server.url("blob.bin"))
    message = str(err.value)
    assert message.startswith(f"{tmp_path / 'blob.bin'}: wrong sha1")
    assert item.digest in message and hashlib.sha1(wrong).hexdigest() in message
    assert not (tmp_path / "blob.bin").exists() and not fetch.partial_path(tmp_path / "blob.bin").exists()


def test_the_command_refuses_a_mirror_serving_the_wrong_alexnet(server, tmp_path, capsys):
    server.files["/bvlc_alexnet.caffemodel"] = PAYLOAD
    out = tmp_path / "weights"
    argv = ["alexnet", "--mirror", server.base, "--to", str(out), "--no-progress", "--timeout", str(TIMEOUT)]
    assert run_cli(dl.main, argv) == 2
    err = capsys.readouterr().err.strip()
    target = out / "bvlc_alexnet.caffemodel"
    assert err.startswith(f"error: {target}: wrong sha1: expected 9116a64c0fbe4459d18f4bb6b56d647b63920377, "
                          f"got {hashlib.sha1(PAYLOAD).hexdigest()}")
    assert "\n" not in err and "Traceback" not in err
    assert not target.exists() and not fetch.partial_path(target).exists()


def test_a_present_correct_target_is_not_fetched_again(server, tmp_path):
    server.files["/blob.bin"] = PAYLOAD
    (tmp_path / "blob.bin").write_bytes(PAYLOAD)
    result = _get(_item(PAYLOAD), tmp_path, server.url("blob.bin"))
    assert not result.fetched and server.requests == []

    # Present but wrong: fetched again, and the old file replaced only once the new one is checked.
    (tmp_path / "blob.bin").write_bytes(b"stale")
    lines = []
    result = _get(_item(PAYLOAD), tmp_path, server.url("blob.bin"), log=lines.append)
    assert result.fetched and result.path.read_bytes() == PAYLOAD
    assert len(lines) == 1 and "present but wrong sha1" in lines[0] and "moved aside to blob.bin.failed" in lines[0]
    assert (tmp_path / "blob.bin.failed").read_bytes() == b"stale"


def _tar_gz(members: dict[str, bytes], symlinks=()) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        for name, points_to in symlinks:
            info = tarfile.TarInfo(name)
            info.type, info.linkname = tarfile.SYMTYPE, points_to
            tar.addfile(info)
    return buffer.getvalue()


def test_the_aux_archive_yields_val_txt_and_synset_words_and_nothing_else(server, tmp_path):
    val = b"ILSVRC2012_val_00000001.JPEG 65\nILSVRC2012_val_00000002.JPEG 970\n"
    words = b"n01440764 tench, Tinca tinca\nn01443537 goldfish, Carassius auratus\n"
    archive = _tar_gz({"./val.txt": val, "synset_words.txt": words, "../evil": b"owned", "train.txt": b"x 0\n"})
    server.files["/caffe_ilsvrc12.tar.gz"] = archive
    folder = tmp_path / "weights"
    result = _get("aux", folder, server.url("caffe_ilsvrc12.tar.gz"))
    assert result.digest is None and result.sha256 == hashlib.sha256(archive).hexdigest()
    assert result.extracted == (folder / "val.txt", folder / "synset_words.txt")
    assert (folder / "val.txt").read_bytes() == val and (folder / "synset_words.txt").read_bytes() == words
    assert not (tmp_path / "evil").exists()
    assert sorted(p.name for p in folder.iterdir() if not p.name.startswith(".")) == [
        "caffe_ilsvrc12.tar.gz", "caffe_ilsvrc12.tar.gz.sha256", "synset_words.txt", "val.txt"]

    # Present: not fetched again, but a removed member is extracted again.
    (folder / "val.txt").unlink()
    result = _get("aux", folder, server.url("caffe_ilsvrc12.tar.gz"))
    assert not result.fetched and result.extracted == (folder / "val.txt",)
    assert len(server.requests) == 1


def test_extraction_refuses_missing_members_links_and_paths(tmp_path):
    archive = tmp_path / "aux.tar.gz"
    archive.write_bytes(_tar_gz({"synset_words.txt": b"n0 x\n"}, symlinks=[("val.txt", "/etc/passwd")]))
    with pytest.raises(ReplicationError, match="'val.txt' is not a regular file"):
        fetch.extract_members(archive, tmp_path, ["val.txt"])
    with pytest.raises(ReplicationError, match="has no member 'test.txt'"):
        fetch.extract_members(archive, tmp_path, ["test.txt"])
    with pytest.raises(ReplicationError, match="not a plain file name"):
        fetch.extract_members(archive, tmp_path, ["../evil"])
    (tmp_path / "broken.tar.gz").write_bytes(b"not gzip at all")
    with pytest.raises(ReplicationError, match="not a readable tar archive"):
        fetch.extract_members(tmp_path / "broken.tar.gz", tmp_path, ["val.txt"])
    assert not (tmp_path / "val.txt").exists()


def _npy(array) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array)
    return buffer.getvalue()


def test_the_command_fetches_the_mean_and_aux_from_a_mirror(server, tmp_path, capsys):
    mean = _npy(np.full((3, 256, 256), 110.0))
    server.files["/ilsvrc_2012_mean.npy"] = mean
    server.files["/caffe_ilsvrc12.tar.gz"] = _tar_gz({"val.txt": b"a.JPEG 0\n", "synset_words.txt": b"n0 x\n"})
    out = tmp_path / "weights"
    argv = ["mean", "aux", "--mirror", server.base + "/", "--to", str(out), "--no-progress"]
    assert run_cli(dl.main, argv) == 0
    printed = capsys.readouterr().out
    assert (f"sha256 {hashlib.sha256(mean).hexdigest()} (no published hash; recorded in ilsvrc_2012_mean.npy.sha256 "
            "at this first download, checked by every later run); a 3x256x256 mean image") in printed
    assert f"extracted {out / 'val.txt'}, {out / 'synset_words.txt'}" in printed
    assert "https://image-net.org/download-images" in printed and "ILSVRC2012_img_val.tar" in printed
    assert {path for path, _ in server.requests} == {"/ilsvrc_2012_mean.npy", "/caffe_ilsvrc12.tar.gz"}

    assert run_cli(dl.main, argv) == 0  # everything present: nothing fetched
    assert "already present, not downloaded again" in capsys.readouterr().out
    assert len(server.requests) == 2


def test_a_mean_image_of_the_wrong_shape_is_refused(server, tmp_path, capsys):
    server.files["/ilsvrc_2012_mean.npy"] = _npy(np.zeros((3, 227, 227)))
    argv = ["mean", "--mirror", server.base, "--to", str(tmp_path), "--no-progress"]
    assert run_cli(dl.main, argv) == 2
    err = capsys.readouterr().err
    assert "is not a 3x256x256 mean image (shape 3x227x227)" in err
    assert not (tmp_path / "ilsvrc_2012_mean.npy").exists()
    assert not fetch.partial_path(tmp_path / "ilsvrc_2012_mean.npy").exists()


def test_unreachable_servers_and_http_errors_are_one_line(server, tmp_path, capsys):
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(ReplicationError, match="cannot reach http://127.0.0.1"):
        _get(_item(PAYLOAD), tmp_path, f"http://127.0.0.1:{port}/blob.bin")
    with pytest.raises(ReplicationError, match="HTTP 404"):
        _get(_item(PAYLOAD), tmp_path, server.url("missing.bin"))
    assert run_cli(dl.main, ["--mirror", "ftp://example.org"]) == 2
    assert "expected an http:// or https:// URL" in capsys.readouterr().err
    assert run_cli(dl.main, ["alexnett"]) == 2
    assert "unknown 'alexnett'" in capsys.readouterr().err


def test_list_names_every_item_its_hash_and_where_the_images_are(capsys):
    assert replication_main.main(["download", "--list"]) == 0
    printed = capsys.readouterr().out
    for item in fetch.ITEMS.values():
        assert item.url in printed
    assert "sha1 9116a64c0fbe4459d18f4bb6b56d647b63920377" in printed
    assert "md5 64373286793e3c8b2b4e3219cbf3544b" in printed
    assert "https://image-net.org/download-images" in printed
    assert fetch.DEFAULT_ITEMS == ("alexnet", "mean", "aux")


def _unhashed(name="blob.bin", **kwargs) -> fetch.Item:
    """An item with no published hash, as the mean image and the aux archive are."""
    return fetch.Item("test", name, "http://127.0.0.1:9/unused", **kwargs)


def _drop_then(server, tmp_path, body, item):
    """A first attempt that stops halfway through `body`, as a dropped connection does."""
    server.files["/blob.bin"] = body
    server.modes["/blob.bin"] = "drop"
    with pytest.raises(ReplicationError, match="interrupted"):
        _get(item, tmp_path, server.url("blob.bin"))
    server.modes["/blob.bin"] = "good"
    return fetch.partial_path(tmp_path / "blob.bin")


def test_a_remote_file_that_changed_is_fetched_whole_never_spliced(server, tmp_path):
    old, new = PAYLOAD, PAYLOAD[::-1]  # same size, other bytes
    partial = _drop_then(server, tmp_path, old, _unhashed())
    assert partial.exists() and fetch.validator_path(tmp_path / "blob.bin").exists()
    server.files["/blob.bin"] = new  # the server's file changed between the attempts (new ETag)
    result = _get(_unhashed(), tmp_path, server.url("blob.bin"))
    assert server.requests[-1] == ("/blob.bin", f"bytes={len(old) // 2}-")  # asked to resume ...
    assert server.if_ranges[-1] == f'"{hashlib.sha1(old).hexdigest()[:16]}"'  # ... only if unchanged
    assert result.path.read_bytes() == new  # answered with the whole new file, not half of each
    assert not fetch.validator_path(tmp_path / "blob.bin").exists()


def test_a_last_modified_date_is_a_validator_too(server, tmp_path):
    server.validators["/blob.bin"] = "date"
    partial = _drop_then(server, tmp_path, PAYLOAD, _unhashed())
    result = _get(_unhashed(), tmp_path, server.url("blob.bin"))
    assert server.if_ranges[-1] == "Tue, 01 Dec 2026 10:00:00 GMT"
    assert server.requests[-1] == ("/blob.bin", f"bytes={len(PAYLOAD) // 2}-")
    assert result.path.read_bytes() == PAYLOAD and not partial.exists()


def test_without_a_validator_a_partial_is_started_over(server, tmp_path):
    server.validators["/blob.bin"] = "none"
    _drop_then(server, tmp_path, PAYLOAD, _unhashed())
    assert not fetch.validator_path(tmp_path / "blob.bin").exists()
    server.files["/blob.bin"] = PAYLOAD[::-1]
    result = _get(_unhashed(), tmp_path, server.url("blob.bin"))
    assert server.requests[-1] == ("/blob.bin", None)  # no Range request: nothing to splice onto
    assert result.path.read_bytes() == PAYLOAD[::-1]


def test_an_unhashed_file_is_pinned_at_first_download_and_checked_after(server, tmp_path):
    server.files["/blob.bin"] = PAYLOAD
    first = _get(_unhashed(), tmp_path, server.url("blob.bin"))
    assert first.pinned and first.digest is None
    pin = fetch.pin_path(tmp_path / "blob.bin")
    assert pin.read_text().split() == [hashlib.sha256(PAYLOAD).hexdigest(), "blob.bin"]
    again = _get(_unhashed(), tmp_path, server.url("blob.bin"))
    assert not again.fetched and not again.pinned

    # The file is lost and the server now serves other bytes: refused, nothing under the name.
    (tmp_path / "blob.bin").unlink()
    server.files["/blob.bin"] = PAYLOAD[::-1]
    with pytest.raises(ReplicationError, match="differs from the .* recorded at its first download"):
        _get(_unhashed(), tmp_path, server.url("blob.bin"))
    assert not (tmp_path / "blob.bin").exists() and not fetch.partial_path(tmp_path / "blob.bin").exists()


def test_an_archive_that_does_not_unpack_never_takes_its_name_and_a_fixed_mirror_heals(server, tmp_path, capsys):
    out = tmp_path / "weights"
    server.files["/caffe_ilsvrc12.tar.gz"] = bytes(range(256)) * 16  # random bytes, no published hash
    argv = ["aux", "--mirror", server.base, "--to", str(out), "--no-progress", "--timeout", str(TIMEOUT)]
    assert run_cli(dl.main, argv) == 2
    err = capsys.readouterr().err.strip()
    assert "not a readable tar archive" in err and "the download was removed" in err and "\n" not in err
    assert not (out / "caffe_ilsvrc12.tar.gz").exists() and not fetch.pin_path(out / "caffe_ilsvrc12.tar.gz").exists()

    server.files["/caffe_ilsvrc12.tar.gz"] = _tar_gz({"val.txt": b"a.JPEG 0\n", "synset_words.txt": b"n0 x\n"})
    assert run_cli(dl.main, argv) == 0
    assert (out / "val.txt").read_bytes() == b"a.JPEG 0\n"


def test_a_second_download_of_the_same_file_is_refused(server, tmp_path):
    import fcntl

    server.files["/blob.bin"] = PAYLOAD
    with open(tmp_path / ".blob.bin.download.lock", "a+b") as held:
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)  # as a running download holds it
        with pytest.raises(ReplicationError, match="another download of this file into this folder is running"):
            _get(_item(PAYLOAD), tmp_path, server.url("blob.bin"))
    assert not (tmp_path / "blob.bin").exists() and server.requests == []


def test_the_command_in_a_subprocess_resumes_only_an_unchanged_file(server, tmp_path):
    import os
    import subprocess
    import sys

    old, new = PAYLOAD * 4, PAYLOAD[::-1] * 4
    server.files["/ilsvrc_2012_mean.npy"] = old
    server.modes["/ilsvrc_2012_mean.npy"] = "drop"
    env = {**os.environ, "no_proxy": "127.0.0.1", "NO_PROXY": "127.0.0.1"}
    argv = [sys.executable, "-m", "replication.download", "mean", "--mirror", server.base, "--to", str(tmp_path),
            "--no-progress", "--timeout", str(TIMEOUT)]
    first = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=120)
    assert first.returncode == 2 and "interrupted after" in first.stderr and "Traceback" not in first.stderr
    server.files["/ilsvrc_2012_mean.npy"], server.modes["/ilsvrc_2012_mean.npy"] = new, "good"
    second = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=120)
    # whole new bytes (not a splice of the two), then refused as no mean image: one line, nothing kept
    assert second.returncode == 2 and "is not a readable .npy array" in second.stderr
    assert len(second.stderr.strip().splitlines()) == 1
    assert server.if_ranges[-1] is not None
    assert not (tmp_path / "ilsvrc_2012_mean.npy").exists()
    assert not fetch.partial_path(tmp_path / "ilsvrc_2012_mean.npy").exists()


def test_first_contact_points_at_the_download_command(tmp_path):
    """`reproduce` with nothing in place names each missing input with the project's own
    command that fetches it, and the one thing it cannot fetch, the images."""
    import os
    import subprocess
    import sys

    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = {**os.environ, "PYTHONPATH": root + os.pathsep + os.environ.get("PYTHONPATH", "")}
    done = subprocess.run([sys.executable, "-m", "replication.reproduce", "--data", "nowhere"], cwd=tmp_path,
                          capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert "python -m replication.download alexnet" in done.stderr
    assert "python -m replication.download mean" in done.stderr
    assert "https://image-net.org/download-images" in done.stderr
    assert "curl" not in done.stderr
    assert not any(tmp_path.iterdir())  # nothing written
