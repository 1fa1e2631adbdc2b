"""Outputs for statisticians, sponsors and regulators: CDISC ODM 1.3.2 export and import
(``odm``), flat and statistical datasets with SDTM-shaped domains (``datasets``), blank
and annotated CRFs and subject casebooks as PDF (``pdf``), produced by commands, by
background jobs (``jobs``: the job kinds) and from the exports page (``views``)."""

from __future__ import annotations

from flask import Flask

from ecrf.outputs.odm.study import ExportError, export_odm_metadata, record_export

__all__ = ["ExportError", "export_odm_metadata", "record_export", "register"]


def register(app: Flask) -> None:
    from ecrf.outputs import jobs  # noqa: F401  (registers the job kinds)
    from ecrf.outputs.cli import export_cli, import_cli
    from ecrf.outputs.views import bp

    app.register_blueprint(bp)
    app.cli.add_command(export_cli)
    app.cli.add_command(import_cli)
