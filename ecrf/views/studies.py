"""Studies, subjects, the subject matrix and the subject page."""

from __future__ import annotations

from flask import Blueprint

bp = Blueprint("studies", __name__)
