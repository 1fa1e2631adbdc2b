"""Allocation's reactions to data capture, connected by ``register``: a stratification
factor corrected after randomization is recorded against the allocation in force."""

from __future__ import annotations

from ecrf import core
from ecrf.allocation.strata import record_misstratification


def register() -> None:
    core.connect(core.form_saved, record_misstratification)
