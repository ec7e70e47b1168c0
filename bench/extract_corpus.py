"""The labelled web corpus of bench/extract.py: pages of four kinds (article, forum post,
product page, documentation) in several languages, each a known main text wrapped in
boilerplate, some with broken markup or wrong declared charsets, written into WARC files
with warcio's writer. Generated from a seed; nothing is downloaded.
"""

from __future__ import annotations

import io
import random
import re
from pathlib import Path

from warcio.statusandheaders import StatusAndHeaders
from warcio.warcwriter import WARCWriter

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
