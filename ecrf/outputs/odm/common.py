"""What every ODM 1.3.2 file ecrf writes shares: namespaces, OIDs, data types, the document
header and footer, AdminData, and validation against the official XSD.

Writers stream with ``lxml.etree.xmlfile``: ``odm_document`` opens the ``<ODM>`` root and
yields the writer, each section writes its elements one subtree at a time, and the root is
closed when the block ends. A metadata export writes ``Study`` then ``AdminData``; a
clinical-data export adds ``ClinicalData`` to the same writer after them, in the order
the schema requires (Study, AdminData, ReferenceData, ClinicalData). Where one element
is written per value (ItemData), lxml's element building is the cost: ``odm_stream`` also
hands out a raw writer, and ``xml_attr``/``xml_text`` escape text exactly as lxml
serializes it, so pre-formatted fragments give the same bytes at a fraction of the cost.
"""

from __future__ import annotations

import datetime as dt
import importlib.resources
import re
import secrets
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import IO, Any

from lxml import etree

from ecrf.core import VERSION
from ecrf.outputs.odm import extension

ODM_NS = "http://www.cdisc.org/ns/odm/v1.3"
XML_NS = "http://www.w3.org/XML/1998/namespace"
NSMAP = {None: ODM_NS}
XML_LANG = f"{{{XML_NS}}}lang"
ODM_VERSION = "1.3.2"
ORIGINATOR = "ecrf"

# Expressions ecrf writes into FormalExpression carry this context; anything else is a
# foreign language the importer does not translate.
EXPRESSION_CONTEXT = "ecrf"

# ecrf item types -> ODM DataType; choices are text with a CodeListRef.
DATA_TYPES = {
    "text": "text",
    "integer": "integer",
    "decimal": "float",
    "date": "date",
    "partial_date": "partialDate",
    "time": "time",
    "datetime": "datetime",
    "single_choice": "text",
    "multiple_choice": "text",
    "yes_no": "text",
}
RESULT_DATA_TYPES = {
    "text": "text",
    "integer": "integer",
    "decimal": "float",
    "date": "date",
    "datetime": "datetime",
    "time": "time",
    "boolean": "boolean",
}

# The meanings of 21 CFR 11.50; e-signatures will reference these SignatureDefs.
SIGNATURE_DEFS = (
    ("SD.APPROVAL", "Approval",
     "I approve the data of this casebook as accurate and complete. This electronic "
     "signature is the legally binding equivalent of my handwritten signature "
     "(21 CFR 11.50, 11.100)."),
    ("SD.REVIEW", "Review",
     "I have reviewed the data shown. This electronic signature is the legally binding "
     "equivalent of my handwritten signature (21 CFR 11.50, 11.100)."),
    ("SD.RESPONSIBILITY", "Responsibility",
     "I take responsibility for the data shown as principal investigator. This electronic "
     "signature is the legally binding equivalent of my handwritten signature "
     "(21 CFR 11.50, 11.100)."),
    ("SD.AUTHORSHIP", "Authorship",
     "I entered the data shown. This electronic signature is the legally binding "
     "equivalent of my handwritten signature (21 CFR 11.50, 11.100)."),
)


def q(tag: str) -> str:
    """A tag in the ODM namespace."""
    return f"{{{ODM_NS}}}{tag}"


def element(tag: str, attrib: Mapping[str, Any] | None = None, *children: etree._Element,
            text: str | None = None) -> etree._Element:
    """An ODM element; attributes whose value is None are left out."""
    el = etree.Element(q(tag), nsmap=NSMAP)
    for name, value in (attrib or {}).items():
        if value is not None:
            el.set(name, _attr(value))
    if text is not None:
        el.text = text
    for child in children:
        if child is not None:
            el.append(child)
    return el


def sub(parent: etree._Element, tag: str, attrib: Mapping[str, Any] | None = None,
        text: str | None = None) -> etree._Element:
    el = etree.SubElement(parent, q(tag))
    for name, value in (attrib or {}).items():
        if value is not None:
            el.set(name, _attr(value))
    if text is not None:
        el.text = text
    return el


def _attr(value: Any) -> str:
    if isinstance(value, bool):
        return "Yes" if value else "No"
    if isinstance(value, dt.datetime):
        return odm_datetime(value)
    if isinstance(value, dt.date):
        return value.isoformat()
    return str(value)


# What lxml escapes when it serializes (UTF-8 output): in an attribute value & < > " and
# the three whitespace controls; in text & < > and carriage return. A string holding
# another control character, or U+FFFE/U+FFFF, is refused as lxml refuses it.
_FORBIDDEN = "\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff"
_ATTR_SPECIAL = re.compile(f'[&<>"\n\r\t{_FORBIDDEN}]')
_TEXT_SPECIAL = re.compile(f"[&<>\r{_FORBIDDEN}]")
_ESCAPES = {"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "\n": "&#10;",
            "\r": "&#13;", "\t": "&#9;"}


def _escape(match: re.Match) -> str:
    try:
        return _ESCAPES[match.group()]
    except KeyError:
        raise ValueError("All strings must be XML compatible: Unicode or ASCII, no NULL "
                         "bytes or control characters") from None


def xml_attr(text: str) -> str:
    """``text`` as an attribute value between double quotes, escaped as lxml writes it."""
    return text if _ATTR_SPECIAL.search(text) is None else _ATTR_SPECIAL.sub(_escape, text)


def xml_text(text: str) -> str:
    """``text`` as element content, escaped as lxml writes it."""
    return text if _TEXT_SPECIAL.search(text) is None else _TEXT_SPECIAL.sub(_escape, text)


def serialized(el: etree._Element) -> str:
    """An element as ``xf.write`` writes it (its namespace declarations included)."""
    return etree.tostring(el, encoding=str)


def translated(parent: etree._Element, tag: str, texts: Iterable[tuple[str | None, str]]
               ) -> etree._Element | None:
    """``<tag><TranslatedText xml:lang=..>`` for each (language, text); None when empty."""
    texts = [(lang, text) for lang, text in texts if text]
    if not texts:
        return None
    el = sub(parent, tag)
    for lang, text in texts:
        tt = sub(el, "TranslatedText", text=text)
        if lang:
            tt.set(XML_LANG, lang)
    return el


def odm_datetime(value: dt.datetime) -> str:
    """UTC, second precision, with the Z designator: unambiguous for any reader."""
    if value.tzinfo is None:
        raise ValueError(f"naive datetime {value!r}: ODM times are written in UTC")
    return value.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def new_file_oid(study_oid: str, what: str, at: dt.datetime) -> str:
    return f"ecrf.{study_oid}.{what}.{at.astimezone(dt.UTC):%Y%m%dT%H%M%SZ}.{secrets.token_hex(4)}"


# --- OIDs ----------------------------------------------------------------------------------

def event_oid(event: str) -> str:
    return f"SE.{event}"


def form_oid(form: str) -> str:
    return f"F.{form}"


def group_oid(form: str, group: str) -> str:
    return f"IG.{form}.{group}"


def item_oid(form: str, item: str) -> str:
    return f"I.{form}.{item}"


# A multiple-choice item's answer is one boolean item per code of its list (selected "1",
# not selected "0"), the way ODM 1.3.2 readers expect "check all that apply": one ItemData
# may hold one value of a code list only. The item's own ItemDef keeps the question and the
# code list; its options are ItemDefs ``I.<FORM>.<ITEM>.<CODE>`` (ecrf OIDs have no dots)
# with the alias ``ecrf:choice_of`` naming it.
CHOICE_OF = "ecrf:choice_of"
CHOICE_SELECTED, CHOICE_NOT_SELECTED = "1", "0"


def choice_oid(form: str, item: str, code: str) -> str:
    """The boolean ItemDef of one code of a multiple-choice item."""
    return f"{item_oid(form, item)}.{code}"


def codelist_oid(codelist: str) -> str:
    """A study code list (``CL.AEGRADE``) or inline choices (``CL.DEMOG.SEX``)."""
    return f"CL.{codelist}"


def user_oid(username: str) -> str:
    return f"USR.{username}"


def location_oid(site_code: str) -> str:
    return f"LOC.{site_code}"


def mdv_oid(study_oid: str, number: int) -> str:
    return f"MDV.{study_oid}.{number}"


def unit_oids(units: Iterable[str]) -> dict[str, str]:
    """A readable, unique OID for each unit text: ``10^9/L`` -> ``MU.10_9_L``."""
    result: dict[str, str] = {}
    taken: set[str] = set()
    for unit in units:
        if unit in result:
            continue
        base = "MU." + (re.sub(r"[^A-Za-z0-9]+", "_", unit).strip("_") or "UNIT")
        oid, n = base, 2
        while oid in taken:
            oid, n = f"{base}_{n}", n + 1
        taken.add(oid)
        result[unit] = oid
    return result


# --- the document ----------------------------------------------------------------------------

@dataclass(frozen=True)
class FileInfo:
    file_oid: str
    created_at: dt.datetime
    file_type: str = "Snapshot"
    description: str | None = None
    granularity: str | None = None  # e.g. "Metadata", "AdminData", "All"
    as_of: dt.datetime | None = None
    source_system_version: str | None = None


@contextmanager
def odm_document(target: str | Path | IO[bytes], info: FileInfo, *,
                 extensions: bool = False) -> Iterator[Any]:
    """Open an ODM file, yield the incremental writer, and close the root at the end;
    ``extensions`` declares ecrf's extension namespace on the root."""
    with odm_stream(target, info, extensions=extensions) as (xf, _raw):
        yield xf


@contextmanager
def odm_stream(target: str | Path | IO[bytes], info: FileInfo, *, extensions: bool = False
               ) -> Iterator[tuple[Any, Callable[[bytes], None]]]:
    """``odm_document``'s writer, and a function writing serialized UTF-8 bytes (escaped
    with ``xml_attr``/``xml_text``) at the writer's current place inside the root."""
    if isinstance(target, str | Path):
        with open(target, "wb") as out:
            with _odm_root(out, info, extensions) as xf:
                yield xf, _raw_writer(xf, out)
        return
    with _odm_root(target, info, extensions) as xf:
        yield xf, _raw_writer(xf, target)


def _raw_writer(xf: Any, out: IO[bytes]) -> Callable[[bytes], None]:
    def write(data: bytes) -> None:
        xf.flush()  # what lxml holds in its buffer goes first
        out.write(data)
    return write


@contextmanager
def _odm_root(target: IO[bytes], info: FileInfo, extensions: bool) -> Iterator[Any]:
    attrib = {
        "FileType": info.file_type,
        "FileOID": info.file_oid,
        "CreationDateTime": odm_datetime(info.created_at),
        "ODMVersion": ODM_VERSION,
        "Originator": ORIGINATOR,
        "SourceSystem": ORIGINATOR,
        "SourceSystemVersion": info.source_system_version or VERSION,
        "Description": info.description,
        "Granularity": info.granularity,
        "AsOfDateTime": odm_datetime(info.as_of) if info.as_of else None,
    }
    with etree.xmlfile(target, encoding="utf-8") as xf:
        xf.write_declaration()
        nsmap = {**NSMAP, extension.ECRF_PREFIX: extension.ECRF_NS} if extensions else NSMAP
        with xf.element(q("ODM"), {k: v for k, v in attrib.items() if v is not None},
                        nsmap=nsmap):
            yield xf


# --- AdminData ------------------------------------------------------------------------------

@dataclass(frozen=True)
class UserInfo:
    username: str
    full_name: str
    user_type: str | None = None  # Sponsor | Investigator | Lab | Other
    site_codes: tuple[str, ...] = ()


@dataclass(frozen=True)
class SiteInfo:
    code: str
    name: str


@dataclass(frozen=True)
class AdminInfo:
    """Who and where, for AdminData: users with a role in the study and its sites."""

    users: tuple[UserInfo, ...] = ()
    sites: tuple[SiteInfo, ...] = ()
    # (MetaDataVersion OID, effective date) each Location refers to.
    versions: tuple[tuple[str, dt.date], ...] = field(default_factory=tuple)


def write_admin_data(xf: Any, study_oid: str, admin: AdminInfo) -> None:
    with xf.element(q("AdminData"), {"StudyOID": study_oid}):
        known_sites = {s.code for s in admin.sites}
        for user in admin.users:
            el = element("User", {"OID": user_oid(user.username), "UserType": user.user_type})
            sub(el, "LoginName", text=user.username)
            sub(el, "DisplayName", text=user.full_name)
            sub(el, "FullName", text=user.full_name)
            for code in user.site_codes:
                if code in known_sites:
                    sub(el, "LocationRef", {"LocationOID": location_oid(code)})
            xf.write(el)
        for site in admin.sites:
            el = element("Location", {"OID": location_oid(site.code), "Name": site.name,
                                      "LocationType": "Site"})
            for mdv, effective in admin.versions:
                sub(el, "MetaDataVersionRef", {"StudyOID": study_oid, "MetaDataVersionOID": mdv,
                                               "EffectiveDate": effective})
            xf.write(el)
        for oid, meaning, legal_reason in SIGNATURE_DEFS:
            el = element("SignatureDef", {"OID": oid, "Methodology": "Electronic"})
            sub(el, "Meaning", text=meaning)
            sub(el, "LegalReason", text=legal_reason)
            xf.write(el)


# --- reading and validating ----------------------------------------------------------------

def safe_parser() -> etree.XMLParser:
    """No DTDs, entities or network: an uploaded file cannot read local files (XXE)."""
    return etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False,
                           dtd_validation=False, huge_tree=False, remove_comments=True)


def parse(source: str | Path | bytes | IO[bytes]) -> etree._ElementTree:
    if isinstance(source, bytes):
        return etree.ElementTree(etree.fromstring(source, safe_parser()))
    if isinstance(source, Path):
        source = str(source)
    return etree.parse(source, safe_parser())


@cache
def odm_schema() -> etree.XMLSchema:
    """The official ODM 1.3.2 XSD shipped with odmlib (imports resolved next to it)."""
    folder = importlib.resources.files("odmlib").joinpath("schemas/odm/1.3.2")
    with importlib.resources.as_file(folder) as path:
        doc = etree.parse(str(Path(path) / "ODM1-3-2.xsd"))
        return etree.XMLSchema(doc)


class _ExtensionResolver(etree.Resolver):
    def resolve(self, url, pubid, context):
        if url.endswith(extension.EXTENSION_FILE):
            return self.resolve_string(extension.EXTENSION_XSD, context)
        return None


@cache
def extended_odm_schema() -> etree.XMLSchema:
    """The official ODM 1.3.2 XSD with ecrf's declared extension (``extension``): the
    foundation schema itself, unchanged, its empty extension groups redefined."""
    folder = importlib.resources.files("odmlib").joinpath("schemas/odm/1.3.2")
    with importlib.resources.as_file(folder) as path:
        path = Path(path)
        text = extension.redefining_schema((path / "ODM1-3-2-foundation.xsd").as_uri(),
                                           (path / "xml.xsd").as_uri(),
                                           (path / "xmldsig-core-schema.xsd").as_uri())
        parser = etree.XMLParser(no_network=True, resolve_entities=False)
        parser.resolvers.add(_ExtensionResolver())
        doc = etree.fromstring(text.encode(), parser,
                               base_url=(path / "ODM1-3-2-ecrf.xsd").as_uri())
        return etree.XMLSchema(etree.ElementTree(doc))


def validate_odm(source: str | Path | bytes | IO[bytes], *, official: bool = False
                 ) -> list[str]:
    """Schema errors of an ODM file, ``line N: message`` each; empty when it is valid.

    Checked against ODM 1.3.2 with ecrf's declared extension (the same as the official
    schema for a file without ecrf elements), or, with ``official``, the official schema
    alone, which refuses any element of another namespace."""
    try:
        tree = parse(source)
    except etree.XMLSyntaxError as exc:
        return [f"line {exc.lineno}: not well-formed XML: {exc.msg}"]
    schema = odm_schema() if official else extended_odm_schema()
    if schema.validate(tree):
        return []
    return [f"line {e.line}: {e.message}" for e in schema.error_log]


_REFERENCES = {
    # attribute -> element types whose OID it must name
    "StudyEventOID": ("StudyEventDef",),
    "FormOID": ("FormDef",),
    "ItemGroupOID": ("ItemGroupDef",),
    "ItemOID": ("ItemDef",),
    "CodeListOID": ("CodeList",),
    "MethodOID": ("MethodDef",),
    "CollectionExceptionConditionOID": ("ConditionDef",),
    "MeasurementUnitOID": ("MeasurementUnit",),
    "LocationOID": ("Location",),
    "UserOID": ("User",),
}


def reference_errors(source: str | Path | bytes | IO[bytes]) -> list[str]:
    """OID references that name nothing of the right kind (the XSD does not check them)."""
    tree = parse(source)
    defined: dict[str, set[str]] = {}
    for el in tree.iter():
        if isinstance(el.tag, str) and el.get("OID") is not None:
            defined.setdefault(etree.QName(el).localname, set()).add(el.get("OID"))
    errors = []
    for el in tree.iter():
        if not isinstance(el.tag, str):
            continue
        for attr, kinds in _REFERENCES.items():
            value = el.get(attr)
            if value is None or etree.QName(el).localname in kinds:
                continue
            if not any(value in defined.get(kind, ()) for kind in kinds):
                errors.append(f"line {el.sourceline}: {etree.QName(el).localname} {attr}="
                              f"{value!r} names no {' or '.join(kinds)}")
    return errors
