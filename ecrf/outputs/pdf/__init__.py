"""Printable outputs: blank and annotated CRFs now, casebooks later (WeasyPrint)."""

from ecrf.outputs.pdf.crf import crf_pdf
from ecrf.outputs.pdf.render import FetchRefused, make_url_fetcher, write_pdf

__all__ = ["FetchRefused", "crf_pdf", "make_url_fetcher", "write_pdf"]
