"""Treatment allocation: concealed stratified randomization lists with concurrent-safe
slots, and 3+3 / BOIN dose escalation boards whose decisions are signed."""

from __future__ import annotations

from flask import Flask

from ecrf.allocation.decisions import DECISIONS, SignatureError, record_decision
from ecrf.allocation.escalation import (
    Board,
    EscalationServiceError,
    assign_dose_level,
    board,
    current_open_level,
)
from ecrf.allocation.escalation import board as escalation_board
from ecrf.allocation.lists import (
    KINDS,
    RandomizationServiceError,
    active_list,
    generate,
    import_csv,
)
from ecrf.allocation.lists import generate as generate_list
from ecrf.allocation.models import (
    Allocation,
    EscalationDecision,
    ListKind,
    ListSource,
    RandomizationList,
    RandomizationSlot,
)
from ecrf.allocation.randomization import (
    CLOSED_STATUSES,
    NotRandomizable,
    allocations_of,
    check_readiness,
    randomize,
    undo_randomization,
)
from ecrf.allocation.restore import (
    RecordedAllocation,
    RestoreError,
    restore_allocation,
    restore_written_items,
)
from ecrf.allocation.strata import StratumCorrectionError, correct_stratum, strata_rows

__all__ = [
    "Allocation", "Board", "CLOSED_STATUSES", "DECISIONS", "EscalationDecision",
    "EscalationServiceError", "KINDS", "ListKind", "ListSource", "NotRandomizable",
    "RandomizationList", "RandomizationServiceError", "RandomizationSlot",
    "RecordedAllocation", "RestoreError", "SignatureError", "StratumCorrectionError",
    "active_list", "allocations_of",
    "assign_dose_level", "board", "check_readiness", "correct_stratum", "current_open_level",
    "escalation_board", "generate", "generate_list", "import_csv", "randomize",
    "record_decision", "register", "restore_allocation", "restore_written_items", "strata_rows",
    "undo_randomization",
]


def register(app: Flask) -> None:
    from ecrf.allocation import handlers, reconcile
    from ecrf.allocation.cli import escalation_cli, randomization_cli
    from ecrf.allocation.views import bp

    app.register_blueprint(bp)
    app.cli.add_command(randomization_cli)
    app.cli.add_command(escalation_cli)
    handlers.register()
    reconcile.register()
