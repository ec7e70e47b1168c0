"""distillery.media_ref: one rule for what a media reference is, one quarantine code for a bad one."""

from __future__ import annotations

import hashlib

import polars as pl
import pytest

from distillery import media_ref
from filters.config import MediaConfig
from filters.media import probe
from shards.media_refs import MediaError, read_media
from sources.media_store import put_bytes

SHA = hashlib.sha256(b"some bytes").hexdigest()

BAD = [
    None,
    7,
    "",
    "media/",
    f"media/{SHA}",  # not a string, or no folder
    f"media/00/{SHA}" if not SHA.startswith("00") else f"media/11/{SHA}",  # folder is not sha[:2]
    f"media/{SHA[:2]}/{SHA.upper()}",
    f"media/{SHA[:2]}/{SHA}.png",  # upper case, suffix
    f"media/{SHA[:2]}/{SHA[:40]}",
    f"../media/{SHA[:2]}/{SHA}",  # short, outside the lake
    f"media/{SHA[:2]}/{SHA}\n",
    f"cache/{SHA[:2]}/{SHA}",
    "../../etc/passwd",
]


def test_a_stored_reference_parses_back_to_its_sha(tmp_path):
    ref = put_bytes(tmp_path / "media", b"some bytes")
    assert ref == media_ref.make(SHA) and media_ref.is_ref(ref)
    assert media_ref.parse(ref) == SHA
    assert media_ref.resolve(tmp_path, ref).read_bytes() == b"some bytes"


@pytest.mark.parametrize("value", BAD)
def test_anything_else_is_a_bad_media_ref(tmp_path, value):
    assert not media_ref.is_ref(value)
    assert media_ref.path_or_none(tmp_path, value) is None
    with pytest.raises(media_ref.BadMediaRef) as err:
        media_ref.resolve(tmp_path, value)
    assert err.value.reason == "bad_media_ref"


def test_curate_and_shard_quarantine_the_same_refs_under_the_same_code(tmp_path):
    good = put_bytes(tmp_path / "media", b"some bytes")
    refs = [good, *(v for v in BAD if v is not None)]
    docs = pl.DataFrame(
        {
            "modality": ["image"] * len(refs),
            "media": [r if isinstance(r, str) else str(r) for r in refs],
            "meta": [None] * len(refs),
        },
        schema={"modality": pl.Utf8, "media": pl.Utf8, "meta": pl.Utf8},
    )
    curate = probe(docs, MediaConfig(), tmp_path)["media_reason"].to_list()

    def shard_reason(ref):
        try:
            read_media(tmp_path, ref)
        except MediaError as exc:
            return exc.reason
        return None

    shard = [shard_reason(r) for r in docs["media"].to_list()]
    assert curate[0] == "media_unreadable" and shard[0] is None  # a real ref: bytes found (not an image)
    assert curate[1:] == shard[1:] == ["bad_media_ref"] * (len(refs) - 1)
