"""PUSH consumer folder logic: add/remove/replace semantics, parts, idempotency, union of columns."""

from __future__ import annotations

import csv
import gzip
import threading
from pathlib import Path

import pytest

from exchange.toolkit.ref_consumer import ConsumerFolder, PartOrderError
from exchange.toolkit.ref_csv import CsvFormatError


def rows_of(path: Path) -> list[list[str]]:
    with path.open(encoding="utf-8", newline="") as handle:
        return list(csv.reader(handle))


def send(folder: ConsumerFolder, mode: str, text: str | bytes, audience: str = "dest", **kwargs):
    body = text.encode() if isinstance(text, str) else text
    # Small chunks make sure nothing depends on a row arriving in one piece.
    return folder.receive(audience, mode, (body[i : i + 7] for i in range(0, len(body), 7)), **kwargs)


@pytest.fixture
def folder(tmp_path: Path) -> ConsumerFolder:
    return ConsumerFolder(tmp_path / "consumer")


def test_add_creates_the_audience_and_rejects_bad_rows(folder: ConsumerFolder) -> None:
    result = send(folder, "add", "email,country\na@x.com,FR\n,DE\nb@x.com,DE,extra\n\nc@x.com,ES\n")
    assert (result.accepted, result.rejected) == (2, 2)
    assert rows_of(folder.path_for("dest")) == [["email", "country"], ["a@x.com", "FR"], ["c@x.com", "ES"]]


def test_add_upserts_by_key_and_appends_new_members(folder: ConsumerFolder) -> None:
    send(folder, "add", "email,customer_id,tier\na@x.com,C1,silver\nb@x.com,C2,silver\n")
    send(folder, "add", "email,customer_id,tier\nc@x.com,C3,bronze\n")  # new members only
    result = send(
        folder, "add", "email,customer_id,tier\na@x.com,C1,gold\nd@x.com,C4,gold\na@x.com,C1,platinum\n"
    )
    assert (result.accepted, result.rejected) == (3, 0)
    assert rows_of(folder.path_for("dest")) == [
        ["email", "customer_id", "tier"],
        ["a@x.com", "C1", "platinum"],
        ["b@x.com", "C2", "silver"],
        ["c@x.com", "C3", "bronze"],
        ["d@x.com", "C4", "gold"],
    ]


def test_add_with_other_columns_rewrites_with_the_union(folder: ConsumerFolder) -> None:
    send(folder, "add", "email,country\na@x.com,FR\nb@x.com,DE\n")
    send(folder, "add", "tier,email\ngold,a@x.com\nsilver,c@x.com\n")
    assert rows_of(folder.path_for("dest")) == [
        ["email", "country", "tier"],
        ["a@x.com", "FR", "gold"],
        ["b@x.com", "DE", ""],
        ["c@x.com", "", "silver"],
    ]
    # The cache of keys follows the rewritten file: appending again still finds existing members.
    send(folder, "add", "email,country,tier\nb@x.com,DE,bronze\n")
    assert rows_of(folder.path_for("dest"))[2] == ["b@x.com", "DE", "bronze"]


def test_remove_deletes_members_by_key(folder: ConsumerFolder) -> None:
    send(folder, "add", "email,customer_id\na@x.com,C1\nb@x.com,C2\nb@x.com,C9\nc@x.com,C3\n")
    result = send(folder, "remove", "email,customer_id\na@x.com,C1\nzz@x.com,C0\n,\n")
    assert (result.accepted, result.rejected) == (2, 1)
    # Removing by a subset of the identifier columns removes every member carrying that value.
    send(folder, "remove", "email\nb@x.com\n")
    assert rows_of(folder.path_for("dest")) == [["email", "customer_id"], ["c@x.com", "C3"]]
    assert send(folder, "remove", "email\nx@x.com\n", audience="never-created").accepted == 1


def test_replace_in_parts_keeps_the_old_file_until_the_last_part(folder: ConsumerFolder) -> None:
    send(folder, "add", "email,country\nold@x.com,FR\n")
    path = folder.path_for("dest")
    before = path.read_bytes()

    first = send(folder, "replace", "email,country\na@x.com,FR\nb@x.com,DE\n", part=(1, 3))
    assert (first.accepted, first.committed) == (2, False)
    assert path.read_bytes() == before
    send(folder, "replace", "email,country,tier\nb@x.com,DE,dup\nc@x.com,ES,gold\n", part=(2, 3))
    assert path.read_bytes() == before
    last = send(folder, "replace", "email\nd@x.com\n\n", part=(3, 3))

    assert (last.accepted, last.rejected, last.committed) == (1, 0, True)
    assert rows_of(path) == [
        ["email", "country", "tier"],
        ["a@x.com", "FR", ""],
        ["b@x.com", "DE", ""],
        ["c@x.com", "ES", "gold"],
        ["d@x.com", "", ""],
    ]
    assert [p.name for p in path.parent.iterdir()] == ["dest.csv"]  # no staging file left


def test_replace_without_parts_and_a_new_part_one_restarts(folder: ConsumerFolder) -> None:
    send(folder, "replace", "email\na@x.com\n")
    assert rows_of(folder.path_for("dest")) == [["email"], ["a@x.com"]]
    send(folder, "replace", "email\nabandoned@x.com\n", part=(1, 2))
    send(folder, "replace", "email\nb@x.com\n", part=(1, 2))
    send(folder, "replace", "email\nc@x.com\n", part=(2, 2))
    assert rows_of(folder.path_for("dest")) == [["email"], ["b@x.com"], ["c@x.com"]]
    send(folder, "replace", "email\n")  # an empty replace empties the audience
    assert rows_of(folder.path_for("dest")) == [["email"]]


@pytest.mark.parametrize("part", [(2, 2), (3, 3)])
def test_replace_parts_out_of_order_are_refused(folder: ConsumerFolder, part: tuple[int, int]) -> None:
    if part == (3, 3):
        send(folder, "replace", "email\na@x.com\n", part=(1, 3))
    with pytest.raises(PartOrderError):
        send(folder, "replace", "email\nb@x.com\n", part=part)


def test_a_failed_part_is_rolled_back_and_can_be_retried(folder: ConsumerFolder) -> None:
    send(folder, "replace", "email\na@x.com\n", part=(1, 2))
    with pytest.raises(CsvFormatError):
        send(folder, "replace", b"email\nb@x.com\nc@x.com\n\xff\xfe\n", part=(2, 2))
    assert not folder.path_for("dest").exists()
    send(folder, "replace", "email\nb@x.com\nc@x.com\n", part=(2, 2))
    assert rows_of(folder.path_for("dest")) == [["email"], ["a@x.com"], ["b@x.com"], ["c@x.com"]]


def test_replaying_an_idempotency_key_does_not_apply_twice(folder: ConsumerFolder) -> None:
    first = send(folder, "add", "email,n\na@x.com,1\n", idempotency_key="delivery-1", part=(1, 2))
    # A retry (even if the body were different) answers the first result and changes nothing.
    again = send(folder, "add", "email,n\nzz@x.com,2\n", idempotency_key="delivery-1", part=(1, 2))
    assert again == first
    second_part = send(folder, "add", "email,n\nb@x.com,3\n", idempotency_key="delivery-1", part=(2, 2))
    assert second_part.accepted == 1
    send(folder, "replace", "email\nr@x.com\n", idempotency_key="delivery-2", part=(1, 1))
    send(folder, "replace", "email\nr@x.com\n", idempotency_key="delivery-2", part=(1, 1))
    assert rows_of(folder.path_for("dest")) == [["email"], ["r@x.com"]]
    assert (
        send(
            folder, "add", "email,n\nb@x.com,3\n", idempotency_key="delivery-1", part=(2, 2), audience="other"
        ).accepted
        == 1
    )


def test_gzip_bodies_and_bad_gzip(folder: ConsumerFolder) -> None:
    compressed = gzip.compress(b"email\na@x.com\n") + gzip.compress(b"b@x.com\n")  # two members
    assert send(folder, "add", compressed, gzip=True).accepted == 2
    with pytest.raises(CsvFormatError, match="not valid gzip"):
        send(folder, "add", b"email\nplain@x.com\n", gzip=True)
    with pytest.raises(CsvFormatError, match="truncated"):
        send(folder, "add", gzip.compress(b"email\n" + b"t@x.com\n" * 1000)[:-12], gzip=True)
    assert rows_of(folder.path_for("dest")) == [["email"], ["a@x.com"], ["b@x.com"]]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"", "empty"),
        (b"\n\n", "empty"),
        (b"\x00\x01\x02binary,stuff\n", "binary"),
        (b"email,email\na,b\n", "twice"),
        (b"\xff\xfeemail\n", "UTF-8"),
        (b"email,,x\n", "empty column"),
    ],
)
def test_unusable_bodies_are_format_errors(folder: ConsumerFolder, body: bytes, message: str) -> None:
    with pytest.raises(CsvFormatError, match=message):
        send(folder, "add", body)
    assert not folder.path_for("dest").exists()


def test_destination_names_map_to_safe_files(folder: ConsumerFolder) -> None:
    send(folder, "add", "email\na@x.com\n", audience="../../Loyal customers (FR)")
    assert folder.path_for("../../Loyal customers (FR)") == folder.folder / "Loyal_customers_FR.csv"
    assert [p.name for p in folder.folder.iterdir()] == ["Loyal_customers_FR.csv"]


def test_leftover_staging_files_are_cleaned_on_start(tmp_path: Path) -> None:
    (tmp_path / "c").mkdir()
    (tmp_path / "c" / ".dest.replace-abc.tmp").write_text("email\nhalf@x.com\n")
    (tmp_path / "c" / "dest.csv").write_text("email\nkept@x.com\n")
    ConsumerFolder(tmp_path / "c")
    assert [p.name for p in (tmp_path / "c").iterdir()] == ["dest.csv"]


def test_concurrent_adds_to_one_audience_lose_nothing(folder: ConsumerFolder) -> None:
    def worker(n: int) -> None:
        for batch in range(5):
            send(folder, "add", "email\n" + "".join(f"u{n}-{batch}-{i}@x.com\n" for i in range(50)))

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(rows_of(folder.path_for("dest"))) == 1 + 4 * 5 * 50
