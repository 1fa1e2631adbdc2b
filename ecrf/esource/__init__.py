"""eSource: laboratory results from the hospital's systems (a laboratory CSV, HL7 v2
ORU^R01 messages, FHIR R4 Observation bundles) mapped by the study's ``labs`` block to
items and units, matched to subjects, events and rows, previewed against what is entered
and stored through data capture (``parse`` and ``engine`` are pure; ``store`` reads and
writes; ``views`` is the coordinator's page, ``cli`` is ``ecrf import labs``)."""

from __future__ import annotations

from flask import Flask

from ecrf.esource.parse import FORMATS, LabFileError, Observation, Problem
from ecrf.esource.store import (
    CONFLICT,
    NEW,
    UNCHANGED,
    LabImport,
    LabImportRefused,
    Line,
    Stored,
    apply_import,
    plan_import,
)

__all__ = [
    "CONFLICT", "FORMATS", "LabFileError", "LabImport", "LabImportRefused", "Line", "NEW",
    "Observation", "Problem", "Stored", "UNCHANGED", "apply_import", "plan_import", "register",
]


def register(app: Flask) -> None:
    """The laboratory import page (blueprint ``labs``) and ``ecrf import labs``, added to
    outputs' ``import`` group (registered before)."""
    from ecrf.esource import cli, views

    app.register_blueprint(views.bp)
    cli.register(app)
