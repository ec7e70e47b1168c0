"""HTML -> text: the page's main content (resiliparse), or everything a browser shows.

extract_html(html, main_content=True) is what the readers call:
  main_content=True  -> resiliparse's main-content extraction (the extractor DCLM uses;
                        chosen over trafilatura by bench/extract.py): the article, post,
                        product or documentation body without navigation, header, footer,
                        sidebars, cookie banners, comment threads and related-link lists;
  main_content=False -> html_to_text below, all visible text (the behaviour before main-
                        content extraction existed).
Both return the page title and the <html lang> hint; neither raises on malformed HTML.

html_to_text keeps what a browser shows: text outside script/style/template/noscript/head (the
<title> is returned separately), block elements become line breaks, runs of spaces
collapse, <pre> keeps its whitespace. Malformed HTML never raises: html.parser is lenient.
"""

from __future__ import annotations

import re
from html.parser import HTMLParser

from resiliparse.extract.html2text import extract_plain_text
from resiliparse.parse.html import HTMLTree

_HIDDEN = {"script", "style", "template", "noscript", "head", "svg", "iframe", "object"}
_BLOCK = {
    "address",
    "article",
    "aside",
    "blockquote",
    "br",
    "dd",
    "details",
    "div",
    "dl",
    "dt",
    "fieldset",
    "figcaption",
    "figure",
    "footer",
    "form",
    "h1",
    "h2",
    "h3",
    "h4",
    "h5",
    "h6",
    "header",
    "hr",
    "li",
    "main",
    "nav",
    "ol",
    "p",
    "pre",
    "section",
    "summary",
    "table",
    "td",
    "th",
    "tr",
    "ul",
    "caption",
    "body",
    "html",
}
_VOID = {"br", "hr", "img", "input", "meta", "link", "area", "base", "col", "embed", "source", "track", "wbr"}
_SPACES = re.compile(r"[ \t\r\f\v]+")
_BLANKS = re.compile(r"\n\s*\n+")
_HTML_LANG = re.compile(r"<html\b[^>]*?\blang\s*=\s*[\"']?\s*([A-Za-z]{2,3}(?:[-_][A-Za-z0-9]{1,8})*)", re.IGNORECASE)


class _Visible(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.title: list[str] = []
        self.hidden = 0
        self.pre = 0
        self.in_title = False

    def handle_starttag(self, tag: str, _attrs) -> None:
        if tag == "title":
            self.in_title = True
        elif tag in _HIDDEN and tag not in _VOID:
            self.hidden += 1
        elif tag == "pre":
            self.pre += 1
        if tag in _BLOCK and not self.hidden:
            self.parts.append("\n")

    def handle_startendtag(self, tag: str, _attrs) -> None:
        if tag in _BLOCK and not self.hidden:
            self.parts.append("\n")

    def handle_endtag(self, tag: str) -> None:
        if tag == "title":
            self.in_title = False
        elif tag in _HIDDEN and self.hidden:
            self.hidden -= 1
        elif tag == "pre" and self.pre:
            self.pre -= 1
        if tag in _BLOCK and not self.hidden:
            self.parts.append("\n")

    def handle_data(self, data: str) -> None:
        if self.in_title:
            self.title.append(data)
        elif not self.hidden:
            self.parts.append(data if self.pre else _SPACES.sub(" ", data.replace("\n", " ")))


def html_to_text(html: str) -> tuple[str, str | None]:
    """(visible text, title or None)."""
    parser = _Visible()
    parser.feed(html)
    parser.close()
    text = "".join(parser.parts)
    text = "\n".join(line.strip() if not parser.pre else line.rstrip() for line in text.split("\n"))
    text = _BLANKS.sub("\n\n", text).strip()
    title = _SPACES.sub(" ", "".join(parser.title)).strip() or None
    return text, title


def html_lang(html: str) -> str | None:
    """The <html lang="..."> attribute (a language hint, not a detection), or None."""
    found = _HTML_LANG.search(html, 0, 8192) or _HTML_LANG.search(html)
    return found.group(1) if found else None


def main_content_text(html: str) -> tuple[str, str | None]:
    """(main-content text, title or None) via resiliparse; boilerplate and comments left out."""
    tree = HTMLTree.parse(html)
    text = extract_plain_text(
        tree,
        main_content=True,
        list_bullets=False,
        alt_texts=False,
        links=False,
        form_fields=False,
        noscript=False,
        comments=False,
    )
    title = _SPACES.sub(" ", tree.title or "").strip() or None
    return _BLANKS.sub("\n\n", text).strip(), title


def extract_html(html: str, main_content: bool = True) -> tuple[str, dict]:
    """(text, hints): hints holds `title` and `lang` (the <html lang> attribute), each possibly None."""
    text, title = main_content_text(html) if main_content else html_to_text(html)
    return text, {"title": title, "lang": html_lang(html)}
