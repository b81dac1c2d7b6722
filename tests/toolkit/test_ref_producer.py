"""PULL producer of the reference endpoint: listing, header inference, caching, data, 304, gzip, auth."""

from __future__ import annotations

import gzip
import json
import os
from datetime import datetime
from pathlib import Path

import pytest
import requests

from exchange.toolkit import ReferenceEndpoint, ref_producer
from exchange.toolkit.ref_producer import ProducerFolder, iter_file

LOYAL = (
    'email,phone_e164,first_name,customer_id,country\na@example.com,+33612345678,"Anne\nMarie",C1,FR\n'
    "b@example.com,+4915112345678,Bob,C2,DE\nc@example.com,,Chloé,C3,FR\n"
)


def write(folder: Path, stem: str, text: str, sidecar: dict | None = None) -> Path:
    path = folder / f"{stem}.csv"
    path.write_text(text, encoding="utf-8")
    if sidecar is not None:
        path.with_suffix(".json").write_text(json.dumps(sidecar), encoding="utf-8")
    return path


def test_listing_infers_metadata_from_files_and_sidecars(
    endpoint: ReferenceEndpoint, producer_dir: Path, http: requests.Session
) -> None:
    write(
        producer_dir, "loyal", LOYAL, {"name": "Loyal customers", "description": "3+ orders", "tags": ["crm"]}
    )
    write(producer_dir, "devices", "\ufeffmaid,segment\nAAAA-1,gold\n")
    write(producer_dir, "hidden file", "email\nx@example.com\n")  # not a usable id: skipped
    (producer_dir / "notes.txt").write_text("not an audience")

    response = http.get(f"{endpoint.url}/audiences", timeout=5)

    assert response.status_code == 200
    devices, loyal = response.json()["audiences"]
    assert loyal == {
        "id": "loyal",
        "name": "Loyal customers",
        "description": "3+ orders",
        "identifiers": ["email", "phone_e164", "customer_id"],
        "attributes": ["first_name", "country"],
        "size": 3,
        "updated_at": loyal["updated_at"],
        "version": loyal["version"],
        "tags": ["crm"],
    }
    assert datetime.fromisoformat(loyal["updated_at"]).utcoffset().total_seconds() == 0
    assert len(loyal["version"]) == 32
    assert (devices["id"], devices["name"], devices["size"]) == ("devices", "Devices", 1)
    assert (devices["identifiers"], devices["attributes"]) == (["maid"], ["segment"])


def test_version_is_content_derived_and_stable(producer_dir: Path) -> None:
    path = write(producer_dir, "loyal", LOYAL)
    folder = ProducerFolder(producer_dir)
    first = folder.get("loyal").version
    os.utime(path, ns=(1_000_000_000, 1_000_000_000))  # touched, same content
    assert folder.get("loyal").version == first
    assert ProducerFolder(producer_dir).get("loyal").version == first
    write(producer_dir, "loyal", LOYAL + "d@example.com,,Dan,C4,FR\n")
    changed = folder.get("loyal")
    assert changed.version != first and changed.size == 4


def test_rows_are_counted_once_per_file_change(producer_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []
    real_scan = ref_producer.scan_file
    monkeypatch.setattr(ref_producer, "scan_file", lambda path: calls.append(path) or real_scan(path))
    path = write(producer_dir, "loyal", LOYAL)
    folder = ProducerFolder(producer_dir)
    for _ in range(3):
        folder.list()
    assert len(calls) == 1
    path.write_text(LOYAL + "z@example.com,,Zoe,C9,FR\n", encoding="utf-8")
    assert folder.list()[0].size == 4
    assert len(calls) == 2


@pytest.mark.parametrize(
    ("text", "size"),
    [
        ("email\n", 0),
        ("email\na@example.com", 1),  # no final newline
        ("email\r\na\r\nb\r\n", 2),
        ('email,note\na,"x\n""quoted"" y\nz"\nb,plain\n', 2),
    ],
)
def test_size_counts_records_not_lines(producer_dir: Path, text: str, size: int) -> None:
    write(producer_dir, "a", text)
    assert ProducerFolder(producer_dir).get("a").size == size


def test_data_is_streamed_with_etag_and_honours_if_none_match(
    endpoint: ReferenceEndpoint, producer_dir: Path, http: requests.Session
) -> None:
    write(producer_dir, "loyal", LOYAL)
    url = f"{endpoint.url}/audiences/loyal/data"

    response = http.get(url, headers={"Accept-Encoding": "identity"}, timeout=5)
    version = http.get(f"{endpoint.url}/audiences", timeout=5).json()["audiences"][0]["version"]

    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("text/csv")
    assert response.content == LOYAL.encode()
    assert response.headers["Content-Length"] == str(len(LOYAL.encode()))
    assert response.headers["ETag"] == f'"{version}"'
    for tag in (version, f'"{version}"', f'W/"{version}"', f'"other", "{version}"', "*"):
        not_modified = http.get(url, headers={"If-None-Match": tag}, timeout=5)
        assert (not_modified.status_code, not_modified.content) == (304, b"")
        assert not_modified.headers["ETag"] == f'"{version}"'
    assert http.get(url, headers={"If-None-Match": '"stale"'}, timeout=5).status_code == 200


def test_data_is_gzip_compressed_when_accepted(
    endpoint: ReferenceEndpoint, producer_dir: Path, http: requests.Session
) -> None:
    write(producer_dir, "loyal", LOYAL)
    response = http.get(
        f"{endpoint.url}/audiences/loyal/data", headers={"Accept-Encoding": "gzip"}, stream=True, timeout=5
    )
    raw = response.raw.read(decode_content=False)
    assert response.headers["Content-Encoding"] == "gzip"
    assert "Content-Length" not in response.headers
    assert gzip.decompress(raw) == LOYAL.encode()


def test_large_files_are_read_in_chunks(tmp_path: Path) -> None:
    path = tmp_path / "big.csv"
    path.write_bytes(b"email\n" + b"someone@example.com\n" * 100_000)
    chunks = list(iter_file(path))
    assert len(chunks) > 1 and max(map(len, chunks)) <= ref_producer.CHUNK_SIZE
    assert b"".join(chunks) == path.read_bytes()
    assert gzip.decompress(b"".join(iter_file(path, gzip=True))) == path.read_bytes()


@pytest.mark.parametrize("audience_id", ["missing", "..%2Fsecret", ".hidden", "loyal.json"])
def test_unknown_audiences_are_404_problems(
    endpoint: ReferenceEndpoint, producer_dir: Path, http: requests.Session, audience_id: str
) -> None:
    write(producer_dir, "loyal", LOYAL)
    (producer_dir.parent / "secret.csv").write_text("email\nleak@example.com\n")
    response = http.get(f"{endpoint.url}/audiences/{audience_id}/data", timeout=5)
    assert response.status_code == 404
    assert response.headers["Content-Type"] == "application/problem+json"
    assert response.json()["status"] == 404


@pytest.mark.parametrize("authorization", [None, "Bearer wrong", "Basic czNjcmV0LXRva2Vu", "s3cret-token"])
def test_every_call_needs_the_credential(
    endpoint: ReferenceEndpoint, producer_dir: Path, authorization: str | None
) -> None:
    write(producer_dir, "loyal", LOYAL)
    headers = {"Authorization": authorization} if authorization else {}
    for method, path in [
        ("GET", "/audiences"),
        ("GET", "/audiences/loyal/data"),
        ("POST", "/audiences/loyal/data?mode=add"),
    ]:
        response = requests.request(
            method, endpoint.url + path, headers=headers, data=b"email\na\n", timeout=5
        )
        assert response.status_code == 401
        assert response.headers["WWW-Authenticate"] == "Bearer"
        assert response.json()["title"] == "Unauthorized"
    assert requests.get(f"{endpoint.url}/healthz", timeout=5).status_code == 200


def test_without_credential_calls_are_open(producer_dir: Path) -> None:
    write(producer_dir, "loyal", LOYAL)
    with ReferenceEndpoint(producer_dir=producer_dir) as open_endpoint:
        assert requests.get(f"{open_endpoint.url}/audiences", timeout=5).status_code == 200
        # A producer-only endpoint is not a consumer.
        pushed = requests.post(f"{open_endpoint.url}/audiences/x/data?mode=add", data="email\na\n", timeout=5)
        assert pushed.status_code == 404
