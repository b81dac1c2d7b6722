"""The committed demo audiences: reproducible from the generator, realistic, with bad rows to reject."""

from __future__ import annotations

import csv
import importlib.util
import re
from pathlib import Path

import pytest

from exchange.toolkit.ref_producer import ProducerFolder

SAMPLE = Path(__file__).resolve().parents[2] / "sample_data"
EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[a-z]{2,}$")

spec = importlib.util.spec_from_file_location("sample_data_generate", SAMPLE / "generate.py")
assert spec and spec.loader
generate = importlib.util.module_from_spec(spec)
spec.loader.exec_module(generate)


def read(path: Path) -> list[list[str]]:
    with path.open(encoding="utf-8", newline="") as handle:
        return list(csv.reader(handle))


def test_committed_files_match_the_seeded_generator(tmp_path: Path) -> None:
    for path in generate.generate_demo(tmp_path):
        committed = SAMPLE / "crm" / path.name
        assert committed.read_bytes() == path.read_bytes(), f"{path.name}: run sample_data/generate.py"
        assert committed.with_suffix(".json").read_bytes() == path.with_suffix(".json").read_bytes()


@pytest.mark.parametrize(
    ("stem", "header", "rows"),
    [
        ("loyal_customers", ["email", "phone_e164", "customer_id", "first_name", "country"], 3000),
        ("newsletter_subscribers", ["email", "first_name", "country"], 5000),
        ("app_users", ["maid", "customer_id", "country"], 2000),
    ],
)
def test_demo_audiences_have_a_few_bad_rows(stem: str, header: list[str], rows: int) -> None:
    path = SAMPLE / "crm" / f"{stem}.csv"
    first, *data = read(path)
    assert first == header
    assert abs(len(data) - rows) <= 0.1 * rows
    assert path.stat().st_size < 1_000_000
    wrong_width = [row for row in data if len(row) != len(header)]
    identifiers = [
        i for i, column in enumerate(header) if column in ("email", "phone_e164", "customer_id", "maid")
    ]
    no_identifier = [row for row in data if len(row) == len(header) and not any(row[i] for i in identifiers)]
    assert 1 <= len(wrong_width) <= 2 and len(no_identifier) == 1
    if "email" in header:
        bad_emails = [
            row
            for row in data
            if len(row) == len(header) and row[0] and not EMAIL.match(row[0].strip().lower())
        ]
        assert 1 <= len(bad_emails) <= 3
    if "phone_e164" in header:
        assert sum(1 for row in data if row[1] and not row[1].startswith("+")) == 1


def test_the_producer_lists_the_demo_folder() -> None:
    audiences = {audience.id: audience for audience in ProducerFolder(SAMPLE / "crm").list()}
    assert set(audiences) == {"loyal_customers", "newsletter_subscribers", "app_users"}
    loyal = audiences["loyal_customers"]
    assert loyal.name == "Loyal customers" and "crm" in loyal.tags
    assert loyal.identifiers == ["email", "phone_e164", "customer_id"]
    assert loyal.size == len(read(SAMPLE / "crm" / "loyal_customers.csv")) - 1


def test_benchmark_rows_are_valid_and_unique(tmp_path: Path) -> None:
    out = tmp_path / "bench.csv"
    assert generate.main(["--rows", "120000", "--out", str(out)]) == 0
    header, *rows = read(out)
    assert header == ["email", "phone_e164", "customer_id", "first_name", "country"]
    assert len(rows) == 120_000 and all(len(row) == 5 for row in rows)
    assert len({row[0] for row in rows}) == 120_000
    assert all(EMAIL.match(row[0]) and re.fullmatch(r"\+\d{10,14}", row[1]) for row in rows[::997])
    again = tmp_path / "again.csv"
    generate.generate_rows(again, 120_000)
    assert again.read_bytes() == out.read_bytes()
