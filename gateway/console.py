"""The web console: the files of gateway/static served at `/` with cache headers and a strict CSP.

Assets are read once when the app is built and served from memory under `/static/<version>/`,
where the version is a hash of their contents: they may be cached for a year, and a new release
changes every URL. The page at `/` is never cached and names the current version. Only files
found at start-up are served, so no request path ever reaches the file system.
"""

from __future__ import annotations

import hashlib
import mimetypes
from dataclasses import dataclass
from pathlib import Path

from aiohttp import web

STATIC_DIR = Path(__file__).with_name("static")
ASSETS_MARK = "{{assets}}"

CSP = "; ".join(
    (
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data: blob:",
        "connect-src 'self'",
        "manifest-src 'self'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    )
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
}
IMMUTABLE = "public, max-age=31536000, immutable"
TYPES = {".js": "text/javascript", ".mjs": "text/javascript", ".webmanifest": "application/manifest+json"}


@dataclass(frozen=True)
class Asset:
    body: bytes
    content_type: str


def load_assets(root: Path) -> tuple[str, dict[str, Asset]]:
    """Every file under `root` but the page, keyed by its relative path, and their version hash."""
    digest = hashlib.sha256()
    assets: dict[str, Asset] = {}
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        rel = path.relative_to(root).as_posix()
        if rel == "index.html" or any(part.startswith(".") for part in path.relative_to(root).parts):
            continue
        body = path.read_bytes()
        digest.update(rel.encode() + b"\0" + hashlib.sha256(body).digest())
        kind = TYPES.get(path.suffix) or mimetypes.guess_type(rel)[0] or "application/octet-stream"
        assets[rel] = Asset(body, kind)
    return digest.hexdigest()[:16], assets


def add_console(app: web.Application, root: Path = STATIC_DIR) -> None:
    """Serve the console page at `/` and its assets under `/static/<version>/`."""
    version, assets = load_assets(root)
    page = (root / "index.html").read_text(encoding="utf-8").replace(ASSETS_MARK, f"/static/{version}")
    etag = f'"{version}"'

    async def index(request: web.Request) -> web.Response:
        headers = {**SECURITY_HEADERS, "Cache-Control": "no-cache", "ETag": etag}
        if request.headers.get("If-None-Match") == etag:
            return web.Response(status=304, headers=headers)
        return web.Response(text=page, content_type="text/html", charset="utf-8", headers=headers)

    async def asset(request: web.Request) -> web.Response:
        found = assets.get(request.match_info["path"])
        if request.match_info["version"] != version or found is None:
            raise web.HTTPNotFound()
        headers = {**SECURITY_HEADERS, "Cache-Control": IMMUTABLE}
        charset = "utf-8" if found.content_type.startswith("text/") or "svg" in found.content_type else None
        response = web.Response(
            body=found.body, content_type=found.content_type, charset=charset, headers=headers
        )
        if len(found.body) > 1024:
            response.enable_compression()
        return response

    app.router.add_get("/", index)
    app.router.add_get("/static/{version}/{path:.+}", asset)
