"""Data review on screen, one blueprint (``review``) in three route modules: query lists
and threads (``queries``); form and subject review, SDV progress and locks (``forms``);
electronic signatures (``sign``)."""

from ecrf.review.views import forms, queries, sign  # noqa: F401  (routes on the blueprint)
from ecrf.review.views.blueprint import bp

__all__ = ["bp"]
