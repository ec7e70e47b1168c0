"""The demo's sample data, generated (deterministically, from a seed) instead of downloaded.

`make_samples(dir)` writes a small mixed corpus in which every stage has something to do:
articles (with exact and near duplicates, junk that the quality rules drop, planted PII and
a fake API key that curation redacts), arithmetic questions for the teacher, a small Python
repository, images and audio (with duplicates and a corrupt file of each), and short videos
with an audio track (and a cut one), so that every modality flows from gather to the shards.
"""

from __future__ import annotations

import json
import math
import random
import subprocess
import wave
from pathlib import Path

import numpy as np

TOPICS = {
    "rivers": ["river", "delta", "flood", "sediment", "valley", "estuary", "current", "bank", "channel", "basin"],
    "bread": ["dough", "yeast", "flour", "crust", "oven", "starter", "loaf", "kneading", "proof", "grain"],
    "engines": ["piston", "cylinder", "valve", "torque", "crankshaft", "fuel", "exhaust", "gear", "spark", "coolant"],
    "birds": ["feather", "nest", "migration", "wing", "song", "flock", "beak", "egg", "predator", "habitat"],
    "markets": ["price", "demand", "supply", "trader", "inflation", "credit", "bond", "share", "risk", "policy"],
}
FRAMES = [
    "The {a} shapes how the {b} behaves over many seasons, and observers have long recorded it.",
    "When the {a} changes, the {b} follows within a few weeks, which surprises many newcomers.",
    "Most guides explain the {a} first, because without it the {b} makes little sense.",
    "A careful look at the {a} shows why the {b} matters more than people expect.",
    "In practice, the {a} and the {b} are measured together and compared year by year.",
    "Historians describe the {a} as the reason the {b} became important in the region.",
    "Engineers and amateurs alike argue about the {a}, yet they agree on the {b}.",
    "Small differences in the {a} lead to large differences in the {b} over time.",
    "The report noted that the {a} was stable while the {b} varied widely.",
    "Few people notice the {a}, but everyone depends on the {b} every day.",
    "Our survey of {n} sites found that a healthy {a} usually meant a healthy {b}.",
    "Nobody planned the {a}; it grew out of old habits around the {b}.",
    "Critics say the {b} is overrated, though they rarely mention the {a}.",
    "Local teachers use the {a} to introduce children to the idea of a {b}.",
    "During the dry years of {y}, the {a} almost disappeared and the {b} suffered.",
    "It took {n} attempts before anyone could describe the {a} without exaggerating the {b}.",
    "Some writers compare the {a} to a clock, with the {b} as its slow hand.",
    "The museum keeps a model of the {a} next to drawings of the {b}.",
    "If you ask an expert about the {b}, expect a long answer about the {a}.",
    "Records from {y} suggest the {a} was once far larger than the {b}.",
    "Visitors often confuse the {a} with the {b}, an easy mistake to make.",
    "A short walk reveals how closely the {a} is tied to the {b}.",
    "Students measured the {a} every morning and logged the {b} each evening.",
    "Weather, money and luck all affect the {a}, but the {b} reacts most to time.",
    "Modern tools make the {a} easier to study, yet the {b} still hides surprises.",
    "The committee argued for {n} hours about whether the {a} or the {b} came first.",
    "Old photographs show the {a} in a shape that today's {b} could not support.",
    "Anyone repairing the {a} should first check the condition of the {b}.",
    "Textbooks from {y} gave the {a} a single page and ignored the {b} entirely.",
    "Good maps mark the {a} clearly and leave the {b} to the reader's judgment.",
]
JUNK = [
    "Click here. Click here. Click here. Click here. Click here. Click here.",
    "lorem ipsum dolor sit amet " * 30,
    "Please enable JavaScript to view this page.\nThis site uses cookies.\nAccept all cookies.",
    "ok",
    "BUY NOW!!! BUY NOW!!! BUY NOW!!! BUY NOW!!! BUY NOW!!! BUY NOW!!! BUY NOW!!!",
]
REPO_FILES = {
    "pkg/__init__.py": "from pkg.api import run\n",
    "pkg/api.py": "from pkg.core import compute\nfrom pkg.io import load\n\n\ndef run(path):\n    return compute(load(path))\n",
    "pkg/core.py": "from pkg.mathx import square\n\n\ndef compute(values):\n    return [square(v) for v in values]\n",
    "pkg/mathx.py": 'def square(x):\n    """Return x squared."""\n    return x * x\n',
    "pkg/io.py": "import json\n\n\ndef load(path):\n    with open(path) as fh:\n        return json.load(fh)\n",
    "LICENSE": "MIT License\n\nCopyright (c) 2026 Distillery demo\n\n"
    "Permission is hereby granted, free of charge, to any person obtaining a copy\n"
    'of this software and associated documentation files (the "Software"), to deal\n'
    "in the Software without restriction, subject to the following conditions:\n\n"
    "The above copyright notice and this permission notice shall be included in all\n"
    "copies or substantial portions of the Software.\n\n"
    'THE SOFTWARE IS PROVIDED "AS IS", WITHOUT WARRANTY OF ANY KIND.\n',
    ".gitignore": "build/\n*.log\n",
}


def _article(rng: random.Random, topic: str, sentences: int) -> str:
    words = TOPICS[topic]
    frames = rng.sample(FRAMES, sentences)  # no frame twice in one article: real prose repeats little
    lines = [
        f.format(a=rng.choice(words), b=rng.choice(words), n=rng.randint(3, 90), y=rng.randint(1890, 2020))
        for f in frames
    ]
    paras = [" ".join(lines[i : i + 4]) for i in range(0, len(lines), 4)]
    return f"On {topic}\n\n" + "\n\n".join(paras) + "\n"


def _near_copy(rng: random.Random, text: str, edits: int = 2) -> str:
    words = text.split(" ")
    for _ in range(edits):
        i = rng.randrange(len(words))
        words[i] = words[i].upper() if words[i].islower() else words[i].lower()
    return " ".join(words)


def _tone(freq: float, seconds: float, rate: int = 16000) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    return (0.3 * np.sin(2 * math.pi * freq * t)).astype(np.float32)


def _write_wav(path: Path, samples: np.ndarray, rate: int = 16000) -> None:
    pcm = (np.clip(samples, -1, 1) * 32767).astype("<i2").tobytes()
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(pcm)


def _png(path: Path, seed: int, shift: int = 0) -> None:
    from PIL import Image

    y, x = np.mgrid[0:192, 0:256]
    r = (x * 4 + seed * 40) % 256
    g = (y * 5 + seed * 70) % 256
    b = ((x + y + shift) * 3 + seed * 25) % 256
    Image.fromarray(np.stack([r, g, b], -1).astype(np.uint8)).save(path)


def _video(path: Path, seed: int, seconds: float = 2.0, fps: int = 8, w: int = 96, h: int = 64) -> None:
    """An MP4 (MPEG-4 part 2 video, AAC mono audio) of a moving gradient and a tone, made with PyAV.
    MPEG-4 part 2 is built into every FFmpeg and encodes the same bytes each time."""
    import av

    y, x = np.mgrid[0:h, 0:w]
    rate, hop = 16000, 1024
    tone = _tone(220.0 * (seed + 1), seconds, rate)
    with av.open(str(path), "w", format="mp4") as out:
        vs = out.add_stream("mpeg4", rate=fps)
        vs.width, vs.height, vs.pix_fmt = w, h, "yuv420p"
        vs.codec_context.thread_count = 1
        aus = out.add_stream("aac", rate=rate)
        aus.layout = "mono"
        for i in range(int(seconds * fps)):
            img = np.stack(
                [(x * 2 + i * 8 + seed * 60) % 256, (y * 3 + seed * 90) % 256, (x + y + i * 4) % 256], -1
            ).astype(np.uint8)
            for packet in vs.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                out.mux(packet)
        for k in range(0, len(tone) - hop + 1, hop):
            frame = av.AudioFrame.from_ndarray(tone[None, k : k + hop], format="fltp", layout="mono")
            frame.sample_rate, frame.pts = rate, k
            for packet in aus.encode(frame):
                out.mux(packet)
        for stream in (vs, aus):
            for packet in stream.encode():
                out.mux(packet)


SAMPLE_FOLDERS = ("text", "repo", "images", "audio", "video")


def samples_complete(root: Path) -> bool:
    """Whether `root` holds every part of the corpus (a folder made by an older version may
    lack one, e.g. video: make_samples then adds it, leaving the rest byte-identical)."""
    return (root / "problems.jsonl").exists() and all((root / d).is_dir() for d in SAMPLE_FOLDERS)


def make_samples(root: Path, seed: int = 0, articles: int = 120, problems: int = 60) -> Path:
    """Write the demo corpus under `root` (idempotent: same seed, same bytes)."""
    rng = random.Random(seed)
    text = root / "text"
    text.mkdir(parents=True, exist_ok=True)
    topics = sorted(TOPICS)
    docs = [_article(rng, topics[i % len(topics)], rng.randint(8, 16)) for i in range(articles)]
    for i, doc in enumerate(docs):
        (text / f"article-{i:03d}.txt").write_text(doc)
    for i in range(0, articles, 10):  # near duplicates: a few words changed
        (text / f"article-{i:03d}-mirror.txt").write_text(_near_copy(rng, docs[i]))
    for i in range(0, articles, 25):  # exact duplicates under another name
        (text / f"article-{i:03d}-copy.md").write_text(docs[i])
    for i, junk in enumerate(JUNK):
        (text / f"junk-{i}.txt").write_text(junk)
    (text / "contact.html").write_text(
        "<html><body><h1>Contact</h1><p>"
        + docs[1].replace("\n", " ")
        + " Write to jane.doe@example.com or call +1 415 555 0100. Our deploy key is "
        "sk-proj-A1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6 and the server is 10.0.0.12.</p>"
        "<script>var tracking = 1;</script></body></html>"
    )
    (text / "latin1.txt").write_bytes(("Caf\xe9 cr\xe8me and p\xe2tisserie. " * 20).encode("latin-1"))
    (text / "empty.txt").write_bytes(b"")

    prng = random.Random(seed + 1)
    with open(root / "problems.jsonl", "w") as fh:
        for _ in range(problems):
            a, b = prng.randint(100, 999), prng.randint(100, 999)
            fh.write(json.dumps({"text": f"What is {a} + {b}?", "answer": str(a + b)}) + "\n")

    repo = root / "repo"
    for rel, body in REPO_FILES.items():
        (repo / rel).parent.mkdir(parents=True, exist_ok=True)
        (repo / rel).write_text(body)
    if not (repo / ".git").exists():
        git = ["git", "-c", "user.email=demo@distillery", "-c", "user.name=demo", "-c", "init.defaultBranch=main"]
        subprocess.run(git + ["init", "-q"], cwd=repo, check=True)
        subprocess.run(git + ["add", "-A"], cwd=repo, check=True)
        subprocess.run(
            git + ["commit", "-q", "-m", "sample"],
            cwd=repo,
            check=True,
            env={
                "GIT_AUTHOR_DATE": "2026-01-01T00:00:00Z",
                "GIT_COMMITTER_DATE": "2026-01-01T00:00:00Z",
                "PATH": "/usr/bin:/bin:/usr/local/bin",
            },
        )

    images = root / "images"
    images.mkdir(exist_ok=True)
    for i in range(6):
        _png(images / f"gradient-{i}.png", i)
    _png(images / "gradient-0-shifted.png", 0, shift=1)  # a near duplicate of gradient-0
    _png(images / "tmp.png", 9)
    data = (images / "tmp.png").read_bytes()
    (images / "tmp.png").unlink()
    (images / "truncated.png").write_bytes(data[: len(data) // 2])

    audio = root / "audio"
    audio.mkdir(exist_ok=True)
    for i, f in enumerate([220.0, 330.0, 440.0]):
        _write_wav(audio / f"tone-{i}.wav", _tone(f, 1.0))
    _write_wav(audio / "tone-0-again.wav", _tone(220.0, 1.0))  # identical audio, another file
    (audio / "broken.wav").write_bytes(b"RIFF\x10\x00\x00\x00WAVEfmt garbage")

    video = root / "video"
    video.mkdir(exist_ok=True)
    for i in range(2):
        _video(video / f"clip-{i}.mp4", i)
    data = (video / "clip-0.mp4").read_bytes()
    (video / "cut.mp4").write_bytes(data[: len(data) // 2])  # cut mid-file: quarantined, the run goes on
    return root
