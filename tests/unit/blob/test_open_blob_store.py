"""open_blob_store: folder paths, file:// URLs, s3:// URLs and refused locations."""
from __future__ import annotations

from pathlib import Path

import pytest

from exchange.blobs import LocalBlobStore, S3BlobStore, open_blob_store
from exchange.errors import ConfigError


def test_plain_path_and_file_url(tmp_path: Path, monkeypatch) -> None:
    store = open_blob_store(str(tmp_path / "a"))
    assert isinstance(store, LocalBlobStore) and store.root == (tmp_path / "a").resolve()
    assert open_blob_store(f"file://{tmp_path}/b").root == (tmp_path / "b").resolve()
    assert open_blob_store(f"file://localhost{tmp_path}/c").root == (tmp_path / "c").resolve()
    monkeypatch.chdir(tmp_path)
    assert open_blob_store("var/blobs").root == (tmp_path / "var/blobs").resolve()
    assert (tmp_path / "var/blobs").is_dir()


def test_s3_url_gives_bucket_and_prefix(monkeypatch) -> None:
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    store = open_blob_store("s3://exchange-bucket/prod/blobs/", s3_endpoint_url="http://127.0.0.1:1")
    assert isinstance(store, S3BlobStore)
    assert (store.bucket, store.prefix) == ("exchange-bucket", "prod/blobs/")
    assert store.client.meta.endpoint_url == "http://127.0.0.1:1"
    marker = object()
    assert open_blob_store("s3://b", s3_client=marker).client is marker


@pytest.mark.parametrize("url", ["", "s3://", "http://example.com/blobs", "file://otherhost/x", "ftp://x/y"])
def test_refused_locations(url: str) -> None:
    with pytest.raises(ConfigError):
        open_blob_store(url)
