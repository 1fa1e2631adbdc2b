"""CDISC ODM 1.3.x metadata -> an ecrf study folder (``study.yaml``, ``codelists.yaml``,
``crfs/*.yaml``).

Maps events and their forms, item groups (repeating or not), items with their data types,
question texts in every language, units, hard and soft ranges, mandatory flags and code
lists. Files written by ecrf come back whole: their ``ecrf:`` aliases and ``ecrf``
expressions restore the schedule, conditions, calculations and edit checks. For files
from other systems (REDCap, OpenClinica 3.x, OpenEDC) the vendor extensions ecrf can use
are read (REDCap checkboxes, field notes and day offsets, OpenClinica multi-select lists
and item texts); everything else is listed in ``ImportResult.unsupported``, naming the
construct and where it was, never dropped silently. The folder always passes
``ecrf.crf.check_study``: an expression that cannot stand in ecrf is removed and listed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from lxml import etree

from ecrf.crf import SOURCE_MAP_FILE, SourceMap
from ecrf.crf.source_map import parse_source_map
from ecrf.outputs.odm.common import EXPRESSION_CONTEXT, XML_LANG, XML_NS, parse
from ecrf.outputs.odm.importer.events import EventsMixin
from ecrf.outputs.odm.importer.fit import fit_to_data
from ecrf.outputs.odm.importer.folder import repair, study_yaml_order, to_files, verify_files
from ecrf.outputs.odm.importer.items import ItemBuilder
from ecrf.outputs.odm.importer.support import (
    FolderWriteError,
    Namer,
    Notes,
    OdmImportError,
    json_alias,
    language_code,
    order_key,
    pick_oid,
    split_texts,
    to_oid,
)
from ecrf.outputs.odm.importer.vendors import REDCAP_NS
from ecrf.outputs.odm.metadata import STUDY_SETTINGS

__all__ = ["FolderWriteError", "ImportResult", "OdmImportError", "import_metadata",
           "write_folder"]



@dataclass
class ImportResult:
    study_oid: str
    folder_content: dict[str, str]  # relative path -> YAML text
    unsupported: list[str] = field(default_factory=list)
    source: str = ""
    source_map: SourceMap = field(default_factory=SourceMap)


class _Importer(EventsMixin):
    def __init__(self, tree: etree._ElementTree, study_oid: str | None,
                 data: list[etree._Element] | None = None) -> None:
        self.root = tree.getroot()
        qname = etree.QName(self.root)
        if qname.localname != "ODM":
            raise OdmImportError(f"not an ODM file: the root element is <{qname.localname}>")
        self.ns = qname.namespace
        self.prefixes = {uri: prefix for el in self.root.iter() if isinstance(el.tag, str)
                         for prefix, uri in el.nsmap.items() if prefix}
        system = self.root.get("SourceSystem") or self.root.get("Originator")
        if system is None and any(uri.startswith("http://www.openclinica.org/")
                                  for uri in self.prefixes):
            system = "OpenClinica"
        self.source = " ".join(filter(None, [system, self.root.get("SourceSystemVersion")])) \
            or "unknown system"
        self.notes = Notes()
        self.study = self._select_study(study_oid)
        self.mdv = self._select_mdv()
        self.defs: dict[str, dict[str, etree._Element]] = {}
        for el in self.mdv:
            if isinstance(el.tag, str) and el.get("OID"):
                self.defs.setdefault(etree.QName(el).localname, {})[el.get("OID")] = el
        self.units = {mu.get("OID"): self._first_text(mu, "Symbol") or mu.get("Name")
                      for mu in self.study.iter(self.t("MeasurementUnit"))}
        protocol = self.mdv.find(self.t("Protocol"))
        self.protocol = protocol if protocol is not None else etree.Element(self.t("Protocol"))
        settings = self._aliases(self.protocol).get(STUDY_SETTINGS)
        self.settings = json_alias(settings, "Protocol", self.notes)
        if not isinstance(self.settings, dict):
            self.settings = None
        self.ecrf_origin = self.settings is not None
        self.languages: set[str] = set()
        self.codelists: dict[str, list[dict[str, Any]]] = {}
        self._named_lists: dict[str, str] = {}
        self._inline_lists: set[str] = set()  # also lists consumed by the importer itself
        self.record_id = self.mdv.get(f"{{{REDCAP_NS}}}RecordIdField")
        self.list_refs: dict[str, int] = {}
        for item in self.defs.get("ItemDef", {}).values():
            ref = item.find(self.t("CodeListRef"))
            if ref is not None:
                self.list_refs[ref.get("CodeListOID")] = self.list_refs.get(
                    ref.get("CodeListOID"), 0) + 1
        self.list_namer = Namer()
        self.used_conditions: set[str] = set()
        self.used_methods: set[str] = set()
        self.group_namer = Namer()
        self.form_oids: dict[str, str] = {}
        self.group_names: dict[tuple[str, str], str] = {}
        self.forms: dict[str, dict[str, Any]] = {}
        self.form_namer = Namer()
        # The source map: source OID -> ecrf OID (see ecrf.crf.source_map).
        self.event_map: dict[str, str] = {}
        self.implied_event: str | None = None
        self.form_map: dict[str, dict[str, Any]] = {}
        self.choice_entries: dict[str, list[dict[str, Any]]] = {}  # source item -> its codes
        self.widened: dict[str, list[str]] = {}  # source item -> codes added from the data
        # ClinicalData of the source system, to fit code lists, ranges and conditions to.
        self.data_roots = [self.root, *(data or [])]

    # --- XML access ------------------------------------------------------------------------

    def t(self, tag: str) -> str:
        return f"{{{self.ns}}}{tag}" if self.ns else tag

    def _children(self, el: etree._Element, tag: str) -> list[etree._Element]:
        return el.findall(self.t(tag))

    def _texts(self, el: etree._Element, tag: str) -> list[tuple[str, str]]:
        node = el.find(self.t(tag))
        if node is None:
            return []
        pairs = []
        for tt in node.findall(self.t("TranslatedText")):
            text = " ".join((tt.text or "").split())
            lang = language_code(tt.get(XML_LANG))
            if not text:
                continue
            if lang is None:
                self.notes.group("TranslatedText with an unusable xml:lang not imported",
                                 f"{tag} {tt.get(XML_LANG)!r}")
                continue
            pairs.append((lang, text))
        return pairs

    def _label(self, el: etree._Element, tag: str) -> tuple[str | None, dict[str, str]]:
        label, labels = split_texts(self._texts(el, tag))
        self.languages.update(labels)
        return label, labels

    def _first_text(self, el: etree._Element, tag: str) -> str | None:
        return split_texts(self._texts(el, tag))[0]

    def _aliases(self, el: etree._Element) -> dict[str, str]:
        return {a.get("Context"): a.get("Name") for a in self._children(el, "Alias")}

    def _other_aliases(self, el: etree._Element, where: str, used: set[str]) -> None:
        for context in self._aliases(el):
            if context not in used and not context.startswith("ecrf:"):
                self.notes.group(f"Alias Context {context!r} not imported", where)

    def _vendor(self, el: etree._Element, name: str) -> str | None:
        value = el.get(f"{{{REDCAP_NS}}}{name}")
        return value.strip() if value else None

    def _extensions(self, el: etree._Element, where: str, handled: frozenset[str] = frozenset()
                    ) -> None:
        """List vendor attributes and elements ecrf has no place for."""
        for name in el.attrib:
            qn = etree.QName(name)
            if qn.namespace and qn.namespace not in (self.ns, XML_NS) \
                    and "XMLSchema-instance" not in qn.namespace and qn.localname not in handled:
                self.notes.group(f"vendor extension {self._prefixed(qn)} not imported", where)
        for child in el:
            if not isinstance(child.tag, str):
                continue
            qn = etree.QName(child)
            if qn.namespace != self.ns and qn.localname not in handled:
                self.notes.group(f"vendor extension {self._prefixed(qn)} not imported", where)

    def _prefixed(self, qn: etree.QName) -> str:
        return f"{self.prefixes.get(qn.namespace, qn.namespace)}:{qn.localname}"

    def _expression(self, kind: str, oid: str | None, where: str) -> str | None:
        """The ecrf expression of a ConditionDef/MethodDef, or None (listed) if foreign."""
        if not oid:
            return None
        el = self.defs.get(kind, {}).get(oid)
        if el is None:
            self.notes.add(where, f"refers to {kind} {oid}, which the file does not define")
            return None
        (self.used_conditions if kind == "ConditionDef" else self.used_methods).add(oid)
        for fe in self._children(el, "FormalExpression"):
            if fe.get("Context") == EXPRESSION_CONTEXT and (fe.text or "").strip():
                return fe.text.strip()
        contexts = ", ".join(repr(fe.get("Context")) for fe in
                             self._children(el, "FormalExpression")) or "no"
        self.notes.add(f"{kind} {oid}", f"Context {contexts} formal expression not translated "
                                        f"(used by {where})")
        return None

    # --- selection ------------------------------------------------------------------------

    def _select_study(self, wanted: str | None) -> etree._Element:
        studies = self._children(self.root, "Study")
        if not studies:
            raise OdmImportError("the file holds no Study element (no metadata to import)")
        if wanted:
            for study in studies:
                if wanted in (study.get("OID"), to_oid(study.get("OID") or "", ["S.", "S_"])):
                    return study
            raise OdmImportError(f"no study {wanted!r} in the file (it holds: "
                                 f"{', '.join(s.get('OID') for s in studies)})")
        if len(studies) > 1:
            raise OdmImportError(f"the file holds several studies "
                                 f"({', '.join(s.get('OID') for s in studies)}): choose one")
        return studies[0]

    def _select_mdv(self) -> etree._Element:
        versions = self._children(self.study, "MetaDataVersion")
        if not versions:
            raise OdmImportError(f"study {self.study.get('OID')} has no MetaDataVersion")
        chosen = versions[-1]
        for other in versions[:-1]:
            self.notes.add(f"MetaDataVersion {other.get('OID')}",
                           f"not imported: only the last version ({chosen.get('OID')}) is")
        if chosen.find(self.t("Include")) is not None:
            self.notes.add(f"MetaDataVersion {chosen.get('OID')}",
                           "Include of another version not followed: import that file too")
        return chosen

    # --- study ----------------------------------------------------------------------------

    def run(self) -> dict[str, Any]:
        events = self._events()
        crfs = {oid: crf for oid, crf in self.forms.items()
                if any(oid in e["forms"] for e in events)}
        study = self._study_yaml(events)
        if not self.ecrf_origin:
            self._widen_codelists()
        self._unused_codelists()
        self._unused_definitions()
        self._extensions(self.root, "ODM", frozenset({"schemaLocation"}))
        self._extensions(self.study, f"Study {self.study.get('OID')}")
        self._extensions(self.mdv, f"MetaDataVersion {self.mdv.get('OID')}",
                         frozenset({"MultiSelectList", "RecordIdField"}))
        gv = self.study.find(self.t("GlobalVariables"))
        settings = [self._prefixed(etree.QName(el)) for el in (gv if gv is not None else [])
                    if isinstance(el.tag, str) and etree.QName(el).namespace != self.ns
                    and etree.QName(el).localname != "RepeatingInstrumentsAndEvents"]
        if settings:
            self.notes.add("GlobalVariables", f"vendor settings not imported: {', '.join(settings)}")
        for tag, why in (("AdminData", "users and locations are managed in ecrf, not imported"),
                         ("ReferenceData", "reference data not imported"),
                         ("ClinicalData", "clinical data not imported (metadata only)")):
            if self.root.find(self.t(tag)) is not None:
                self.notes.add(tag, why)
        content: dict[str, Any] = {"study": study, "codelists": self.codelists, "crfs": crfs}
        if not self.ecrf_origin:
            content["source_map"] = self._source_map(study["study"]["oid"], crfs)
        return content

    def _source_map(self, study_oid: str, crfs: dict[str, Any]) -> dict[str, Any]:
        """Every source OID and the ecrf OID it became (only forms that were imported)."""
        studies = {self.study.get("OID") or study_oid: study_oid}
        for other in self._children(self.root, "Study"):
            # OpenClinica writes each site as a study including the parent's metadata, and
            # the site's data under the site's StudyOID.
            for mdv in self._children(other, "MetaDataVersion"):
                if any(inc.get("StudyOID") == self.study.get("OID")
                       for inc in self._children(mdv, "Include")):
                    studies[other.get("OID")] = study_oid
        body: dict[str, Any] = {"system": self.source, "study": studies}
        if self.implied_event:
            body["implied_event"] = self.implied_event
        if self.event_map:
            body["events"] = dict(self.event_map)
        forms = {raw: entry for raw, entry in self.form_map.items() if entry["oid"] in crfs}
        if forms:
            body["forms"] = forms
        return body

    def _widen_codelists(self) -> None:
        """A code list that does not hold the values of its own ClinicalData (OpenEDC writes
        what it shows, REDCap keeps codes of deleted choices) takes the missing values as
        codes labelled with themselves, listed in the notes, rather than refusing them."""
        items = (d for root in self.data_roots for d in root.iter(self.t("ItemData")))
        for data in items:
            oid, value = data.get("ItemOID"), (data.get("Value") or "").strip()
            entries = self.choice_entries.get(oid or "")
            if entries is None or not value:
                continue
            codes = {e["code"] for e in entries}
            for code in value.split(",") if self._is_multi(oid) else [value]:
                code = code.strip()
                if code and code not in codes:
                    entries.append({"code": code, "label": code})
                    codes.add(code)
                    self.widened.setdefault(oid, []).append(code)
        for oid, added in self.widened.items():
            self.notes.add(f"ItemDef {oid}", "codes found in the file's ClinicalData but not "
                                             f"in its code list were added: {', '.join(added)}")

    def _is_multi(self, source_item: str | None) -> bool:
        for form in self.form_map.values():
            for group in form["groups"].values():
                target = group["items"].get(source_item)
                if target is not None:
                    item = target if isinstance(target, str) else target.get("item")
                    crf = self.forms.get(form["oid"], {})
                    return any(i["oid"] == item and i.get("type") == "multiple_choice"
                               for g in crf.get("groups", []) for i in g["items"])
        return False

    def _study_yaml(self, events: list[dict[str, Any]]) -> dict[str, Any]:
        if self.settings is not None:
            study = dict(self.settings)
            study["events"] = events
        else:
            gv = self.study.find(self.t("GlobalVariables"))
            name = (gv.findtext(self.t("StudyName")) or "").strip() if gv is not None else ""
            description = (gv.findtext(self.t("StudyDescription")) or "").strip() \
                if gv is not None else ""
            protocol = (gv.findtext(self.t("ProtocolName")) or "").strip() if gv is not None else ""
            identity: dict[str, Any] = {
                "oid": pick_oid(self.study.get("OID") or "STUDY", name,
                                ["S.", "S_", "Project.", "Study."]),
                "name": name or self.study.get("OID"),
            }
            title, title_labels = self._label(self.protocol, "Description")
            if title:
                identity["title"] = title
                if title_labels:
                    identity["title_labels"] = title_labels
            if protocol and protocol != name:
                identity["protocol_id"] = protocol
            if description and description not in (name, title):
                identity["description"] = description
            study = {"format": 1, "study": identity, "events": events}
        languages = list(dict.fromkeys(["en", *study.get("languages", []),
                                        *sorted(self.languages - {"en"})]))
        if languages != ["en"]:
            study["languages"] = languages
        return study_yaml_order(study)

    def _unused_codelists(self) -> None:
        """ecrf declares lists no item uses (kept); a foreign file's leftovers are listed."""
        for oid, el in self.defs.get("CodeList", {}).items():
            if oid in self._named_lists or oid in self._inline_lists:
                continue
            if self.ecrf_origin and oid.count(".") == 1:
                self.named_list(oid, el)
            elif self.ecrf_origin is False:
                self.notes.add(f"CodeList {oid}", "used by nothing ecrf imported")

    def _unused_definitions(self) -> None:
        for oid in self.defs.get("ConditionDef", {}):
            if oid not in self.used_conditions:
                self.notes.add(f"ConditionDef {oid}", "used by nothing ecrf imported")
        for oid, el in self.defs.get("MethodDef", {}).items():
            if oid not in self.used_methods:
                self.notes.add(f"MethodDef {oid}", "used by nothing ecrf imported"
                               if not any(fe.get("Context") == EXPRESSION_CONTEXT
                                          for fe in self._children(el, "FormalExpression"))
                               else "edit check of a form that was not imported")
        for tag in ("ImputationMethod", "Presentation"):
            for oid in self.defs.get(tag, {}):
                self.notes.add(f"{tag} {oid}", "not supported")


    # --- forms and groups -----------------------------------------------------------------

    def _form_for(self, raw_oid: str | None, where: str) -> str | None:
        if raw_oid in self.form_oids:
            return self.form_oids[raw_oid]
        el = self.defs.get("FormDef", {}).get(raw_oid)
        if el is None:
            self.notes.add(where, f"FormRef {raw_oid} names no FormDef")
            return None
        crf = ItemBuilder(self).form(el, self.form_namer.claim(
            pick_oid(raw_oid, el.get("Name"), ["F.", "F_", "Form."])))
        if crf is None:
            self.form_oids[raw_oid] = None  # type: ignore[assignment]
            return None
        self.form_oids[raw_oid] = crf["oid"]
        self.forms[crf["oid"]] = crf
        return crf["oid"]

    # --- code lists -------------------------------------------------------------------------

    def consume_list(self, oid: str | None) -> None:
        """A list read another way (REDCap checkbox choices, form status codes)."""
        if oid:
            self._inline_lists.add(oid)

    def codelist_entries(self, el: etree._Element) -> list[dict[str, Any]] | None:
        where = f"CodeList {el.get('OID')}"
        self._inline_lists.add(el.get("OID"))
        if el.find(self.t("ExternalCodeList")) is not None:
            self.notes.add(where, "external code list (dictionary) not supported: items "
                                  "imported as text")
            return None
        entries, seen = [], set()
        items = self._children(el, "CodeListItem") + self._children(el, "EnumeratedItem")
        items.sort(key=order_key)
        for item in items:
            code = (item.get("CodedValue") or "").strip()
            if not code or code in seen:
                self.notes.add(where, f"empty or repeated code {code!r} not imported")
                continue
            seen.add(code)
            label, labels = self._label(item, "Decode")
            entry: dict[str, Any] = {"code": code, "label": label or code}
            if labels:
                entry["labels"] = labels
            entries.append(entry)
            self._other_aliases(item, f"{where} item {code}", set())
        self._other_aliases(el, where, set())
        self._extensions(el, where, frozenset({"Variable", "CheckboxChoices"}))
        return entries or None

    def named_list(self, raw_oid: str, el: etree._Element) -> str | None:
        """The OID of a code list shared by several items (declared in codelists.yaml)."""
        if raw_oid in self._named_lists:
            return self._named_lists[raw_oid]
        entries = self.codelist_entries(el)
        if entries is None:
            return None
        wanted = pick_oid(raw_oid, el.get("Name"), ["CL.", "CL_"], prefer_name=True)
        is_ny = [e["code"] for e in entries] == ["Y", "N"]
        if wanted == "NY" and not is_ny:
            wanted = "NY_LIST"
        oid = "NY" if (wanted == "NY" and is_ny) else self.list_namer.claim(
            wanted if wanted != "NY" else "NY_LIST")
        self.codelists[oid] = entries
        self._named_lists[raw_oid] = oid
        return oid


def import_metadata(odm_file: str | Path | bytes | IO[bytes], *, study_oid: str | None = None,
                    data: str | Path | bytes | IO[bytes] | None = None) -> ImportResult:
    """Read ODM metadata and return the ecrf study folder it becomes (nothing is written).

    ``data`` is a file of ClinicalData written by the same system (when the metadata file
    holds none): code lists, ranges and conditions are fitted to the data, each change
    listed, so that the data can be imported afterwards."""
    try:
        tree = parse(odm_file)
        data_tree = parse(data) if data is not None else None
    except (etree.XMLSyntaxError, OSError) as exc:
        raise OdmImportError(f"cannot read the file as XML: {exc}") from None
    importer = _Importer(tree, study_oid,
                         [data_tree.getroot()] if data_tree is not None else None)
    content = importer.run()
    content = repair(content, importer.notes)
    if not importer.ecrf_origin:
        fit_to_data(content, [r for r in importer.data_roots
                              if r.find(importer.t("ClinicalData")) is not None], importer.notes)
    notes = importer.notes.render()
    header = [f"Imported from CDISC ODM ({importer.source}, study {importer.study.get('OID')}, "
              f"MetaDataVersion {importer.mdv.get('OID')})."]
    if notes:
        header.append("Not imported (see `ecrf import odm-metadata` output):")
        header += [f"- {note}" for note in notes]
    files = to_files(content, header)
    verify_files(files)
    smap = parse_source_map({"source_map": content["source_map"]})[0] \
        if "source_map" in content else SourceMap()
    return ImportResult(content["study"]["study"]["oid"], files, notes, importer.source, smap)


def write_folder(result: ImportResult, target: str | Path, *, force: bool = False) -> Path:
    """Write the imported files; refuses an existing folder unless ``force``."""
    folder = Path(target)
    if folder.exists() and not force:
        raise FolderWriteError(f"{folder} already exists: choose another folder or use --force")
    if folder.exists() and not folder.is_dir():
        raise FolderWriteError(f"{folder} exists and is not a folder")
    (folder / "crfs").mkdir(parents=True, exist_ok=True)
    if force:
        for old in (folder / "crfs").glob("*.yaml"):
            if f"crfs/{old.name}" not in result.folder_content:
                old.unlink()
    for relative, text in result.folder_content.items():
        (folder / relative).write_text(text, encoding="utf-8")
    for optional in ("codelists.yaml", SOURCE_MAP_FILE):
        if optional not in result.folder_content and (folder / optional).exists():
            (folder / optional).unlink()
    return folder
