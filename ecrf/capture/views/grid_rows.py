"""The lines of a grid (``layout: grid``), rendered from one compiled line.

A daily log such as the UCMSC-Exo counts form holds some 40 lines of 11 cells: rendering
each cell through a Jinja macro (and translating the same few words for every cell) was
most of the time spent serving the page. The parts of a line that depend only on the form
definition and the language (the column ids, the classes and input attributes of each
item, the translated words of the line's buttons) are worked out once per (group
definition, language) and cached; each line then only fills in its own values, states and
messages. The HTML is the one templates/entry/_grid.html wrote cell by cell before (names,
ids, aria attributes, messages, show-if and saved-value data attributes);
tests/capture/test_grid_rows.py checks both give the same markup.
"""

from __future__ import annotations

import re
import threading
from collections import OrderedDict
from dataclasses import dataclass

from flask import current_app
from flask_babel import get_locale, gettext
from markupsafe import Markup, escape

from ecrf.capture.views.entry_page import FieldView, GroupView
from ecrf.crf import GroupDef

CACHE_SIZE = 128
_SPECIAL = re.compile(r"[&<>\"']")


def _esc(value) -> str:
    """``markupsafe.escape`` as text, without building a Markup for the common case of a
    value that has nothing to escape."""
    if type(value) is not str:
        if hasattr(value, "__html__"):
            return value.__html__()
        value = str(value)
    return str(escape(value)) if _SPECIAL.search(value) else value


@dataclass(frozen=True)
class Column:
    oid: str
    labelledby: str  # "col-GROUP-ITEM " (the line's header id follows)
    input_open: str  # '<input ... class="g-in g-KIND', before " is-invalid"
    input_attrs: str  # the inputmode, placeholder or maxlength, after the value


@dataclass(frozen=True)
class CompiledLine:
    group: str
    label_oid: str
    columns: tuple[Column, ...]  # the line's label first, then the columns in order
    required_note: str
    line: str
    remove: str
    why: str
    why_row: str
    reason: str
    reason_label: str


_cache: OrderedDict[tuple, tuple[GroupDef, CompiledLine]] = OrderedDict()
_cache_lock = threading.Lock()


def compiled_line(gdef: GroupDef) -> CompiledLine:
    """The compiled line of a grid group in the current language, cached per (group
    definition, language): study definitions are built once per version and process, so
    the same group definition comes back on every request."""
    key = (id(current_app._get_current_object()), id(gdef), str(get_locale()))
    with _cache_lock:
        hit = _cache.get(key)
        if hit is not None and hit[0] is gdef:
            _cache.move_to_end(key)
            return hit[1]
    line = _compile(gdef)
    with _cache_lock:
        _cache[key] = (gdef, line)
        while len(_cache) > CACHE_SIZE:
            _cache.popitem(last=False)
    return line


def _compile(gdef: GroupDef) -> CompiledLine:
    placeholders = {"date": gettext("YYYY-MM-DD"), "time": gettext("HH:MM"),
                    "datetime": gettext("YYYY-MM-DD HH:MM")}
    label_oid = gdef.row_label or gdef.items[0].oid
    ordered = [i for i in gdef.items if i.oid == label_oid][:1] + [
        i for i in gdef.items if i.oid != label_oid]
    columns = []
    for item in ordered:
        kind = item.type
        extra = ""
        if kind in ("integer", "decimal"):
            extra += f' inputmode="{"numeric" if kind == "integer" else "decimal"}"'
        if kind in placeholders:
            extra += f' placeholder="{placeholders[kind]}"'
        elif item.length:
            extra += f' maxlength="{escape(item.length)}"'
        columns.append(Column(
            oid=item.oid, labelledby=_esc(f"col-{gdef.oid}-{item.oid} "),
            input_open=f'\n<input type="text" autocomplete="off" class="g-in g-{escape(kind)}',
            input_attrs=extra))
    return CompiledLine(
        group=gdef.oid, label_oid=label_oid, columns=tuple(columns),
        required_note=gettext("Required to mark the form complete."),
        line=gettext("Line %(n)s", n="{n}"),
        remove=gettext("Remove this line"),
        why=gettext("Reason for removing"),
        why_row=gettext("Reason for removing row %(n)s", n="{n}"),
        reason=gettext("Reason for change"),
        reason_label=gettext("Reason for changing %(label)s (saved value: %(value)s)",
                             label="{label}", value="{value}"),
    )


def render_grid_rows(group: GroupView, gdef: GroupDef, grades, *, inputs: bool,
                     writable: bool) -> Markup:
    """The ``<tr>`` of every line of a grid group, as templates/entry/_grid.html shows
    them: ``inputs`` shows inputs (else values), ``writable`` adds each line's remove
    box and the reason boxes of changed saved cells."""
    compiled = compiled_line(gdef)
    out: list[str] = []
    add = out.append
    gid = _esc(group.oid)
    options: dict[str, list[tuple[object, str]]] = {}  # an item's choices, the same per line
    for row in group.rows:
        by_item = {f.item.oid: f for f in row.fields}
        number = row.row
        header = f"line-{gid}-{number}"
        new = "" if row.saved else ' class="grid-new"'
        add(f'\n    \n    \n    <tr id="row-{gid}-{number}" data-row="{number}"{new}>\n'
            f'      <th scope="row" id="{header}" class="grid-rowhead">')
        first = True
        for column in compiled.columns:
            f = by_item[column.oid]
            grade = grades.get(f.key)
            graded = grade is not None and grade.gradable and grade.grade
            st = _state(f, graded, compiled.required_note)
            if not first:
                add(f'\n      <td class="grid-has-{st}">' if st else "\n      <td>")
            _cell(add, f, column, header, st, grade if graded else None, compiled, inputs,
                  writable, options)
            add("</th>" if first else "</td>")
            first = False
        add("\n      ")
        if writable:
            _actions(add, row, gid, compiled)
        add("\n    </tr>\n  ")
    return Markup("".join(out))


def _state(f: FieldView, graded, required_note: str) -> str:
    """What a cell has to say: "error", "note" (a check or a soft range), "missing"
    (required, blank) or nothing; a CTCAE grade alone colours only its badge."""
    if f.errors:
        return "error"
    notes = f.notes
    if not notes:
        return ""
    missing = 1 if required_note in notes else 0
    if len(notes) > (1 if graded else 0) + missing:
        return "note"
    return "missing" if missing else ""


def _cell(add, f: FieldView, column: Column, header: str, st: str, grade,
          compiled: CompiledLine, inputs: bool, writable: bool, options: dict) -> None:
    errors, notes = f.errors, f.notes
    shown = f.visible or errors
    calculated = f.widget == "calculated"
    ename = _esc(f.name)
    head = f'\n<div class="grid-wrap" id="wrap-{ename}"'
    if f.show_if:
        head += f' data-show-if="{_esc(f.show_if)}"'
    if f.saved is not None and not calculated:
        head += f' data-saved="{_esc(f.saved_display)}"'
    add(head + (">" if shown else " hidden>"))
    common = f' id="{ename}" name="{ename}" aria-labelledby="{column.labelledby}{header}"'
    if errors or notes:
        if errors and notes:
            common += f' aria-describedby="{ename}-error {ename}-note"'
        elif errors:
            common += f' aria-describedby="{ename}-error"'
        else:
            common += f' aria-describedby="{ename}-note"'
        common += f' title="{_esc(" ".join(map(str, errors + notes)))}"'
        if errors:
            common += ' aria-invalid="true"'
    if f.required:
        common += ' aria-required="true"'
    if not shown:
        common += ' disabled="disabled"'
    invalid = " is-invalid" if errors else ""
    if not inputs or calculated:
        display, unit = f.display, f.unit
        if unit and display.endswith(" " + unit):
            display = display[:-(len(unit) + 1)]
        add(f'\n<output class="grid-value"{common if calculated else ""}>'
            f'{_esc(display or "—")}</output>')
    elif f.widget == "choice":
        data = f.field.data
        choices = options.get(column.oid)
        if choices is None:
            choices = options[column.oid] = [
                (c.value, f'<option value="{_esc(c.value)}"', f">{_esc(c.label)}</option>")
                for c in f.field.choices if c.value]
        shown_options = "".join(
            f'{start} selected{end}' if data == value else start + end
            for value, start, end in choices)
        add(f'\n<select class="g-in{invalid}"{common}>\n<option value=""'
            f'{"" if data else " selected"}>—</option>{shown_options}\n</select>')
    else:
        add(f'{column.input_open}{invalid}" value="{_esc(f.field._value())}"'
            f"{column.input_attrs}\n{common}>")
    if grade is not None:
        add(f'<span class="badge grid-badge grid-grade-{_esc(grade.grade)}" '
            f'aria-hidden="true">G{_esc(grade.grade)}</span>')
    elif st == "note":
        add('<span class="badge grid-badge grid-flag" aria-hidden="true">!</span>')
    if errors:
        add(f'<div id="{ename}-error" class="grid-msg text-danger">'
            f'{_esc(" ".join(map(str, errors)))}</div>')
    if notes:
        add(f'<div id="{ename}-note" class="visually-hidden">'
            f'{_esc(" ".join(map(str, notes)))}</div>')
    if writable and f.reason_open and f.saved is not None and not calculated:
        label = compiled.reason_label.replace("{label}", str(_esc(f.label))).replace(
            "{value}", str(_esc(f.saved_display)))
        add(f'\n<div class="reason-box grid-reason" id="{ename}-reasonbox">'
            f'<input class="g-reason{"" if f.reason else " is-invalid"}" type="text" '
            f'id="reason-{ename}" name="reason-{ename}" value="{_esc(f.reason)}" '
            f'maxlength="2000" autocomplete="off" placeholder="{compiled.reason}" '
            f'aria-label="{label}"></div>')
    add("\n</div>")


def _actions(add, row, gid: str, compiled: CompiledLine) -> None:
    n = row.row
    ident = f"{gid}-{n}"
    described = (f'aria-describedby="remove-{ident}-error" aria-invalid="true"'
                 if row.errors else "")
    add(f'\n      <td class="grid-actions">\n'
        f'        <details class="grid-remove"{" open" if row.remove or row.errors else ""}>\n'
        f'          <summary><span aria-hidden="true">⋯</span><span class="visually-hidden">'
        f'{compiled.line.replace("{n}", str(n))}</span></summary>\n'
        f'          <div class="form-check">\n'
        f'            <input class="form-check-input" type="checkbox" id="remove-{ident}" '
        f'name="remove-{ident}" value="1"{" checked" if row.remove else ""}\n'
        f'                   {described}>\n'
        f'            <label class="form-check-label small" for="remove-{ident}">'
        f'{compiled.remove}</label>\n'
        f'          </div>\n          ')
    if row.saved:
        add(f'\n          <input class="g-reason grid-saved-only'
            f'{" is-invalid" if row.errors else ""}" type="text" maxlength="2000" '
            f'autocomplete="off"\n'
            f'                 id="remove_reason-{ident}" name="remove_reason-{ident}" '
            f'value="{_esc(row.remove_reason)}"\n'
            f'                 placeholder="{compiled.why}" '
            f'aria-label="{compiled.why_row.replace("{n}", str(n))}">\n          ')
    add("\n          ")
    if row.errors:
        add(f'<div class="grid-msg text-danger" id="remove-{ident}-error">'
            f'{_esc(" ".join(map(str, row.errors)))}</div>')
    add("\n        </details>\n      </td>\n      ")
