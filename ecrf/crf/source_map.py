"""The source map of an imported study (``source_map.yaml``): which OID of the system the
study came from (REDCap, OpenClinica, OpenEDC, another ecrf...) became which ecrf OID.

Written by ``ecrf import odm-metadata`` and kept with the study definition, so that data
exported by that system can be imported later (``ecrf import odm``). The file::

    source_map:
      system: REDCap 11.2.3                   # what wrote the metadata (free text)
      study: {Project.Demo: DEMO}             # the source study OID -> the ecrf study OID
      implied_event: MAIN                     # forms of a subject outside any event go here
      events: {baseline_arm_1: BASELINE_ARM_1}
      forms:
        Form.demographics:                    # source FormOID
          oid: DEMOGRAPHICS
          groups:
            demographics.race:                # source ItemGroupOID
              oid: RACE_GROUP                 # absent when every item is skipped
              items:                          # source ItemOID -> ecrf item, or a mapping:
                age: AGE
                race___1: {item: RACE, choice: "1"}     # checkbox: 1 selects the code
                pregnant: {item: PREGNANT, codes: {"1": Y, "0": N}}   # coded values renamed
                record_id: {skip: the record ID is the subject key}  # skipped on purpose

A study without a source map reads ecrf's own OIDs (``SE.X``, ``F.X``, ``IG.F.G``,
``I.F.I``, or the bare OIDs).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from .problems import Problem

SOURCE_MAP_FILE = "source_map.yaml"


@dataclass(frozen=True)
class ItemTarget:
    """Where the values of one source ItemOID go, or why they are skipped."""

    item: str | None = None
    choice: str | None = None  # a checkbox: "1"/"true" selects this code of ``item``
    codes: Mapping[str, str] = field(default_factory=dict)
    skip: str | None = None


@dataclass(frozen=True)
class GroupTarget:
    oid: str | None
    items: Mapping[str, ItemTarget]


@dataclass(frozen=True)
class FormTarget:
    oid: str
    groups: Mapping[str, GroupTarget]


_CHECKED = frozenset({"1", "true", "Y", "yes"})


@dataclass(frozen=True)
class SourceMap:
    system: str | None = None
    study: Mapping[str, str] = field(default_factory=dict)
    implied_event: str | None = None
    events: Mapping[str, str] = field(default_factory=dict)
    forms: Mapping[str, FormTarget] = field(default_factory=dict)

    @property
    def empty(self) -> bool:
        return not (self.study or self.events or self.forms or self.implied_event)

    # --- translation (source OID -> ecrf OID) ---------------------------------------------

    def translate_study(self, source_oid: str | None) -> str | None:
        return self.study.get(source_oid or "")

    def translate_event(self, source_oid: str | None) -> str:
        if source_oid is None:
            return self.implied_event or ""
        return self.events.get(source_oid) or _strip(source_oid, "SE.")

    def translate_form(self, source_oid: str | None) -> str:
        target = self.forms.get(source_oid or "")
        return target.oid if target else _strip(source_oid, "F.")

    def translate_group(self, source_form: str | None, source_group: str | None) -> str:
        target = self._group(source_form, source_group)
        if target is not None and target.oid:
            return target.oid
        form = self.translate_form(source_form)
        return _strip(source_group, f"IG.{form}.")

    def translate_item(self, source_form: str | None, source_group: str | None,
                       source_item: str | None) -> ItemTarget:
        return self.locate_item(source_form, source_group, source_item)[1]

    def locate_item(self, source_form: str | None, source_group: str | None,
                    source_item: str | None) -> tuple[str, ItemTarget]:
        """The ecrf group and item of a source ItemData. A file may give an item in another
        ItemGroupData of the form than its metadata declares (REDCap does, for checkbox
        fields): the item is then found in the form's other groups."""
        group = self._group(source_form, source_group)
        if group is None or source_item not in group.items:
            form = self.forms.get(source_form or "")
            found = [g for g in form.groups.values() if source_item in g.items] if form else []
            group = found[0] if len(found) == 1 else group
        if group is not None and source_item in group.items:
            return (group.oid or self.translate_group(source_form, source_group),
                    group.items[source_item or ""])
        form_oid = self.translate_form(source_form)
        return (self.translate_group(source_form, source_group),
                ItemTarget(_strip(source_item, f"I.{form_oid}.")))

    def translate_code(self, target: ItemTarget, value: str | None) -> str | None:
        """The ecrf code of a source value (unchanged when the map renames nothing)."""
        if value is None:
            return None
        return target.codes.get(value, value)

    def is_checked(self, value: str | None) -> bool:
        return (value or "").strip() in _CHECKED

    def _group(self, source_form: str | None, source_group: str | None) -> GroupTarget | None:
        form = self.forms.get(source_form or "")
        return form.groups.get(source_group or "") if form else None

    # --- the map as lines and as data ----------------------------------------------------

    def lines(self) -> list[str]:
        """Every mapping, one per line: ``form Form.demographics -> DEMOGRAPHICS``."""
        out = [f"study {s} -> {t}" for s, t in self.study.items()]
        if self.implied_event:
            out.append(f"event (none in the source) -> {self.implied_event}")
        out += [f"event {s} -> {t}" for s, t in self.events.items()]
        for fs, form in self.forms.items():
            out.append(f"form {fs} -> {form.oid}")
            for gs, group in form.groups.items():
                out.append(f"  group {gs} -> {group.oid}" if group.oid
                           else f"  group {gs} (no item imported)")
                for its, item in group.items.items():
                    if item.skip:
                        out.append(f"    item {its} skipped: {item.skip}")
                        continue
                    text = f"    item {its} -> {item.item}"
                    if item.choice is not None:
                        text += f" (checkbox: selects code {item.choice})"
                    if item.codes:
                        text += " (codes " + ", ".join(f"{a} -> {b}" for a, b in
                                                       item.codes.items()) + ")"
                    out.append(text)
        return out

    def counts(self) -> dict[str, int]:
        groups = [g for f in self.forms.values() for g in f.groups.values()]
        items = [i for g in groups for i in g.items.values()]
        return {"events": len(self.events) + (1 if self.implied_event else 0),
                "forms": len(self.forms), "groups": sum(1 for g in groups if g.oid),
                "items": sum(1 for i in items if not i.skip),
                "skipped": sum(1 for i in items if i.skip),
                "codes": sum(len(i.codes) for i in items)}


def _strip(oid: str | None, prefix: str) -> str:
    oid = oid or ""
    return oid[len(prefix):] if oid.startswith(prefix) else oid


def _mapping(data: Any, path: str, problems: list[Problem]) -> dict[str, Any]:
    if data is None:
        return {}
    if not isinstance(data, dict):
        problems.append(Problem(SOURCE_MAP_FILE, None, path, "must be a mapping"))
        return {}
    bad = [k for k, v in data.items() if not isinstance(k, str)]
    if bad:
        problems.append(Problem(SOURCE_MAP_FILE, None, path, f"keys must be text: {bad[0]!r}"))
    return {k: v for k, v in data.items() if isinstance(k, str)}


def _text_map(data: Any, path: str, problems: list[Problem]) -> dict[str, str]:
    result = {}
    for key, value in _mapping(data, path, problems).items():
        if not isinstance(value, str) or not value:
            problems.append(Problem(SOURCE_MAP_FILE, None, f"{path}.{key}",
                                    "must be an ecrf OID (text)"))
        else:
            result[key] = value
    return result


def _item(data: Any, path: str, problems: list[Problem]) -> ItemTarget | None:
    if isinstance(data, str) and data:
        return ItemTarget(data)
    if not isinstance(data, dict):
        problems.append(Problem(SOURCE_MAP_FILE, None, path,
                                "must be an item OID or a mapping with item or skip"))
        return None
    unknown = set(data) - {"item", "choice", "codes", "skip"}
    if unknown:
        problems.append(Problem(SOURCE_MAP_FILE, None, path,
                                f"unknown key {sorted(unknown)[0]!r}"))
        return None
    if data.get("skip") is not None:
        if not isinstance(data["skip"], str) or len(data) != 1:
            problems.append(Problem(SOURCE_MAP_FILE, None, path,
                                    "skip takes a reason (text) and nothing else"))
            return None
        return ItemTarget(skip=data["skip"])
    item, choice = data.get("item"), data.get("choice")
    if not isinstance(item, str) or not item:
        problems.append(Problem(SOURCE_MAP_FILE, None, path, "item must be an ecrf item OID"))
        return None
    if choice is not None and not isinstance(choice, str):
        problems.append(Problem(SOURCE_MAP_FILE, None, f"{path}.choice", "must be a code (text)"))
        return None
    codes = _text_map(data.get("codes"), f"{path}.codes", problems)
    return ItemTarget(item, choice, codes)


def parse_source_map(data: Any) -> tuple[SourceMap, list[Problem]]:
    """The map of a ``source_map.yaml`` document; problems name what is malformed."""
    problems: list[Problem] = []
    top = _mapping(data, "", problems)
    unknown = set(top) - {"source_map"}
    if unknown or "source_map" not in top:
        problems.append(Problem(SOURCE_MAP_FILE, None, "", "must hold one key, source_map"))
        return SourceMap(), problems
    body = _mapping(top["source_map"], "source_map", problems)
    unknown = set(body) - {"system", "study", "implied_event", "events", "forms"}
    if unknown:
        problems.append(Problem(SOURCE_MAP_FILE, None, "source_map",
                                f"unknown key {sorted(unknown)[0]!r}"))
    system, implied = body.get("system"), body.get("implied_event")
    for key, value in (("system", system), ("implied_event", implied)):
        if value is not None and not isinstance(value, str):
            problems.append(Problem(SOURCE_MAP_FILE, None, f"source_map.{key}", "must be text"))
    forms = {}
    for fs, fdata in _mapping(body.get("forms"), "source_map.forms", problems).items():
        path = f"source_map.forms.{fs}"
        fmap = _mapping(fdata, path, problems)
        if not isinstance(fmap.get("oid"), str):
            problems.append(Problem(SOURCE_MAP_FILE, None, path, "oid (the ecrf form) is required"))
            continue
        groups = {}
        for gs, gdata in _mapping(fmap.get("groups"), f"{path}.groups", problems).items():
            gpath = f"{path}.groups.{gs}"
            gmap = _mapping(gdata, gpath, problems)
            items = {}
            for its, idata in _mapping(gmap.get("items"), f"{gpath}.items", problems).items():
                target = _item(idata, f"{gpath}.items.{its}", problems)
                if target is not None:
                    items[its] = target
            oid = gmap.get("oid")
            if oid is not None and not isinstance(oid, str):
                problems.append(Problem(SOURCE_MAP_FILE, None, f"{gpath}.oid", "must be text"))
                oid = None
            groups[gs] = GroupTarget(oid, items)
        forms[fs] = FormTarget(fmap["oid"], groups)
    result = SourceMap(
        system if isinstance(system, str) else None,
        _text_map(body.get("study"), "source_map.study", problems),
        implied if isinstance(implied, str) else None,
        _text_map(body.get("events"), "source_map.events", problems), forms)
    return result, problems


def check_source_map(smap: SourceMap, definition: Any) -> list[Problem]:
    """Every target must exist in the study: events, forms, groups, items, codes."""
    problems: list[Problem] = []

    def bad(path: str, message: str) -> None:
        problems.append(Problem(SOURCE_MAP_FILE, None, path, message))

    for source, oid in smap.study.items():
        if oid != definition.oid:
            bad(f"source_map.study.{source}", f"{oid} is not this study ({definition.oid})")
    events = {rule.oid for rule in definition.schedule.events}
    if smap.implied_event and smap.implied_event not in events:
        bad("source_map.implied_event", f"no event {smap.implied_event} in study.yaml")
    for source, oid in smap.events.items():
        if oid not in events:
            bad(f"source_map.events.{source}", f"no event {oid} in study.yaml")
    for fs, form in smap.forms.items():
        path = f"source_map.forms.{fs}"
        fdef = definition.forms.get(form.oid)
        if fdef is None:
            bad(path, f"no form {form.oid} in crfs/")
            continue
        gdefs = {g.oid: g for g in fdef.groups}
        for gs, group in form.groups.items():
            gpath = f"{path}.groups.{gs}"
            gdef = gdefs.get(group.oid) if group.oid else None
            if group.oid and gdef is None:
                bad(gpath, f"no group {group.oid} in form {form.oid}")
                continue
            for its, target in group.items.items():
                if target.skip:
                    continue
                ipath = f"{gpath}.items.{its}"
                idef = next((i for i in gdef.items if i.oid == target.item), None) \
                    if gdef else None
                if idef is None:
                    bad(ipath, f"no item {target.item} in "
                               f"{'group ' + group.oid if group.oid else 'a mapped group'} "
                               f"of form {form.oid}")
                    continue
                allowed = definition.choices_of(form.oid, idef.oid)
                codes = set(allowed.codes) if allowed else set()
                if target.choice is not None and (idef.type != "multiple_choice"
                                                  or target.choice not in codes):
                    bad(ipath, f"choice {target.choice!r} is not a code of the "
                               f"multiple-choice item {idef.oid}")
                for source, code in target.codes.items():
                    if code not in codes:
                        bad(f"{ipath}.codes.{source}", f"{code!r} is not a code of {idef.oid}")
    return problems
