"""Demo: load both trials from forms/ and enrol demo subjects."""

from __future__ import annotations


def ensure_studies(session, actor, config):
    """Load the demo trials; returns {oid: Study}, or None while studies are placeholders."""
    return None


def enrol_subjects(session, actor, config) -> None:
    return None
