"""The shard stage: tokenize curated records and teacher traces into one flat token space and
pack them into Parquet shards with a manifest.

Text and code go through tiktoken (`cfg.encoding`, default cl100k_base). Images are
center-cropped, resized to side x side and cut into patch x patch pixel patches; each patch
becomes the id of its nearest entry in a k-means codebook fitted on patches sampled from
the data, and the decoder turns codes back into a picture (quality reported as PSNR).
Audio is decoded, mixed to mono, resampled (linear interpolation), turned into log-mel
frames (25 ms window, 20 ms hop, 40 bands) and each frame becomes its nearest k-means unit.
Audio units are NOT decodable back to sound: a unit stands for a cluster of log-mel frames
and the phase and spectral detail are gone; they are a discrete audio vocabulary for the
model, like HuBERT units, and `show` prints only their count and duration.
Video interleaves up to video.max_frames sampled frames (image tokenizer) with the audio
track's units for the time each frame is on screen.

Token space (recorded in the manifest; nothing else is needed to read a shard):
text ids [0, n_text), then the special tokens (shards.vocab.SPECIALS), then the image
codebook, then the audio codebook. Every sample ends with <|eos|>.

Public API: fit_codebooks, tokenize_partition, write_shards, decode_text, decode_image_block,
image_psnr/reconstruction_psnr, ShardConfig; `shards.verify.verify` and `shards.show.show` live
in their modules (a package attribute of the same name as a submodule would be shadowed by it).
No module-class tricks here: Ray pickles what a task's context reaches, packages included.
"""

from shards.config import ShardConfig

# The tokenizers (Polars, PyArrow, numpy, Pillow) load when a stage shards, not when a config
# is read: distillery.config imports shards.config, which runs this file first.
_LAZY = {
    "load_codebook": "shards.codebook_io",
    "fit_codebooks": "shards.codebooks",
    "decode_codes": "shards.image",
    "encode_images": "shards.image",
    "image_psnr": "shards.image",
    "reconstruction_psnr": "shards.image",
    "decode_image_block": "shards.show",
    "decode_text": "shards.show",
    "split_of": "shards.tokenize",
    "tokenize_partition": "shards.tokenize",
    "write_shards": "shards.write",
}
_RENAMED = {"image_psnr": "psnr"}


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        value = getattr(importlib.import_module(_LAZY[name]), _RENAMED.get(name, name))
        globals()[name] = value
        return value
    raise AttributeError(name)


__all__ = [
    "ShardConfig",
    "fit_codebooks",
    "tokenize_partition",
    "write_shards",
    "decode_text",
    "decode_image_block",
    "decode_codes",
    "encode_images",
    "image_psnr",
    "reconstruction_psnr",
    "load_codebook",
    "split_of",
]
