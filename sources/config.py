"""Source configuration: one pydantic model per source kind, a discriminated union on `kind`.

Every model forbids unknown keys, so a typo in the pipeline config fails at start-up
instead of silently reading the wrong thing. Relative `paths` globs resolve against the
directory the lead passes to `sources.discover` (the config file's folder).
"""

from __future__ import annotations

from typing import Annotated, Literal, Union

from pydantic import BaseModel, ConfigDict, Field, field_validator

# 10 MiB: curate holds about 27x a row while filtering it (bench/row_memory.py: one 50 MB
# JSONL line took gather+curate from 520 MB to 1.87 GB peak RSS), so a 10 MiB row costs
# about 270 MB; a larger "row" is a dump, not a document (files' max_file_bytes is for those).
MAX_ROW_BYTES = 10 * 2**20


class GatherConfig(BaseModel):
    """Settings of the gather stage as a whole (each source's own are in `sources`)."""

    model_config = ConfigDict(extra="forbid")

    redact: bool = Field(
        default=False,
        description="redact secrets and PII in documents' (and gather rejects') text as it is gathered, with "
        "curate's scanner and `curate.pii` kinds; off: the raw layer keeps the original text",
    )


class _Source(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, description="unique source name; becomes DOCUMENT.source")
    license: str | None = Field(default=None, description="SPDX id or text applied when the item has none")


class _Globbed(_Source):
    paths: list[str] = Field(min_length=1, description="glob patterns; ** matches any depth")

    @field_validator("paths")
    @classmethod
    def _no_empty_patterns(cls, value: list[str]) -> list[str]:
        if any(not p.strip() for p in value):
            raise ValueError("empty glob pattern")
        return value


_MAIN_CONTENT = Field(
    default=True,
    description=(
        "HTML: keep the main content only (resiliparse; FineWeb and DCLM extract main content rather than "
        "all visible text); false keeps everything a browser shows"
    ),
)


class FilesSource(_Globbed):
    """Plain text (.txt and unknown text), Markdown (.md), HTML (.html/.htm: main content or visible text)."""

    kind: Literal["files"] = "files"
    main_content: bool = _MAIN_CONTENT
    # 64 MiB: a single text document larger than this is almost always a dump, not a document.
    max_file_bytes: int = Field(default=64 * 2**20, gt=0)


class _Tabular(_Globbed):
    text_field: str = "text"
    id_field: str | None = Field(default=None, description="kept in meta.source_id")
    license_field: str | None = Field(default=None, description="per-row license, overrides `license`")
    batch_rows: int = Field(default=20_000, gt=0, description="rows per batch held in memory")
    max_row_bytes: int = Field(
        default=MAX_ROW_BYTES,
        gt=0,
        description="a row (JSONL line, CSV record, text value) larger than this is rejected as oversized",
    )


class JsonlSource(_Tabular):
    kind: Literal["jsonl"] = "jsonl"


class CsvSource(_Tabular):
    kind: Literal["csv"] = "csv"
    delimiter: str = Field(default=",", min_length=1, max_length=1)


class ParquetSource(_Tabular):
    kind: Literal["parquet"] = "parquet"


class WarcSource(_Globbed):
    """WARC / WARC.gz files; the text of each HTML or text/plain response/resource/conversion record."""

    kind: Literal["warc"] = "warc"
    main_content: bool = _MAIN_CONTENT
    # Same bound as `files`: a response body above this is not a web page.
    max_record_bytes: int = Field(default=64 * 2**20, gt=0)


class HfSource(_Source):
    """A Hugging Face dataset: a save_to_disk folder, a local dataset folder, or a hub name."""

    kind: Literal["hf"] = "hf"
    path: str = Field(min_length=1, description="local folder (relative to base_dir) or hub name")
    split: str = "train"
    text_field: str = "text"
    id_field: str | None = None
    license_field: str | None = None
    streaming: bool = Field(default=True, description="hub names only: stream instead of download")
    batch_rows: int = Field(default=10_000, gt=0)
    max_row_bytes: int = Field(
        default=MAX_ROW_BYTES, gt=0, description="a text value larger than this is rejected as oversized"
    )


class RepoSource(_Source):
    """A code repository: a git URL (cloned into <lake>/cache/repos) or a local folder."""

    kind: Literal["repo"] = "repo"
    url_or_path: str = Field(min_length=1)
    ref: str | None = Field(default=None, description="branch, tag or commit; None = HEAD / working tree")
    # 1 MB: The Stack's per-file limit (Kocetkov et al. 2022, "The Stack", section 3).
    max_file_bytes: int = Field(default=1_000_000, gt=0)
    # 1000 chars: longest line allowed before a file counts as minified (The Stack / StarCoder filters).
    max_line_length: int = Field(default=1000, gt=0)
    # 100 chars: mean line length above which a file counts as minified (The Stack / StarCoder filters).
    max_mean_line_length: float = Field(default=100.0, gt=0)
    exclude: list[str] = Field(default_factory=list, description="extra gitignore-style patterns")
    repo_record: bool = Field(default=True, description="emit the dependency-ordered repo-level record")

    @field_validator("exclude")
    @classmethod
    def _patterns_compile(cls, value: list[str]) -> list[str]:
        # Compiled by the engine that applies them (pathspec, in sources.repo_read): a bad one
        # would otherwise quarantine the whole repository as a reader_error at run time.
        import pathspec

        for pattern in value:
            try:
                pathspec.PathSpec.from_lines("gitwildmatch", [pattern])
            except Exception as exc:  # noqa: BLE001 - pathspec raises its own error or re.error
                raise ValueError(f"exclude pattern {pattern!r} is not a valid gitignore pattern: {exc}") from None
        return value


class ImagesSource(_Globbed):
    kind: Literal["images"] = "images"
    # Pillow's own default (Image.MAX_IMAGE_PIXELS = 89_478_485, ~ 1/4 GiB of 24-bit pixels).
    max_image_pixels: int = Field(default=89_478_485, gt=0)


class AudioSource(_Globbed):
    kind: Literal["audio"] = "audio"
    block_frames: int = Field(default=65_536, gt=0, description="frames decoded per block")


class VideoSource(_Globbed):
    kind: Literal["video"] = "video"
    frame_rate: float = Field(default=1.0, gt=0, description="sampled frames per second of video")
    max_frames: int = Field(default=256, gt=0, description="cap on sampled frames per video")
    extract_audio: bool = True


AnySource = Annotated[
    Union[
        FilesSource,
        JsonlSource,
        CsvSource,
        ParquetSource,
        WarcSource,
        HfSource,
        RepoSource,
        ImagesSource,
        AudioSource,
        VideoSource,
    ],
    Field(discriminator="kind"),
]

GLOBBED_KINDS = ("files", "jsonl", "csv", "parquet", "warc", "images", "audio", "video")
