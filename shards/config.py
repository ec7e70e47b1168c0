"""The shard stage's settings: one pydantic model per concern, unknown keys fail at start-up."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, model_validator

MiB = 1 << 20


class ImageTokenizerConfig(BaseModel):
    """How an image becomes codes.

    side 32 / patch 4 gives an 8x8 grid: 64 codes + 8 row ends + 2 brackets = 74 tokens per
    image, small enough that a tiny trainer sees many images per context window.
    codebook_size 256 and 48-dim patches (4*4*3) follow the scale of VQ image tokenizers
    (van den Oord et al. 2017 used K=512 on learned features; with raw pixel patches 256
    centroids already reconstruct smooth images at > 25 dB, see tests).
    """

    model_config = ConfigDict(extra="forbid")

    side: int = Field(32, ge=4, description="images are center-cropped square and resized to side x side")
    patch: int = Field(4, ge=1, description="patch edge in pixels; side must be a multiple")
    codebook_size: int = Field(256, ge=2)
    kmeans_iters: int = Field(20, ge=1)
    sample_patches: int = Field(32768, ge=16, description="patches sampled from the data to fit the codebook")

    @model_validator(mode="after")
    def _patch_divides_side(self) -> "ImageTokenizerConfig":
        if self.side % self.patch:
            raise ValueError(f"image.side {self.side} is not a multiple of image.patch {self.patch}")
        return self


class AudioTokenizerConfig(BaseModel):
    """How audio becomes units: log-mel frames (25 ms window, 20 ms hop -> 50 units/s) and k-means.

    25 ms windows with 40 mel bands are the classic ASR front end (Davis & Mermelstein 1980;
    Kaldi defaults are 25 ms / 10 ms / 23-40 bins); the 20 ms hop (50 Hz) matches HuBERT's
    unit rate. codebook_size 128 sits between HuBERT's k=100 and k=500 unit inventories.
    """

    model_config = ConfigDict(extra="forbid")

    sample_rate: int = Field(16000, ge=1000)
    n_mels: int = Field(40, ge=4)
    frame_ms: float = Field(25.0, gt=0)
    hop_ms: float = Field(20.0, gt=0)
    codebook_size: int = Field(128, ge=2)
    kmeans_iters: int = Field(20, ge=1)
    sample_frames: int = Field(32768, ge=16, description="log-mel frames sampled from the data to fit the codebook")
    max_seconds: float = Field(60.0, gt=0, description="audio beyond this is cut (counted in stats audio_truncated)")


class VideoTokenizerConfig(BaseModel):
    """How a video becomes tokens: at most max_frames frames, evenly sampled, plus its audio."""

    model_config = ConfigDict(extra="forbid")

    max_frames: int = Field(8, ge=1)


class ShardConfig(BaseModel):
    """Settings of the shard stage (tokenize + pack).

    row_group_bytes 1 MiB (uncompressed): a row group is the unit a trainer reads at random;
    1 MiB holds ~260k tokens, enough for many context windows, while keeping a reader's
    memory small; the Parquet footer costs ~1-2 KB per row group (13 column chunks), i.e.
    ~0.2 % at this size, and zstd's gain flattens beyond a few hundred KB of input.
    target_shard_bytes 64 MiB (compressed): few enough files for a listing to stay cheap,
    small enough to download/verify one at a time.
    zstd_level 1: on cl100k tokens of Python source, level 3 made files 7 % smaller but took
    2x the write time (bench/shards.py run, 2 cores); reading speed is the same.
    """

    model_config = ConfigDict(extra="forbid")

    encoding: str = "cl100k_base"
    threads: int = Field(8, ge=1, description="threads for tiktoken's batch encoder")
    image: ImageTokenizerConfig = ImageTokenizerConfig()
    audio: AudioTokenizerConfig = AudioTokenizerConfig()
    video: VideoTokenizerConfig = VideoTokenizerConfig()
    target_shard_bytes: int = Field(64 * MiB, ge=1024)
    row_group_bytes: int = Field(1 * MiB, ge=1024)
    zstd_level: int = Field(1, ge=1, le=22, description="zstd level of the shards")
    val_fraction: float = Field(0.05, ge=0.0, le=1.0)
    # False writes each trace as prompt | answer, its reasoning left out: the "answers only"
    # ablation of bench/distill_proof.py (the same traces, the same verification).
    trace_reasoning: bool = True
    seed: int = 0
