"""A generated site of static and script-built pages that all carry site-wide header and footer
links (the case that defeats "a script and almost no links"), over several hosts.

Each host has a home page linking to every page of the host, an ``/about`` and a ``/contact``
page, and sections of ``pages`` pages each: ``/SECTION/N``. In a static section the content
(a heading, three paragraphs, links to the neighbours) is in the HTML, with a small script
beside it (a cookie notice of a few words, as real sites have). In a script-built section the
HTML holds only the header, the footer and ``<div id="app">Loading...</div>``; a script builds
the same content, and sets the title in some sections. :func:`build` returns the ground truth:
the URL of every page and whether it is script-built.
"""

from __future__ import annotations

from .site import Reply, Site

#: host -> sections and whether each is script-built (some hosts mix both, one has none).
LAYOUT: dict[str, dict[str, bool]] = {
    "127.0.0.1": {"static": False, "app": True},
    "127.0.0.2": {"news": False, "shop": True, "blog": False},
    "127.0.0.3": {"docs": False},
}
#: Script-built sections that also set the title (the others change only text and links).
SETS_TITLE = {"app"}

_WORDS = [
    *("river", "stone", "lantern", "orbit", "maple", "cobalt", "harbor", "velvet", "canyon"),
    *("ember", "meadow", "quartz", "willow", "signal", "copper", "prairie", "thunder"),
    *("saffron", "glacier", "pixel"),
]


def _text(section: str, n: int, paragraph: int) -> str:
    words = [_WORDS[(n * 7 + paragraph * 3 + i * i) % len(_WORDS)] for i in range(45)]
    return f"{section.title()} {n}, part {paragraph}: " + " ".join(words) + "."


def _frame(sections: dict[str, bool], title: str, main: str, script: str) -> bytes:
    nav = "".join(f'<a href="/{name}/0">{name.title()}</a> ' for name in sections)
    return (
        f"<!doctype html><html><head><meta charset=utf-8><title>{title}</title></head><body>"
        f'<header><a href="/">Home</a> {nav}<a href="/about">About</a></header>'
        f"<main>{main}</main>"
        '<footer><a href="/about">About us</a> <a href="/contact">Contact</a> '
        "<span>Copyright 2024, all rights reserved.</span></footer>"
        f"<script>{script}</script></body></html>"
    ).encode()


def _content(section: str, n: int, pages: int) -> str:
    paragraphs = "".join(f"<p>{_text(section, n, k)}</p>" for k in range(3))
    around = [m for m in (n - 1, n + 1) if 0 <= m < pages]
    neighbours = "".join(f'<a href="/{section}/{m}">{section} page {m}</a> ' for m in around)
    return f"<h1>{section.title()} page {n}</h1>{paragraphs}<nav>{neighbours}</nav>"


_COOKIE_NOTICE = (
    "window.dataLayer = [];"
    "const notice = document.createElement('div');"
    "notice.textContent = 'We use cookies.'; document.body.append(notice);"
)


def build(site: Site, pages: int) -> dict[str, bool]:
    """Add the host's pages (by ``site.host`` in :data:`LAYOUT`) to ``site``; return
    ``{url: script_built}`` for every page."""
    sections = LAYOUT[site.host]
    truth: dict[str, bool] = {}
    home_links = "".join(
        f'<a href="/{name}/{n}">{name} {n}</a> ' for name in sections for n in range(pages)
    )
    site.add("/", Reply(body=_frame(sections, "Home", f"<h1>Home</h1>{home_links}", "")))
    truth[site.url("/")] = False
    for name in ("about", "contact"):
        main = f"<h1>{name.title()}</h1><p>{_text(name, 0, 0)}</p>"
        site.add(f"/{name}", Reply(body=_frame(sections, name.title(), main, _COOKIE_NOTICE)))
        truth[site.url(f"/{name}")] = False
    for section, scripted in sections.items():
        for n in range(pages):
            path = f"/{section}/{n}"
            content = _content(section, n, pages)
            if scripted:
                title = f"{section.title()} page {n}" if section in SETS_TITLE else section.title()
                script = (
                    f"document.getElementById('app').innerHTML = {content!r};"
                    f"document.title = {title!r};"
                )
                body = _frame(sections, section.title(), '<div id="app">Loading...</div>', script)
            else:
                body = _frame(sections, f"{section.title()} page {n}", content, _COOKIE_NOTICE)
            site.add(path, Reply(body=body))
            truth[site.url(path)] = scripted
    return truth
