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
import io
import random
import re
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from warcio.statusandheaders import StatusAndHeaders  # noqa: E402
from warcio.warcwriter import WARCWriter  # noqa: E402

_TOKEN = re.compile(r"\w+", re.UNICODE)
TRAFILATURA_DIR = Path(__file__).resolve().parent / ".venv-trafilatura"
TRAFILATURA = "trafilatura==2.3.1"

# Per language: words to build sentences from, boilerplate labels, the legacy charset the
# language is commonly served in.
LANGS = {
    "en": (
        "the city council approved new budget for public schools and roads after long debate about taxes "
        "residents said their neighbourhood needs better transport while officials promised more funding next "
        "year researchers found that water quality improved because local farms reduced fertilizer use",
        ["Home", "News", "World", "Business", "Sport", "Culture", "Contact", "About us", "Subscribe", "Login"],
        "cp1252",
    ),
    "de": (
        "der stadtrat hat nach langer debatte einen neuen haushalt für schulen und straßen beschlossen die bürger "
        "sagten dass ihr viertel bessere verbindungen braucht während die verwaltung mehr geld für das nächste "
        "jahr versprach forscher stellten fest dass die wasserqualität sich verbessert hat weil höfe weniger dünger",
        [
            "Startseite",
            "Nachrichten",
            "Welt",
            "Wirtschaft",
            "Sport",
            "Kultur",
            "Kontakt",
            "Über uns",
            "Abo",
            "Anmelden",
        ],
        "cp1252",
    ),
    "fr": (
        "le conseil municipal a approuvé un nouveau budget pour les écoles et les routes après un long débat les "
        "habitants ont déclaré que leur quartier a besoin de meilleurs transports tandis que la mairie a promis "
        "davantage de crédits les chercheurs ont constaté une amélioration de la qualité de l'eau",
        [
            "Accueil",
            "Actualités",
            "Monde",
            "Économie",
            "Sport",
            "Culture",
            "Contact",
            "À propos",
            "S'abonner",
            "Connexion",
        ],
        "cp1252",
    ),
    "es": (
        "el ayuntamiento aprobó un nuevo presupuesto para escuelas y carreteras después de un largo debate los "
        "vecinos dijeron que su barrio necesita mejor transporte mientras los funcionarios prometieron más fondos "
        "el próximo año los investigadores descubrieron que la calidad del agua mejoró gracias a las granjas",
        [
            "Inicio",
            "Noticias",
            "Mundo",
            "Economía",
            "Deportes",
            "Cultura",
            "Contacto",
            "Quiénes somos",
            "Suscríbete",
            "Entrar",
        ],
        "cp1252",
    ),
    "ru": (
        "городской совет после долгих обсуждений утвердил новый бюджет для школ и дорог жители сказали что их "
        "району нужен лучший транспорт а чиновники пообещали больше денег в следующем году исследователи "
        "обнаружили что качество воды улучшилось потому что фермы стали использовать меньше удобрений",
        ["Главная", "Новости", "Мир", "Экономика", "Спорт", "Культура", "Контакты", "О нас", "Подписка", "Войти"],
        "cp1251",
    ),
    "pl": (
        "rada miasta po długiej debacie zatwierdziła nowy budżet na szkoły i drogi mieszkańcy powiedzieli że ich "
        "dzielnica potrzebuje lepszego transportu a urzędnicy obiecali więcej pieniędzy w przyszłym roku naukowcy "
        "stwierdzili że jakość wody poprawiła się ponieważ gospodarstwa zużywają mniej nawozów",
        [
            "Strona główna",
            "Wiadomości",
            "Świat",
            "Gospodarka",
            "Sport",
            "Kultura",
            "Kontakt",
            "O nas",
            "Subskrybuj",
            "Zaloguj",
        ],
        "cp1250",
    ),
}
COOKIE = (
    "We use cookies and similar technologies to improve your experience, analyse traffic and personalise "
    "advertising. By clicking accept you agree to our use of cookies."
)


class Page:
    """One generated page: its HTML, the known main text, and how it is served."""

    def __init__(self, html: str, main: str, lang: str, encoding: str, header_charset: str | None) -> None:
        self.html, self.main, self.lang = html, main, lang
        self.encoding, self.header_charset = encoding, header_charset


def _sentence(rng: random.Random, words: list[str], lo: int = 8, hi: int = 18) -> str:
    s = " ".join(rng.choice(words) for _ in range(rng.randint(lo, hi)))
    return s[0].upper() + s[1:] + rng.choice([".", ".", ".", "!", "?"])


def _para(rng: random.Random, words: list[str], lo: int = 3, hi: int = 6) -> str:
    return " ".join(_sentence(rng, words) for _ in range(rng.randint(lo, hi)))


def _headline(rng: random.Random, words: list[str]) -> str:
    return _sentence(rng, words, 5, 9).rstrip(".!?")


def _links(rng: random.Random, labels: list[str], n: int, cls: str = "") -> str:
    items = "".join(f'<li><a href="/{i}/{rng.randint(1, 999)}">{labels[i % len(labels)]}</a></li>' for i in range(n))
    return f'<ul class="{cls}">{items}</ul>'


def _boilerplate(rng: random.Random, words: list[str], labels: list[str], semantic: bool) -> dict[str, str]:
    site = _headline(rng, words).split()[0].title() + " " + rng.choice(["Times", "Daily", "Online", "Hub", "Portal"])
    related = "".join(
        f'<li><a href="/a/{rng.randint(1, 9999)}">{_headline(rng, words)}</a>'
        f'<span class="date">2024-0{rng.randint(1, 9)}-1{rng.randint(0, 9)}</span></li>'
        for _ in range(rng.randint(4, 8))
    )
    comments = "".join(
        f'<div class="comment"><div class="comment-meta"><span class="author">user{rng.randint(1, 999)}</span> '
        f"<time>{rng.randint(1, 23)} hours ago</time></div><p>{_para(rng, words, 1, 3)}</p>"
        f'<a class="reply" href="#">Reply</a></div>'
        for _ in range(rng.randint(2, 6))
    )
    nav = _links(rng, labels, rng.randint(7, 10), "menu")
    footer_cols = "".join(
        f'<div class="col"><h4>{labels[i]}</h4>{_links(rng, labels[i:] + labels[:i], 5)}</div>' for i in range(3)
    )
    tag = (
        (lambda t, cls, body: f'<{t} class="{cls}">{body}</{t}>')
        if semantic
        else (lambda t, cls, body: f'<div class="{cls} {t}-wrap">{body}</div>')
    )
    return {
        "header": tag(
            "header",
            "site-header",
            f'<div class="logo"><a href="/">{site}</a></div>'
            f'<form action="/search"><input name="q" placeholder="Search"><button>Search</button></form>'
            + tag("nav", "main-nav", nav),
        ),
        "cookie": f'<div id="cookie-banner" class="cookie-consent"><p>{COOKIE}</p><button>Accept</button>'
        f"<button>Settings</button></div>",
        "sidebar": tag(
            "aside",
            "sidebar col-md-4",
            f'<div class="widget"><h3>{labels[1]}: Popular</h3><ol>{related}'
            f'</ol></div><div class="widget newsletter"><h3>Newsletter</h3><p>{_sentence(rng, words)}'
            f'</p><input type="email"><button>{labels[8]}</button></div>',
        ),
        "related": tag("section", "related-articles", f"<h3>Related</h3><ul>{related}</ul>"),
        "comments": tag("section", "comments", f"<h3>Comments ({rng.randint(2, 40)})</h3>{comments}"),
        "footer": tag(
            "footer",
            "site-footer",
            f'<div class="row">{footer_cols}</div><p class="copyright">© 2024 {site}. All rights reserved.</p>',
        ),
    }


def _main(kind: str, rng: random.Random, words: list[str], semantic: bool) -> tuple[str, list[str]]:
    """(HTML of the main block, its text pieces)."""
    title = _headline(rng, words)
    texts, body = [title], []
    if kind == "article":
        for i in range(rng.randint(3, 7)):
            if i and rng.random() < 0.3:
                sub = _headline(rng, words)
                texts.append(sub)
                body.append(f"<h2>{sub}</h2>")
            p = _para(rng, words)
            texts.append(p)
            body.append(f"<p>{p}</p>" if rng.random() > 0.15 else f"<blockquote><p>{p}</p></blockquote>")
        byline = f'<p class="byline">By <a href="/author/{rng.randint(1, 99)}">Staff</a> · <time>2024-05-0{rng.randint(1, 9)}</time></p>'
        inner = f"<h1>{title}</h1>{byline}" + "".join(body)
        html = (
            f'<article class="post">{inner}</article>'
            if semantic
            else f'<div class="col-md-8"><div class="post-content entry">{inner}</div></div>'
        )
    elif kind == "forum":
        for _ in range(rng.randint(2, 5)):
            p = _para(rng, words, 2, 5)
            texts.append(p)
            body.append(f"<p>{p}</p>" if semantic else f"{p}<br><br>")
        html = (
            f'<div class="thread"><h1 class="thread-title">{title}</h1><div class="post" id="post1">'
            f'<div class="postauthor"><b>member{rng.randint(1, 500)}</b><br>Posts: {rng.randint(1, 900)}</div>'
            f'<div class="postbody">{"".join(body)}</div></div></div>'
        )
    elif kind == "product":
        for _ in range(rng.randint(2, 4)):
            p = _para(rng, words, 2, 4)
            texts.append(p)
            body.append(f"<p>{p}</p>")
        feats = [_sentence(rng, words, 6, 10) for _ in range(rng.randint(3, 6))]
        texts += feats
        html = (
            f'<div class="product" itemscope><h1 itemprop="name">{title}</h1>'
            f'<div class="price">€{rng.randint(5, 900)},99</div><button class="add-to-cart">Add to cart</button>'
            f'<div class="description" itemprop="description">{"".join(body)}'
            f'<ul class="features">{"".join(f"<li>{f}</li>" for f in feats)}</ul></div></div>'
        )
    else:  # documentation
        for i in range(rng.randint(3, 6)):
            if i:
                sub = _headline(rng, words)
                texts.append(sub)
                body.append(f'<h2 id="s{i}">{sub}</h2>')
            p = _para(rng, words)
            texts.append(p)
            body.append(f"<p>{p}</p>")
            if rng.random() < 0.4:
                code = f"config.load(path={rng.randint(1, 99)})\nresult = run(config)"
                texts.append(code)
                body.append(f"<pre><code>{code}</code></pre>")
        toc = _links(rng, [f"Section {i}" for i in range(1, 8)], rng.randint(4, 7), "toc")
        inner = f"<h1>{title}</h1>{''.join(body)}"
        html = (
            f'<div class="docs"><nav class="toc">{toc}</nav><main class="doc-body">{inner}</main></div>'
            if semantic
            else f'<div class="wy-nav-side">{toc}</div><div class="rst-content"><div '
            f'class="document" role="main">{inner}</div></div>'
        )
    return html, texts


def _break(rng: random.Random, html: str) -> str:
    """Common real-world markup faults: unclosed <p>/<div>, stray end tags, upper-case tags."""
    if rng.random() < 0.5:
        html = html.replace("</p>", "", rng.randint(1, 4))
    if rng.random() < 0.3:  # one </div> missing, anywhere on the page
        ends = [m.start() for m in re.finditer("</div>", html)]
        at = rng.choice(ends)
        html = html[:at] + html[at + len("</div>") :]
    if rng.random() < 0.3:
        html = html.replace("<p>", "</span><p>", 2)
    if rng.random() < 0.3:
        html = html.replace("<p>", "<P>").replace("</p>", "</P>")
    return html


def make_page(rng: random.Random) -> Page:
    lang = rng.choice(list(LANGS))
    vocab, labels, legacy = LANGS[lang]
    words = vocab.split()
    kind = rng.choice(["article", "forum", "product", "docs"])
    semantic = rng.random() < 0.5
    bp = _boilerplate(rng, words, labels, semantic)
    main_html, texts = _main(kind, rng, words, semantic)
    if kind in ("article", "forum") and rng.random() < 0.7:
        main_html += bp["comments"]
    if rng.random() < 0.5:
        main_html += bp["related"]
    content = (
        f'<main id="content">{main_html}</main>'
        if semantic and kind != "docs"
        else f'<div id="content" class="container"><div class="row">{main_html}</div></div>'
    )
    # How the page is served: utf-8 declared (header), legacy declared only in <meta>,
    # legacy declared in the header, or a wrong header charset in front of utf-8 bytes.
    serve = rng.choices(["utf8", "meta", "legacy", "wrong"], [0.55, 0.15, 0.15, 0.15])[0]
    encoding = legacy if serve in ("meta", "legacy") else "utf-8"
    header = {"utf8": "utf-8", "meta": None, "legacy": legacy, "wrong": "iso-8859-1"}[serve]
    meta = (
        f'<meta charset="{encoding}">'
        if serve == "meta"
        else '<meta http-equiv="Content-Type" content="text/html; charset=utf-8">'
        if rng.random() < 0.5
        else ""
    )
    html = (
        f'<!DOCTYPE html><html lang="{lang}"><head>{meta}<title>{texts[0]} | {labels[0]}</title>'
        f'<link rel="stylesheet" href="/s.css"><script>window.dataLayer=[];function gtag(){{}}</script>'
        f"<style>.sidebar{{float:right}}</style></head><body>{bp['cookie']}{bp['header']}"
        f'<div class="page">{content}{bp["sidebar"]}</div>{bp["footer"]}'
        f'<script>var analytics = {{id: "UA-{rng.randint(1000, 9999)}"}};</script></body></html>'
    )
    if rng.random() < 0.3:
        html = _break(rng, html)
    return Page(html, "\n".join(texts), lang, encoding, header)


def write_warcs(pages: list[Page], folder: Path, per_file: int = 50) -> list[str]:
    """WARC files via warcio's writer (gzip per record, every other file uncompressed); URIs in page order."""
    uris = []
    for start in range(0, len(pages), per_file):
        gz = (start // per_file) % 2 == 0
        name = f"crawl-{start // per_file:03d}.warc" + (".gz" if gz else "")
        with open(folder / name, "wb") as fh:
            writer = WARCWriter(fh, gzip=gz)
            writer.write_record(writer.create_warcinfo_record(name, {"software": "bench/extract.py"}))
            for n, page in enumerate(pages[start : start + per_file]):
                ctype = "text/html" + (f"; charset={page.header_charset}" if page.header_charset else "")
                http = StatusAndHeaders(
                    "200 OK", [("Content-Type", ctype), ("Content-Language", page.lang)], protocol="HTTP/1.1"
                )
                body = page.html.encode(page.encoding, "xmlcharrefreplace")
                writer.write_record(
                    writer.create_warc_record(
                        f"https://example.{page.lang}/p/{start + n}",
                        "response",
                        payload=io.BytesIO(body),
                        http_headers=http,
                    )
                )
                uris.append(f"{name}#record{n + 1}")  # record0 is the warcinfo record
    return uris


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
