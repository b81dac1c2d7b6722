"""Member-file helpers: fast CSV formatting matches the csv module, keys, and the GC pause."""

from __future__ import annotations

import csv
import gc
import io
import threading

from hypothesis import given
from hypothesis import strategies as st

from exchange.toolkit.ref_members import Layout, format_rows, gc_paused, is_blank_key

fields = st.text(alphabet=st.sampled_from(list('ab ,"\n\r\té1')), max_size=6)


@given(st.lists(st.lists(fields, min_size=1, max_size=4), max_size=6))
def test_format_rows_writes_what_the_csv_module_writes(rows: list[list[str]]) -> None:
    expected = io.StringIO()
    csv.writer(expected, lineterminator="\n").writerows(rows)
    assert format_rows(rows) == expected.getvalue()


def test_keys_cover_every_identifier_column_and_projections_read_absent_columns_as_empty() -> None:
    layout = Layout.of(["first_name", "email", "customer_id", "tier"])
    assert layout.key_columns == ("email", "customer_id")
    row = ["Ann", "a@x.com", "C1", "gold"]
    assert layout.key(row) == "a@x.com\x1fC1"
    assert layout.projector(["email"])(row) == "a@x.com"
    assert layout.projector(["email", "maid"])(row) == "a@x.com\x1f"
    assert Layout.of(["email"], ()).key(["b@x.com"]) == "b@x.com"
    assert is_blank_key(" \x1f") and not is_blank_key("\x1fC1")


def test_gc_pause_is_counted_across_threads_and_restores_the_collector() -> None:
    assert gc.isenabled()
    inside = threading.Event()
    release = threading.Event()

    def hold() -> None:
        with gc_paused():
            inside.set()
            release.wait(5)

    worker = threading.Thread(target=hold)
    worker.start()
    inside.wait(5)
    with gc_paused():
        assert not gc.isenabled()
    assert not gc.isenabled()  # the other thread's loop is still running
    release.set()
    worker.join()
    assert gc.isenabled()
