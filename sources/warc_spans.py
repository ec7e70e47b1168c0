"""Record spans of a large WARC file (sources/spans.py): where each run of `max_rows` records starts.

One streaming pass of FastWARC over the file (record headers only: bodies are skipped, never
parsed or held) numbers the records as sources/warc.py does and notes where every
`max_rows`-th record starts. A span is (start, stop, first_record):

    plain .warc, or .warc.gz with one gzip member per record (Common Crawl's layout)
        byte offsets [start, stop) of whole records (gzip members): the reader seeks there
        and FastWARC reads only those bytes
    .warc.gz compressed as ONE gzip stream (no random access into it)
        start = -1, and [first_record, stop) are record numbers: the reader streams the file
        from its beginning, skips the records before its span unparsed and stops at `stop`,
        so its memory stays bounded by the span at the price of decompressing the file's
        head once per span

Either way a span's uris (`path#record<N>`) are the ones a whole-file read gives. The reader
stops a file at the first record without a numeric Content-Length, so the scan makes no cut
after one; nor after a record FastWARC cannot parse (a cut gzip stream, a record that is not
WARC): the last span then reads to the end of the file and quarantines the rest once, as the
whole-file read does. A single-stream file that does not scan cleanly is read whole.
"""

from __future__ import annotations

import zlib

from fastwarc.warc import ArchiveIterator

from sources.sniff import sniff
from sources.spans import Span

# A WARC record is at least its version line and Content-Length header (~35 bytes), and a
# gzip member adds 18 bytes of header and trailer: a file smaller than this many bytes per
# record cannot hold more than max_rows records and is not scanned.
_MIN_RECORD_BYTES = 30
_HEAD_BYTES = 1 << 16  # bytes read (and at most inflated) at a cut to find its record's header


def warc_spans(path: str, size: int, max_rows: int) -> list[Span]:
    """Spans of at most `max_rows` records; [] when the file is read whole (at most
    `max_rows` records, not a WARC, or a single gzip stream that does not scan cleanly)."""
    if size <= _MIN_RECORD_BYTES * max_rows:
        return []
    with open(path, "rb") as fh:
        head = fh.read(64)
    gz = sniff(head) == "gzip"
    if not gz and not head.startswith(b"WARC/"):
        return []  # not WARC: the reader quarantines the whole file once
    cuts: list[tuple[int, int]] = []  # (offset FastWARC gives for the record, its number)
    ids: list[str] = []  # the cut records' WARC-Record-IDs, to check the offsets by
    n, clean = 0, True
    try:
        with open(path, "rb") as fh:
            for record in ArchiveIterator(fh, parse_http=False):
                if n and n % max_rows == 0:
                    cuts.append((record.stream_pos, n))
                    ids.append(record.headers.get("WARC-Record-ID") or "")
                n += 1
                declared = record.headers.get("Content-Length")
                if declared is None or not declared.strip().isdigit():
                    clean = False  # the reader stops the file here: no cut after it
                    break
    except OSError:  # damaged: the cuts before it stand, the last span meets the damage
        clean = False
    if not cuts:
        return []
    if _seekable(path, gz, [c for c, _ in cuts], ids):
        bounds = [(0, 0), *cuts, (size, n)]
        return [(a, b, row) for (a, row), (b, _) in zip(bounds, bounds[1:])]
    if not (gz and clean):
        return []
    firsts = [row for _, row in cuts]
    return [(-1, stop, first) for first, stop in zip([0, *firsts], [*firsts, n])]


def _seekable(path: str, gz: bool, offsets: list[int], ids: list[str]) -> bool:
    """Whether the record with each of `ids` starts at its offset in `offsets`. FastWARC's
    stream positions are raw file offsets for plain files and per-record gzip members, but
    not inside a gzip member holding several records, let alone one stream for the file."""
    if any(b <= a for a, b in zip([0, *offsets], offsets)) or not all(ids):
        return False
    with open(path, "rb") as fh:
        for at, record_id in zip(offsets, ids):
            fh.seek(at)
            raw = fh.read(_HEAD_BYTES)
            try:
                head = zlib.decompressobj(16 + zlib.MAX_WBITS).decompress(raw, _HEAD_BYTES) if gz else raw
            except zlib.error:
                return False
            header = head.partition(b"\r\n\r\n")[0]
            if not header.startswith(b"WARC/") or record_id.encode("utf-8", "replace") not in header:
                return False
    return True
