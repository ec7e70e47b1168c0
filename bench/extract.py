"""Benchmark: main-content extraction of web pages read from WARC files (issue 19).

Generates a labelled corpus itself: pages built from several page kinds (news article,
forum thread, product page, documentation page) and two layout families (semantic HTML5
and div soup with framework class names), in six languages, each with a known main text
wrapped in boilerplate (navigation, header with search form, cookie banner, sidebar with
"popular"/"related" link lists, comment thread, footer link columns). Some pages have
broken markup (unclosed <p>/<div>, stray end tags, upper-case tags), some are written in
a legacy charset, some declare their charset only in a <meta> tag, some declare a wrong
one in the HTTP header. The pages go into WARC files written by warcio's WARCWriter
(gzip per record and uncompressed), and are read back through the `warc` source
(sources.read_items), so every row measures reading + charset decision + extraction.

Rows, in one run on the same files:
  html.parser (visible text)  -> `main_content: false`, the reader before issue 19
  resiliparse (main content)  -> `main_content: true`, the shipped extractor
  trafilatura (main content)  -> the alternative the choice was made against; not a
                                 dependency: installed on first use into
                                 bench/.venv-trafilatura (pip --target), appended to sys.path
                                 after the project's packages (skip with --no-trafilatura)
Each row: token-level precision / recall / F1 of the extracted text against the known
main text (multiset overlap of lower-cased word tokens, averaged over pages), and pages/s
(best of --repeat runs). Goals: F1 >= 0.90 for the shipped extractor, pages/s not below
the html.parser row.

Usage: python bench/extract.py [--pages 400] [--repeat 3] [--seed 19] [--no-trafilatura]   (~15 s)
"""

from __future__ import annotations

import argparse
import random
import re
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.extract_corpus import make_page, write_warcs  # noqa: E402

_TOKEN = re.compile(r"\w+", re.UNICODE)
TRAFILATURA_DIR = Path(__file__).resolve().parent / ".venv-trafilatura"
TRAFILATURA = "trafilatura==2.3.1"


# Per language: words to build sentences from, boilerplate labels, the legacy charset the
# language is commonly served in.
def prf(extracted: str, truth: str) -> tuple[float, float, float]:
    """Token-level precision, recall, F1 (multiset overlap of lower-cased \\w+ tokens)."""
    got, want = Counter(_TOKEN.findall(extracted.lower())), Counter(_TOKEN.findall(truth.lower()))
    common = sum((got & want).values())
    p = common / max(sum(got.values()), 1)
    r = common / max(sum(want.values()), 1)
    return p, r, (2 * p * r / (p + r) if p + r else 0.0)


def _read(folder: Path, main_content: bool) -> dict[str, str]:
    from sources import discover, read_items
    from sources.config import WarcSource

    source = WarcSource(name="bench", paths=["*.warc*"], main_content=main_content)
    docs = read_items(source, list(discover(source, folder)), folder / "media").tables["documents"]
    return {uri.rsplit("/", 1)[1]: text for uri, text in docs.select("uri", "text").iter_rows()}


def ensure_trafilatura() -> bool:
    """trafilatura importable (installed into TRAFILATURA_DIR on first use), else False."""
    if not TRAFILATURA_DIR.exists():
        r = subprocess.run(
            [sys.executable, "-m", "pip", "install", "--quiet", "--target", str(TRAFILATURA_DIR), TRAFILATURA],
            capture_output=True,
            text=True,
        )
        if r.returncode:
            print("trafilatura could not be installed:", r.stderr.strip().splitlines()[-1:])
            return False
    sys.path.append(str(TRAFILATURA_DIR))  # after site-packages: the project's own versions win
    try:
        import trafilatura  # noqa: F401
    except ImportError as exc:
        print("trafilatura could not be imported:", exc)
        return False
    return True


def _trafilatura(folder: Path) -> dict[str, str] | None:
    """Same reader, with trafilatura's extract() in place of the html step; None when not installed."""
    try:
        import trafilatura
    except ImportError:
        return None
    import sources.html_text as html_text
    import sources.warc as warc

    def extract(html: str, main_content: bool = True) -> tuple[str, dict]:
        text = trafilatura.extract(html, include_comments=False, include_tables=True, favor_precision=False) or ""
        return text, {"title": None, "lang": html_text.html_lang(html)}

    original = warc.extract_html
    warc.extract_html = extract
    try:
        return _read(folder, True)
    finally:
        warc.extract_html = original


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--pages", type=int, default=400)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--seed", type=int, default=19)
    ap.add_argument("--no-trafilatura", action="store_true")
    args = ap.parse_args()
    if not args.no_trafilatura:
        ensure_trafilatura()
    rng = random.Random(args.seed)
    pages = [make_page(rng) for _ in range(args.pages)]
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        uris = write_warcs(pages, folder)
        mb = sum(f.stat().st_size for f in folder.iterdir()) / 1e6
        print(
            f"{len(pages)} pages in {len(list(folder.iterdir()))} WARC files ({mb:.1f} MB); "
            f"{sum(p.header_charset is None for p in pages)} charset only in <meta>, "
            f"{sum(p.header_charset == 'iso-8859-1' for p in pages)} with a wrong header charset"
        )
        rows = [
            ("html.parser (visible text, main_content: false)", lambda: _read(folder, False)),
            ("resiliparse (main content, main_content: true)", lambda: _read(folder, True)),
            ("trafilatura (main content, not shipped)", lambda: _trafilatura(folder)),
        ]
        print(f"{'extractor':<50} {'precision':>9} {'recall':>7} {'F1':>6} {'pages/s':>9}")
        for label, run in rows:
            best, out = float("inf"), None
            for _ in range(args.repeat):
                t0 = time.perf_counter()
                out = run()
                best = min(best, time.perf_counter() - t0)
                if out is None:
                    break
            if out is None:
                print(f"{label:<50} NOT RUN (--no-trafilatura, or not installable: see above)")
                continue
            scores = [prf(out.get(uri, ""), page.main) for uri, page in zip(uris, pages)]
            p, r, f = (sum(s[i] for s in scores) / len(scores) for i in range(3))
            print(
                f"{label:<50} {p:>9.3f} {r:>7.3f} {f:>6.3f} {len(pages) / best:>9.0f}"
                f"   ({len(pages) - len(out)} pages without a document)"
            )


if __name__ == "__main__":
    main()
