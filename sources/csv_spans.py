"""Row spans of a large CSV file (sources/spans.py), found without parsing it.

One streaming numpy pass over the bytes (`_BLOCK` at a time; per block, the positions of
quotes, line ends and delimiters, and each one's quote parity by a binary search). With RFC 4180 quoting (the
parser's: quote '"', doubled inside a quoted field) a newline ends a record iff the number
of quote bytes before it is even, and a delimiter separates fields iff the same holds. A
span is (start, stop, first_row): byte offsets [start, stop) of whole records, and the
number of data rows before it, so uris (`path#row<N>`) are a whole-file read's; its reader
parses the file's header line followed by those bytes (csv_header_end finds the header).

The pass cuts only where the parser's rows are certain to be the records it counts; a file
it cannot vouch for is read whole (`[]`), as before spans, so its reader reports it once:
not UTF-8 all through (legacy single-byte encodings and a file that stops decoding), a
quote inside an unquoted field, a lone CR ending a line, an unclosed quote, a record longer
than the parser's block, or a row whose field count differs from the header's (the reader
skips such rows and names them by their order in the file, `#badrow<k>`, which a span
cannot know).
"""

from __future__ import annotations

import codecs

import numpy as np

from sources.sniff import sniff
from sources.spans import Span

_BLOCK = 8 << 20  # bytes per read: the numpy temporaries stay near 2x this
_QUOTE, _CR, _LF = 34, 13, 10


class _Unsplittable(Exception):
    """The file is read whole (see the module docstring)."""


def csv_header_end(path: str, delimiter: str) -> int:
    """The byte offset just after the header record (the first non-empty record)."""
    scan = _Scan(delimiter, max_rows=1, max_record_bytes=_BLOCK)
    with open(path, "rb") as fh:
        while scan.header_end is None and (block := fh.read(1 << 16)):
            scan.feed(block)
    if scan.header_end is None:
        raise ValueError(f"{path}: no header record")
    return scan.header_end


def csv_spans(path: str, size: int, max_rows: int, delimiter: str, max_record_bytes: int) -> list[Span]:
    """Spans of at most `max_rows` data rows; [] when the file is read whole."""
    if size <= 2 * max_rows:  # a row is >= 2 bytes with its newline
        return []
    with open(path, "rb") as fh:
        if sniff(fh.read(64)) is not None:
            return []
        fh.seek(0)
        scan = _Scan(delimiter, max_rows, max_record_bytes)
        try:
            while block := fh.read(_BLOCK):
                scan.feed(block)
            scan.finish()
        except (_Unsplittable, UnicodeDecodeError):
            return []
    cuts = scan.cuts
    if cuts and cuts[-1][1] == scan.rows:  # nothing but blank lines after the last cut
        cuts.pop()
    if not cuts or scan.header_end is None:
        return []
    bounds = [(scan.header_end, 0), *cuts, (scan.base, scan.rows)]
    return [(a, b, row) for (a, row), (b, _) in zip(bounds, bounds[1:])]


class _Scan:
    """The streaming state: quote parity, the open record, rows so far, cuts."""

    def __init__(self, delimiter: str, max_rows: int, max_record_bytes: int) -> None:
        self.delim, self.max_rows = ord(delimiter), max_rows
        self.max_record = max_record_bytes
        self.utf8 = codecs.getincrementaldecoder("utf-8")()
        self.base = 0  # file offset of the next block
        self.quotes = 0  # quote bytes so far (parity matters)
        self.delims = 0  # field delimiters outside quotes so far
        self.last = _LF  # the byte before the block (the file starts as after a newline)
        self.last_cr = False  # that byte is a CR outside quotes
        self.rec_start, self.rec_delims = 0, 0  # where the open record starts, delimiters before it
        self.fields: int | None = None  # the header's field count
        self.header_end: int | None = None
        self.rows = 0  # data rows (non-empty records after the header) so far
        self.cuts: list[tuple[int, int]] = []  # (offset after a record, rows before it)

    def feed(self, block: bytes) -> None:
        self.utf8.decode(block)  # raises on invalid UTF-8: the reader would stop there
        arr = np.frombuffer(block, dtype=np.uint8)
        # Quotes, line ends and delimiters are sparse: the parity at each is the count of quote
        # positions before it (searchsorted), never a cumulative array over every byte.
        quotes = np.flatnonzero(arr == _QUOTE)

        def outside(at: np.ndarray) -> np.ndarray:
            return at[(self.quotes + np.searchsorted(quotes, at)) % 2 == 0]

        def before(at: np.ndarray) -> np.ndarray:  # the byte before each position
            return np.where(at > 0, arr[np.maximum(at - 1, 0)], self.last)

        opening = quotes[(self.quotes + np.arange(quotes.size)) % 2 == 0]
        prev = before(opening)
        if ((prev != self.delim) & (prev != _LF) & (prev != _CR) & (prev != _QUOTE)).any():
            raise _Unsplittable("a quote inside an unquoted field")
        crs = outside(np.flatnonzero(arr == _CR))
        if (self.last_cr and arr[0] != _LF) or (arr[crs[crs < arr.size - 1] + 1] != _LF).any():
            raise _Unsplittable("a lone CR ends a line")
        ends = outside(np.flatnonzero(arr == _LF))
        delims = outside(np.flatnonzero(arr == self.delim))
        if ends.size:
            at_ends = self.delims + np.searchsorted(delims, ends)  # delimiters before each line end
            self._records(
                starts=np.concatenate(([self.rec_start], self.base + ends[:-1] + 1)),
                stops=self.base + ends + 1,
                first_delims=np.concatenate(([self.rec_delims], at_ends[:-1])),
                last_delims=at_ends,
                empty_cr=before(ends) == _CR,
            )
            self.rec_start, self.rec_delims = self.base + int(ends[-1]) + 1, int(at_ends[-1])
        self.quotes += quotes.size
        self.delims += delims.size
        self.last, self.last_cr = int(arr[-1]), bool(crs.size and crs[-1] == arr.size - 1)
        self.base += len(block)
        if self.base - self.rec_start > self.max_record:
            raise _Unsplittable("a record longer than the parser's block")

    def finish(self) -> None:
        self.utf8.decode(b"", final=True)
        if self.quotes % 2:
            raise _Unsplittable("an unclosed quote")
        if self.last_cr:
            raise _Unsplittable("a lone CR ends the file")
        if self.base > self.rec_start:  # the last record has no newline
            self._records(
                starts=np.array([self.rec_start]),
                stops=np.array([self.base]),
                first_delims=np.array([self.rec_delims]),
                last_delims=np.array([self.delims]),
                empty_cr=np.array([False]),
                terminated=False,
            )

    def _records(self, starts, stops, first_delims, last_delims, empty_cr, terminated: bool = True) -> None:
        """Check and count whole records [starts, stops) (each ending with its newline, if `terminated`)."""
        length = stops - starts
        if int(length.max()) > self.max_record:
            raise _Unsplittable("a record longer than the parser's block")
        content = length - terminated - (empty_cr & (length >= 2))
        solid = content > 0  # the parser skips empty lines: they are not rows
        fields = last_delims - first_delims + 1
        if self.header_end is None:
            if not solid.any():
                return
            h = int(np.argmax(solid))
            self.fields, self.header_end = int(fields[h]), int(stops[h])
            solid[: h + 1] = False
        if (fields[solid] != self.fields).any():
            raise _Unsplittable("a row whose field count differs from the header's")
        counts = self.rows + np.cumsum(solid)
        at = solid & (counts % self.max_rows == 0)
        self.cuts.extend(zip(stops[at].tolist(), counts[at].tolist()))
        if counts.size:
            self.rows = int(counts[-1])
