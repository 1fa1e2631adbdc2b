"""HTML -> PDF with WeasyPrint, fetching nothing but the app's own static files.

A PDF template shows text that users typed (item labels, names, reasons). Jinja's
autoescape keeps that text from becoming markup, and the URL fetcher below is the second
wall: even markup that got through could not make WeasyPrint read a local file
(``file:///etc/passwd``) or call the network (``http://...``). Only files inside the
static folder, named by path, are served.
"""

from __future__ import annotations

import mimetypes
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any
from urllib.parse import unquote, urlsplit

from ecrf.core import PROJECT_ROOT

Progress = Callable[[int, str], None]


class FetchRefused(ValueError):
    """A resource a PDF may not load; WeasyPrint logs it and leaves the resource out."""


def static_root() -> Path:
    try:
        from flask import current_app

        return Path(current_app.static_folder or PROJECT_ROOT / "static").resolve()
    except RuntimeError:  # outside an app context
        return (PROJECT_ROOT / "static").resolve()


def make_url_fetcher(root: Path | None = None) -> Any:
    """A WeasyPrint URL fetcher that serves files under ``root`` (the static folder) only."""
    from weasyprint.urls import URLFetcher, URLFetcherResponse

    allowed = (root or static_root()).resolve()

    class StaticOnlyFetcher(URLFetcher):
        def fetch(self, url: str, headers: Any = None) -> URLFetcherResponse:
            parts = urlsplit(url)
            if parts.scheme != "file" or parts.netloc not in ("", "localhost"):
                raise FetchRefused(f"refused {url!r}: a PDF may only use the app's static files")
            path = Path(unquote(parts.path)).resolve()
            if not path.is_relative_to(allowed) or not path.is_file():
                raise FetchRefused(f"refused {url!r}: not a file of the static folder")
            mime_type, _encoding = mimetypes.guess_type(path.name)
            return URLFetcherResponse(path.as_uri(), path.read_bytes(),
                                      {"Content-Type": mime_type or "application/octet-stream"})

    return StaticOnlyFetcher(allowed_protocols=("file",), allow_redirects=False)


def write_pdf(html: str, target: str | Path | IO[bytes] | None = None, *,
              progress: Progress | None = None,
              pages: dict[str, int] | None = None) -> bytes | None:
    """Lay out ``html`` and write the PDF to ``target`` (or return its bytes).

    Relative URLs in the HTML resolve inside the static folder: ``href="pdf.css"``.
    ``pages``, when given, receives the page number (from 1) of every element ``id``.
    """
    from weasyprint import HTML

    root = static_root()
    document = HTML(string=html, base_url=root.as_uri() + "/",
                    url_fetcher=make_url_fetcher(root)).render()
    if pages is not None:
        for number, page in enumerate(document.pages, start=1):
            for anchor in page.anchors:
                pages.setdefault(anchor, number)
    if progress:
        progress(85, f"writing {len(document.pages)} pages")
    if target is None:
        return document.write_pdf()
    document.write_pdf(str(target) if isinstance(target, Path) else target)
    return None
