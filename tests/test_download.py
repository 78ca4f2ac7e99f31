"""The download primitive against a real HTTP server with injected faults."""

from __future__ import annotations

import hashlib
import os

import pytest

from builder.download import Cache, Digest, Download, Downloader
from builder.errors import ChecksumError, MirrorError, NotFoundError
from tests.rig.httpserver import MirrorServer

PAYLOAD = os.urandom(300_000)
SHA = hashlib.sha256(PAYLOAD).hexdigest()


@pytest.fixture
def server(tmp_path):
    root = tmp_path / "www"
    (root / "a").mkdir(parents=True)
    (root / "b").mkdir()
    (root / "a" / "blob.bin").write_bytes(PAYLOAD)
    (root / "b" / "blob.bin").write_bytes(PAYLOAD)
    with MirrorServer(root) as srv:
        yield srv


SIZE = len(PAYLOAD)


def item(server, tmp_path, *paths, digest=SHA, size=SIZE, headers=None):
    return Download(
        tuple(server.url + p for p in paths),
        tmp_path / "out" / "blob.bin",
        Digest("sha256", digest) if digest else None,
        size,
        headers or {},
    )


def downloader(tmp_path, cache=True):
    return Downloader(Cache(tmp_path / "cache") if cache else None, backoff=0.01)


def test_verified_file_lands_under_final_name(server, tmp_path):
    got = downloader(tmp_path).fetch(item(server, tmp_path, "/a/blob.bin"))
    assert got.path.read_bytes() == PAYLOAD and got.sha256 == SHA and not got.from_cache
    assert [p.name for p in got.path.parent.iterdir()] == ["blob.bin"]


def test_cache_hit_makes_no_request(server, tmp_path):
    dl = downloader(tmp_path)
    dl.fetch(item(server, tmp_path, "/a/blob.bin"))
    (tmp_path / "out" / "blob.bin").unlink()
    server.reset()
    got = dl.fetch(item(server, tmp_path, "/a/blob.bin"))
    assert got.from_cache and server.count("/a/blob.bin") == 0
    assert got.path.read_bytes() == PAYLOAD


def test_damaged_cache_entry_is_refetched(server, tmp_path):
    dl = downloader(tmp_path)
    dl.fetch(item(server, tmp_path, "/a/blob.bin"))
    cached = dl.cache.path_for(Digest("sha256", SHA))
    cached.unlink()
    cached.write_bytes(b"rotten")
    server.reset()
    got = dl.fetch(item(server, tmp_path, "/a/blob.bin"))
    assert not got.from_cache and server.count("/a/blob.bin") == 1


def _rewrite_keeping_stamp(path, data):
    """Change a file's bytes in place (same inode and size) and put its mtime back: what
    the cache's index cannot see, and ``--verify-cache`` exists for."""
    st = path.stat()
    with open(path, "r+b") as fh:
        fh.write(data)
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))


def test_unchanged_cache_entry_is_used_by_its_index_without_hashing(server, tmp_path):
    dl = downloader(tmp_path)
    dl.fetch(item(server, tmp_path, "/a/blob.bin"))
    cached = dl.cache.path_for(Digest("sha256", SHA))
    assert cached.with_name(cached.name + ".verified").read_text().split()[0] == SHA
    flipped = bytes([PAYLOAD[0] ^ 1]) + PAYLOAD[1:]
    _rewrite_keeping_stamp(cached, flipped)
    (tmp_path / "out" / "blob.bin").unlink()
    server.reset()
    # the index still matches (same size, mtime, inode): the entry is not read again ...
    got = dl.fetch(item(server, tmp_path, "/a/blob.bin"))
    assert got.from_cache and got.sha256 == SHA and server.count("/a/blob.bin") == 0
    # ... while --verify-cache hashes it, finds the damage and fetches the file again
    (tmp_path / "out" / "blob.bin").unlink()
    strict = Downloader(Cache(tmp_path / "cache", verify=True), backoff=0.01)
    got = strict.fetch(item(server, tmp_path, "/a/blob.bin"))
    assert not got.from_cache and server.count("/a/blob.bin") == 1
    assert got.path.read_bytes() == PAYLOAD


def test_cache_entry_changed_in_place_is_hashed_again(server, tmp_path):
    dl = downloader(tmp_path)
    dl.fetch(item(server, tmp_path, "/a/blob.bin"))
    cached = dl.cache.path_for(Digest("sha256", SHA))
    with open(cached, "r+b") as fh:  # same inode and size, a new mtime
        fh.write(bytes([PAYLOAD[0] ^ 1]))
    os.utime(cached, ns=(0, cached.stat().st_mtime_ns + 1_000_000_000))
    (tmp_path / "out" / "blob.bin").unlink()
    server.reset()
    got = dl.fetch(item(server, tmp_path, "/a/blob.bin"))
    assert not got.from_cache and server.count("/a/blob.bin") == 1


def test_a_document_is_revalidated_and_reused_on_304(server, tmp_path):
    """repomd.xml-like documents: the second fetch is one conditional request answered 304
    (the kept copy is used); once the file changes, it is fetched whole again."""
    dl, work = downloader(tmp_path), tmp_path / "work"
    work.mkdir()
    urls = [server.url + "/missing/doc.xml", server.url + "/a/blob.bin"]
    assert dl.get_current(urls, "doc", work, lambda body, url: (body, url)) == (PAYLOAD, urls[1])
    server.reset()
    assert dl.get_current(urls, "doc", work, lambda body, url: (body, url)) == (PAYLOAD, urls[1])
    [entry] = [e for e in server.log if e["path"] == "/a/blob.bin"]
    [request] = [r for r in server.requests if r.path == "/a/blob.bin"]
    assert entry["status"] == 304 and entry["sent"] == 0 and dl.stats.not_modified == 1
    assert "If-None-Match" in request.headers and "If-Modified-Since" in request.headers
    assert (
        "If-None-Match"
        not in next(r for r in server.requests if r.path == "/missing/doc.xml").headers
    )
    (server.root / "a" / "blob.bin").write_bytes(b"changed upstream")
    server.reset()
    assert dl.get_current(urls, "doc", work, lambda body, url: (body, url)) == (
        b"changed upstream",
        urls[1],
    )
    assert [e["status"] for e in server.log if e["path"] == "/a/blob.bin"] == [200]
    assert list(work.iterdir()) == []


def test_a_document_its_reader_refused_is_not_kept(server, tmp_path):
    dl, work = downloader(tmp_path), tmp_path / "work"
    work.mkdir()

    def refuse(body, url):
        raise MirrorError(f"{url} is not valid")

    with pytest.raises(MirrorError):
        dl.get_current([server.url + "/a/blob.bin"], "doc", work, refuse)
    server.reset()
    dl.get_current([server.url + "/a/blob.bin"], "doc", work, lambda body, url: body)
    [request] = server.requests
    assert "If-None-Match" not in request.headers and "If-Modified-Since" not in request.headers


def test_5xx_is_retried(server, tmp_path):
    server.fail("/a/blob.bin", status=503, times=2)
    dl = downloader(tmp_path)
    dl.fetch(item(server, tmp_path, "/a/blob.bin"))
    assert server.count("/a/blob.bin") == 3 and dl.stats.retries == 2


def test_truncated_body_resumes_with_range(server, tmp_path):
    server.truncate("/a/blob.bin", times=1)
    got = downloader(tmp_path).fetch(item(server, tmp_path, "/a/blob.bin"))
    assert got.path.read_bytes() == PAYLOAD
    ranges = [r.headers.get("Range") for r in server.requests]
    assert ranges[0] is None and ranges[1] and ranges[1].startswith("bytes=")


def test_corruption_is_retried_then_named(server, tmp_path):
    server.corrupt("/a/blob.bin")
    dl = downloader(tmp_path)
    with pytest.raises(ChecksumError) as err:
        dl.fetch(item(server, tmp_path, "/a/blob.bin"))
    message = str(err.value)
    assert (
        "blob.bin" in message and f"expected sha256:{SHA}" in message and "got sha256:" in message
    )
    assert server.count("/a/blob.bin") == dl.retries + 1
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_transient_corruption_recovers(server, tmp_path):
    server.corrupt("/a/blob.bin", times=1)
    got = downloader(tmp_path).fetch(item(server, tmp_path, "/a/blob.bin"))
    assert got.sha256 == SHA and server.count("/a/blob.bin") == 2


def test_404_falls_back_to_next_url_at_once(server, tmp_path):
    got = downloader(tmp_path).fetch(item(server, tmp_path, "/missing/blob.bin", "/b/blob.bin"))
    assert got.url.endswith("/b/blob.bin")
    assert server.count("/missing/blob.bin") == 1


def test_5xx_exhausted_falls_back(server, tmp_path):
    server.fail("/a/blob.bin", status=502, times=None)
    got = downloader(tmp_path).fetch(item(server, tmp_path, "/a/blob.bin", "/b/blob.bin"))
    assert got.url.endswith("/b/blob.bin")


def test_everything_missing_is_not_found(server, tmp_path):
    with pytest.raises(NotFoundError, match="not found"):
        downloader(tmp_path).fetch(item(server, tmp_path, "/x/blob.bin", "/y/blob.bin"))


def test_unreachable_mirror_names_the_url(tmp_path):
    dl = Downloader(None, retries=1, backoff=0.01)
    bad = Download(("http://127.0.0.1:9/blob.bin",), tmp_path / "blob.bin")
    with pytest.raises(MirrorError, match=r"cannot reach http://127\.0\.0\.1:9/blob\.bin"):
        dl.fetch(bad)


def test_redirect_to_other_host_drops_authorization(server, tmp_path):
    root = tmp_path / "storage"
    root.mkdir()
    (root / "blob.bin").write_bytes(PAYLOAD)
    with MirrorServer(root) as storage:
        server.redirect("/v2/", storage.url + "/")
        headers = {"Authorization": "Bearer secret"}
        got = downloader(tmp_path).fetch(item(server, tmp_path, "/v2/blob.bin", headers=headers))
        assert got.sha256 == SHA
        assert server.requests[0].headers.get("Authorization") == "Bearer secret"
        assert storage.count("/blob.bin") == 1
        assert "Authorization" not in storage.requests[0].headers


def test_parallel_fetch_keeps_order(server, tmp_path):
    items = [
        Download((server.url + p,), tmp_path / f"{i}.bin", Digest("sha256", SHA), len(PAYLOAD))
        for i, p in enumerate(["/a/blob.bin", "/b/blob.bin"] * 3)
    ]
    dl = downloader(tmp_path, cache=False)
    got = dl.fetch_all(items, jobs=3)
    assert [g.path.name for g in got] == [f"{i}.bin" for i in range(6)]
    assert dl.stats.network_bytes == 6 * len(PAYLOAD)
