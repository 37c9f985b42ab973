"""Checks on the staff pages and their shared files that need no browser: they run everywhere.

The pages carry a Content-Security-Policy that allows only their own scripts, each pinned
by hash (CSP Level 3 §8.2 hash-source): the inline one by the hash of its text, the shared
/static/staff.js by the hash of its bytes, which the <script> tag repeats in its integrity
attribute (CSP Level 3 §6.7.2.3 "external hashes", Subresource Integrity §3.5). Editing a
script without updating the hash would make the browser refuse to run it; these tests name
the hash to paste.
"""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import AsyncIterator
from html.parser import HTMLParser
from importlib import resources
from pathlib import Path

import aiohttp
import pytest

from core.http import app, login
from core.service import Foyer, running
from core.settings import Settings

PAGES = ["login.html", "technician.html", "care.html", "billing.html"]
SHARED = ["staff.js", "staff.css"]
CSP_RE = re.compile(r'<meta http-equiv="Content-Security-Policy" content="([^"]*)">')
# DOM sinks that parse markup: API data must reach the page as text only.
MARKUP_SINKS = re.compile(r"\.innerHTML\s*=|\.outerHTML\s*=|insertAdjacentHTML|document\.write")


def static_bytes(name: str) -> bytes:
    return resources.files("core.http").joinpath("static", name).read_bytes()


def page(name: str) -> str:
    return static_bytes(name).decode("utf-8")


def sri(data: bytes) -> str:
    """The hash as an integrity attribute and, quoted, as a CSP source both write it."""
    return f"sha256-{base64.b64encode(hashlib.sha256(data).digest()).decode()}"


def script_hash(source: str) -> str:
    return f"'{sri(source.encode('utf-8'))}'"


class Tags(HTMLParser):
    """Every <script> (attributes and text) and <link> of a page, as the browser sees them."""

    def __init__(self, html: str) -> None:
        super().__init__(convert_charrefs=False)
        self.scripts: list[tuple[dict[str, str | None], str]] = []
        self.links: list[dict[str, str | None]] = []
        self._text: list[str] | None = None
        self.feed(html)
        self.close()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "script":
            self.scripts.append((dict(attrs), ""))
            self._text = []
        elif tag == "link":
            self.links.append(dict(attrs))

    def handle_data(self, data: str) -> None:
        if self._text is not None:
            self._text.append(data)

    def handle_endtag(self, tag: str) -> None:
        if tag == "script" and self._text is not None:
            attrs, _ = self.scripts[-1]
            self.scripts[-1] = (attrs, "".join(self._text))
            self._text = None


def directives_of(html: str, name: str) -> dict[str, str]:
    policy = CSP_RE.search(html)
    assert policy is not None, f"{name}: no Content-Security-Policy meta"
    return dict(d.strip().split(" ", 1) for d in policy.group(1).split(";") if d.strip())


def shared_file(name: str, url: str | None) -> str:
    assert url is not None and url.startswith("/static/"), f"{name}: {url} is not a shared file"
    asset = url.removeprefix("/static/")
    assert asset in app.STATIC_FILES, f"{name}: {url} is not served (core/http/app.py)"
    return asset


@pytest.mark.parametrize("name", PAGES)
def test_page_csp_allows_exactly_its_scripts_each_pinned_by_hash(name: str) -> None:
    html = page(name)
    directives = directives_of(html, name)
    tags = Tags(html)
    assert len(tags.scripts) == len(re.findall(r"<script\b", html, re.IGNORECASE))
    assert any(not attrs for attrs, _ in tags.scripts), f"{name}: no inline script found"
    wanted = []
    for attrs, text in tags.scripts:
        if "src" not in attrs:
            assert not attrs, f"{name}: an inline script takes no attributes, got {attrs}"
            wanted.append(script_hash(text))
            continue
        digest = sri(static_bytes(shared_file(name, attrs["src"])))
        assert attrs.get("integrity") == digest, f"{name}: set integrity to {digest}"
        assert not text.strip(), f"{name}: a script with src has no text of its own"
        wanted.append(f"'{digest}'")
    # Exactly these hashes: no 'self', no 'unsafe-inline', no hash of an old version.
    assert sorted(directives["script-src"].split()) == sorted(wanted), (
        f"{name}: script changed; set script-src to {' '.join(sorted(wanted))}"
    )
    assert directives["default-src"] == "'none'"
    assert directives["connect-src"] == "'self'"


@pytest.mark.parametrize("name", PAGES)
def test_page_stylesheets_are_shared_files_pinned_by_integrity(name: str) -> None:
    html = page(name)
    styles = [attrs for attrs in Tags(html).links if attrs.get("rel") == "stylesheet"]
    for attrs in styles:
        digest = sri(static_bytes(shared_file(name, attrs.get("href"))))
        assert attrs.get("integrity") == digest, f"{name}: set integrity to {digest}"
    expected = "'self' 'unsafe-inline'" if styles else "'unsafe-inline'"
    assert directives_of(html, name)["style-src"] == expected


@pytest.mark.parametrize("name", PAGES + SHARED)
def test_page_loads_nothing_from_other_origins(name: str) -> None:
    # Production networks have no internet: no CDN, no web fonts, no analytics.
    html = page(name)
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", html, re.IGNORECASE)
    assert "@import" not in html
    assert "url(" not in html


@pytest.mark.parametrize("name", PAGES + SHARED)
def test_page_never_parses_data_as_markup_nor_stores_it(name: str) -> None:
    html = page(name)
    assert not MARKUP_SINKS.search(html), "use textContent / createElement"
    # Credentials are shown once; nothing may outlive the page in browser storage.
    assert "localStorage" not in html
    assert "sessionStorage" not in html
    assert "indexedDB" not in html


def test_every_routed_page_and_shared_file_is_under_these_checks() -> None:
    # A page or file added to the routes but not to the lists above would escape the checks.
    assert sorted(login.PAGES.values()) == sorted(PAGES)
    assert sorted(app.STATIC_FILES) == sorted(SHARED)


@pytest.fixture
async def foyer(tmp_path: Path) -> AsyncIterator[Foyer]:
    settings = Settings(data_dir=tmp_path / "data", coap_bind="", http_bind="127.0.0.1:0")
    async with running(settings) as f:
        yield f


@pytest.mark.parametrize("name", SHARED)
async def test_shared_file_is_served_as_pinned_and_revalidated_each_time(
    foyer: Foyer, name: str
) -> None:
    url = f"http://127.0.0.1:{foyer.http_port}/static/{name}"
    async with aiohttp.ClientSession() as session:
        async with session.get(url) as r:
            assert r.status == 200
            assert await r.read() == static_bytes(name)  # the bytes the pages' hashes pin
            assert r.content_type == app.STATIC_FILES[name]
            assert r.headers["X-Content-Type-Options"] == "nosniff"
            # A cached older copy would fail its integrity check: always ask first.
            assert r.headers["Cache-Control"] == "no-cache"
            etag = r.headers["ETag"]
        async with session.get(url, headers={"If-None-Match": etag}) as r:
            assert r.status == 304
            assert await r.read() == b""
        async with session.get(url, headers={"If-None-Match": '"an-older-version"'}) as r:
            assert r.status == 200
