"""Demo: realistic entered data, drafts, completed forms and corrections with reasons."""

from __future__ import annotations


def enter_data(session, actor, config) -> None:
    return None
