"""The rejects file: every rejected row with its line number and the reason (SPEC §6, §15.1).

Columns are the source header followed by ``_line`` and ``_reason`` (underscored further if the
source already uses those names). They are always the last two fields of every record: rows read
with too few fields are padded, rows with too many keep all their fields, and records the parser
could not split at all carry no fields. Bytes that were not valid UTF-8 are written as U+FFFD so
the file itself is valid UTF-8.

People open this file in spreadsheets, so every value (header included) that starts with ``=``,
``+``, ``-``, ``@``, tab or carriage return gets a leading apostrophe (CSV formula injection).
"""
from __future__ import annotations

from collections.abc import Iterable
from typing import IO

from exchange.transfer.csvio import CsvWriter, Reject

__all__ = ["RejectsWriter", "neutralize"]

_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def neutralize(value: str) -> str:
    """Make a value inert in spreadsheets and valid UTF-8."""
    if value.startswith(_FORMULA_START):
        value = "'" + value
    if not value.isascii():
        value = value.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
    return value


def _extra_names(header: list[str]) -> list[str]:
    names = []
    for name in ("_line", "_reason"):
        while name in header:
            name = "_" + name
        names.append(name)
    return names


class RejectsWriter:
    def __init__(self, fileobj: IO[bytes], header: list[str], *, write_header: bool = True):
        self._writer = CsvWriter(fileobj, flush_rows=1024)
        self._width = len(header)
        self.count = 0
        if write_header:
            self._writer.writerow(neutralize(v) for v in [*header, *_extra_names(header)])

    def write(self, line: int, fields: list[str], reason: str) -> None:
        values = [neutralize(v) for v in fields]
        if len(values) < self._width:
            values.extend([""] * (self._width - len(values)))
        values += [str(line), neutralize(reason)]
        self._writer.writerow(values)
        self.count += 1

    def write_all(self, rejects: Iterable[Reject]) -> None:
        for reject in rejects:
            self.write(reject.line, reject.fields, reject.reason)

    def flush(self) -> None:
        self._writer.flush()

    @property
    def bytes_written(self) -> int:
        return self._writer.bytes_written
