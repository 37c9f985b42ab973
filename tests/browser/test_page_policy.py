"""Static checks on the staff pages that need no browser: they run everywhere.

The pages carry a Content-Security-Policy that allows only their own inline script,
pinned by hash (CSP Level 3 §8.2 hash-source). Editing a script without updating the
hash would make the browser refuse to run it; this test names the hash to paste.
"""

from __future__ import annotations

import base64
import hashlib
import re
from importlib import resources

import pytest

from core.http import login

PAGES = ["login.html", "technician.html", "care.html", "billing.html"]
SCRIPT_RE = re.compile(r"<script>(.*?)</script>", re.DOTALL)
CSP_RE = re.compile(r'<meta http-equiv="Content-Security-Policy" content="([^"]*)">')
# DOM sinks that parse markup: API data must reach the page as text only.
MARKUP_SINKS = re.compile(r"\.innerHTML\s*=|\.outerHTML\s*=|insertAdjacentHTML|document\.write")


def page(name: str) -> str:
    return resources.files("core.http").joinpath("static", name).read_text(encoding="utf-8")


def script_hash(source: str) -> str:
    digest = hashlib.sha256(source.encode("utf-8")).digest()
    return f"'sha256-{base64.b64encode(digest).decode()}'"


@pytest.mark.parametrize("name", PAGES)
def test_page_csp_allows_exactly_its_inline_scripts(name: str) -> None:
    html = page(name)
    policy = CSP_RE.search(html)
    assert policy is not None, f"{name}: no Content-Security-Policy meta"
    directives = dict(d.strip().split(" ", 1) for d in policy.group(1).split(";") if d.strip())
    wanted = sorted(script_hash(s) for s in SCRIPT_RE.findall(html))
    assert wanted, f"{name}: no inline script found"
    assert sorted(directives["script-src"].split()) == wanted, (
        f"{name}: script changed; set script-src to {' '.join(wanted)}"
    )
    assert directives["default-src"] == "'none'"
    assert directives["connect-src"] == "'self'"


@pytest.mark.parametrize("name", PAGES)
def test_page_loads_nothing_from_other_origins(name: str) -> None:
    # Production networks have no internet: no CDN, no web fonts, no analytics.
    html = page(name)
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", html, re.IGNORECASE)
    assert "@import" not in html
    assert "url(" not in html


@pytest.mark.parametrize("name", PAGES)
def test_page_never_parses_data_as_markup_nor_stores_it(name: str) -> None:
    html = page(name)
    assert not MARKUP_SINKS.search(html), "use textContent / createElement"
    # Credentials are shown once; nothing may outlive the page in browser storage.
    assert "localStorage" not in html
    assert "sessionStorage" not in html
    assert "indexedDB" not in html


def test_every_routed_page_is_under_these_checks() -> None:
    # A page added to the routes but not to PAGES above would escape the policy checks.
    assert sorted(login.PAGES.values()) == sorted(PAGES)
