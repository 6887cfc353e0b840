"""Security headers on every response (contract §11, issue 10), as pure ASGI middleware.

- `X-Content-Type-Options: nosniff` everywhere, so a browser never runs a CSV or a JSON
  body as a script or a page.
- `Cache-Control: no-store` on every /v1 response: most carry answers, free text or
  exact counts, and the rest (keys, audit) are no business of a shared cache either. It
  replaces whatever a route set.
- A strict `Content-Security-Policy` on HTML: nothing loads from anywhere, and the page's
  own inline `<script>` and `<style>` blocks run only by their SHA-256 hash. The API
  documentation pages (/docs, /redoc) are FastAPI's, which load Swagger UI and ReDoc from
  a CDN and style themselves at run time: they get the CDN and inline styles, no more.
  The workbench's pages (/app) load their script, styles and images from hearme itself
  ('self'), never an inline script, and post their forms only to hearme.
"""

import base64
import hashlib
import re
from collections.abc import Iterable

from starlette.types import ASGIApp, Message, Receive, Scope, Send

DOC_PATHS = frozenset({"/docs", "/redoc", "/docs/oauth2-redirect"})
WEB_PREFIX = "/app"
CDN = "https://cdn.jsdelivr.net"
_INLINE = re.compile(rb"<(script|style)(?![^>]*\bsrc=)[^>]*>(.*?)</\1\s*>", re.DOTALL | re.I)


def _hashes(html: bytes, tag: bytes) -> list[str]:
    found = []
    for match in _INLINE.finditer(html):
        if match.group(1).lower() == tag:
            digest = base64.b64encode(hashlib.sha256(match.group(2)).digest()).decode()
            found.append(f"'sha256-{digest}'")
    return found


def content_security_policy(html: bytes, *, documentation: bool, web: bool = False) -> str:
    scripts = " ".join(_hashes(html, b"script")) or "'none'"
    styles = " ".join(_hashes(html, b"style")) or "'none'"
    directives = {
        "default-src": "'none'",
        "script-src": scripts,
        "style-src": styles,
        "img-src": "data:",
        "base-uri": "'none'",
        "form-action": "'none'",
        "frame-ancestors": "'none'",
    }
    if web:
        directives |= {
            "script-src": "'self'",
            "style-src": " ".join(["'self'", *_hashes(html, b"style")]),
            "img-src": "'self' data:",
            "form-action": "'self'",
            "connect-src": "'self'",
        }
    if documentation:
        directives |= {
            "script-src": f"{scripts} {CDN}".replace("'none' ", ""),
            "style-src": f"{CDN} https://fonts.googleapis.com 'unsafe-inline'",
            "font-src": "https://fonts.gstatic.com",
            "img-src": "data: https://fastapi.tiangolo.com https://cdn.redoc.ly",
            "connect-src": "'self'",
            "worker-src": "blob:",
        }
    return "; ".join(f"{name} {value}" for name, value in directives.items())


def _with(headers: Iterable[tuple[bytes, bytes]], **new: str) -> list[tuple[bytes, bytes]]:
    """The headers with `new` set (names in snake case), replacing any of the same name."""
    names = {k.replace("_", "-").encode(): v.encode() for k, v in new.items()}
    kept = [(k, v) for k, v in headers if k.lower() not in names]
    return kept + list(names.items())


_NOSNIFF = ((b"x-content-type-options", b"nosniff"),)
_NO_STORE = (*_NOSNIFF, (b"cache-control", b"no-store"))


def _set(
    headers: Iterable[tuple[bytes, bytes]], new: tuple[tuple[bytes, bytes], ...]
) -> list[tuple[bytes, bytes]]:
    """`_with` for headers already encoded: what every answer pays, without a dict per
    response."""
    names = [name for name, _ in new]
    return [(k, v) for k, v in headers if k.lower() not in names] + list(new)


class SecurityHeaders:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        web = path == WEB_PREFIX or path.startswith(WEB_PREFIX + "/")
        extra = _NO_STORE if path.startswith("/v1/") or web else _NOSNIFF
        start: Message | None = None
        body: list[bytes] = []

        async def send_with_headers(message: Message) -> None:
            nonlocal start
            if message["type"] == "http.response.start":
                headers = _set(message.get("headers", []), extra)
                content_type = b""
                for name, value in headers:  # the last one, as dict(headers) kept
                    if name == b"content-type":
                        content_type = value
                if not content_type.startswith(b"text/html"):
                    await send({**message, "headers": headers})
                    return
                start = {**message, "headers": headers}  # held until the page is whole
                return
            if start is None or message["type"] != "http.response.body":
                await send(message)
                return
            body.append(message.get("body", b""))
            if message.get("more_body", False):
                return
            html = b"".join(body)
            policy = content_security_policy(html, documentation=path in DOC_PATHS, web=web)
            headers = _with(start["headers"], content_security_policy=policy)
            headers = [(k, v) for k, v in headers if k.lower() != b"content-length"]
            headers.append((b"content-length", str(len(html)).encode()))
            await send({**start, "headers": headers})
            await send({"type": "http.response.body", "body": html})

        await self.app(scope, receive, send_with_headers)
