"""Printable outputs: blank and annotated CRFs now, casebooks later (WeasyPrint)."""

from .crf import crf_pdf
from .render import FetchRefused, make_url_fetcher, write_pdf

__all__ = ["FetchRefused", "crf_pdf", "make_url_fetcher", "write_pdf"]
