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

Public API: fit_codebooks, tokenize_partition, write_shards, verify, show, decode_text,
decode_image_block, image_psnr/reconstruction_psnr, ShardConfig.
"""

from shards.codebooks import fit_codebooks, load_codebook
from shards.config import ShardConfig
from shards.image import decode_codes, encode_images, psnr as image_psnr, reconstruction_psnr
from shards.show import decode_image_block, decode_text, show
from shards.tokenize import split_of, tokenize_partition
from shards.verify import verify
from shards.write import write_shards

__all__ = [
    "ShardConfig", "fit_codebooks", "tokenize_partition", "write_shards", "verify", "show", "decode_text",
    "decode_image_block", "decode_codes", "encode_images", "image_psnr", "reconstruction_psnr", "load_codebook",
    "split_of",
]
