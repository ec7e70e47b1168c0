"""The flat token space: text ids, then our special tokens, then each codebook at an offset.

    [0, n_text)                      tiktoken ids (n_text = encoding.max_token_value + 1)
    [n_text, n_text + n_special)     SPECIALS, in this fixed order
    [.., .. + image codebook_size)   image patch codes   (only when an image codebook exists)
    [.., .. + audio codebook_size)   audio units         (only when an audio codebook exists)

The layout is a JSON-able dict `{size, ranges: [{name, start, length}], special: {name: id}}`
that travels in the tokenizer spec and the shard manifest; nothing else is needed to
interpret a token id.
"""

from __future__ import annotations

SPECIALS = (
    "<|eos|>",  # end of every sample
    "<|pad|>",  # for the trainer's batches; never written into a shard
    "<|user|>",
    "<|assistant|>",
    "<|think|>",
    "<|/think|>",
    "<|boi|>",  # begin image
    "<|eoi|>",  # end image
    "<|eor|>",  # end of a row of image patches
    "<|boa|>",  # begin audio
    "<|eoa|>",  # end audio
    "<|bov|>",  # begin video
    "<|eov|>",  # end video
    "<|eof|>",  # end of a video frame (and the audio that plays during it)
)


def build_layout(n_text: int, codebooks: dict[str, int]) -> dict:
    """Return the layout for `n_text` text ids and `codebooks` (name -> size, in order)."""
    ranges = [{"name": "text", "start": 0, "length": n_text}]
    ranges.append({"name": "special", "start": n_text, "length": len(SPECIALS)})
    special = {name: n_text + i for i, name in enumerate(SPECIALS)}
    start = n_text + len(SPECIALS)
    for name, size in codebooks.items():
        ranges.append({"name": name, "start": start, "length": int(size)})
        start += int(size)
    return {"size": start, "ranges": ranges, "special": special}


def range_of(layout: dict, name: str) -> tuple[int, int] | None:
    """Return (start, length) of the range `name`, or None when the layout has none."""
    for r in layout["ranges"]:
        if r["name"] == name:
            return r["start"], r["length"]
    return None


def layout_problems(layout: dict) -> list[str]:
    """Return every inconsistency of `layout` (overlapping/gapped ranges, specials outside)."""
    problems = []
    ranges = sorted(layout["ranges"], key=lambda r: r["start"])
    end = 0
    for r in ranges:
        if r["length"] < 0:
            problems.append(f"vocab range {r['name']!r} has negative length {r['length']}")
        if r["start"] < end:
            problems.append(
                f"vocab range {r['name']!r} starts at {r['start']}, inside the previous range (ends at {end})"
            )
        elif r["start"] > end:
            problems.append(
                f"vocab range {r['name']!r} starts at {r['start']}, leaving ids {end}..{r['start'] - 1} unassigned"
            )
        end = max(end, r["start"] + r["length"])
    if end != layout["size"]:
        problems.append(f"vocab size {layout['size']} differs from the end of the last range ({end})")
    sp = range_of(layout, "special")
    for name, tid in layout["special"].items():
        if sp is None or not sp[0] <= tid < sp[0] + sp[1]:
            problems.append(f"special token {name} has id {tid} outside the 'special' range")
    return problems
