"""GET /dashboard: one self-contained HTML page (inline CSS, JS and SVG; nothing from another
origin) that reads /v1/stats and /v1/arms from this server and redraws every few seconds.

The page holds no data, so it needs no key; the data it fetches does. With keys configured
the page asks for one (or takes it from the URL fragment, `#key=...`, which browsers never
send to a server) and sends it as `Authorization: Bearer`. A Content-Security-Policy that
allows only this page's own script and style (by hash) and requests to this origin keeps it
self-contained: anything else would be blocked, and show as an error in the browser.
"""

from __future__ import annotations

import base64
import hashlib
import re
from functools import cache
from importlib import resources

from aiohttp import web

from bandit_router.http.appkeys import KEYS

ROUTES = web.RouteTableDef()
PAGE = "dashboard.html"


def _digest(block: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(block.encode()).digest()).decode() + "'"


@cache
def _page() -> tuple[str, str]:
    """The page template and its Content-Security-Policy (read once)."""
    html = resources.files("bandit_router.http").joinpath(PAGE).read_text(encoding="utf-8")
    scripts = re.findall(r"<script>(.*?)</script>", html, re.S)
    styles = re.findall(r"<style>(.*?)</style>", html, re.S)
    policy = "; ".join((
        "default-src 'none'",
        "script-src " + " ".join(map(_digest, scripts)),
        "style-src " + " ".join(map(_digest, styles)),
        "connect-src 'self'", "img-src data:", "base-uri 'none'", "form-action 'none'",
        "frame-ancestors 'none'"))
    return html, policy


@ROUTES.get("/dashboard")
async def dashboard(request: web.Request) -> web.Response:
    html, policy = _page()
    auth = "open" if request.app[KEYS].open else "required"
    return web.Response(text=html.replace("{{AUTH}}", auth), content_type="text/html",
                        headers={"Content-Security-Policy": policy,
                                 "Cache-Control": "no-cache",
                                 "X-Content-Type-Options": "nosniff"})
