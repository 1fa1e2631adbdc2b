"""ecrf's declared ODM 1.3.2 extension: a subject's allocation in ClinicalData.

ODM has no element for a treatment arm, strata, a randomization slot or a dose level. The
standard's way to add one is a vendor extension: elements in the vendor's own namespace,
placed where the foundation schema keeps an empty ``...ElementExtension`` group for the
purpose, and declared by a schema that redefines that group (``xs:redefine``, as
Define-XML extends ODM). ecrf adds one element, at the end of ``SubjectData``::

    <SubjectData SubjectKey="TLS-001"> ... StudyEventData ...
      <ecrf:Allocation Arm="DEX" DoseLevel="2">
        <ecrf:Randomization Number="R000004" Date="2025-03-02"
            AllocatedAt="2025-03-02T09:12:00Z" AllocatedBy="crc.toulouse"
            ListName="Production list" ListKind="production"
            Stratum="salvage=INTENSIVE|disease_status=RELAPSE" Sequence="3">
          <ecrf:Stratum Name="salvage" Value="INTENSIVE"/> ...
        </ecrf:Randomization>
      </ecrf:Allocation>
    </SubjectData>

``EXTENSION_XSD`` declares it; ``common.validate_odm`` checks files against the official
ODM 1.3.2 schema with this declaration added, so an ecrf element out of place, or with an
attribute it does not declare, is an error, and a file without it is checked exactly as
by the official schema. Systems that do not know the namespace ignore the element.
"""

from __future__ import annotations

import datetime as dt

from lxml import etree

from ecrf.allocation import RecordedAllocation

ECRF_NS = "urn:x-ecrf:odm-extension:1"
ECRF_PREFIX = "ecrf"
EXTENSION_FILE = "ecrf-odm-extension-1.xsd"

EXTENSION_XSD = f"""<?xml version="1.0" encoding="UTF-8"?>
<xs:schema xmlns:xs="http://www.w3.org/2001/XMLSchema" xmlns="{ECRF_NS}"
           targetNamespace="{ECRF_NS}" elementFormDefault="qualified"
           attributeFormDefault="unqualified">
  <xs:element name="Allocation">
    <xs:annotation><xs:documentation>A subject's treatment allocation in ecrf: the arm
      given by randomization and the dose level given by dose escalation.
    </xs:documentation></xs:annotation>
    <xs:complexType>
      <xs:sequence>
        <xs:element ref="Randomization" minOccurs="0"/>
      </xs:sequence>
      <xs:attribute name="Arm" type="xs:string"/>
      <xs:attribute name="DoseLevel" type="xs:positiveInteger"/>
    </xs:complexType>
  </xs:element>
  <xs:element name="Randomization">
    <xs:complexType>
      <xs:sequence>
        <xs:element name="Stratum" minOccurs="0" maxOccurs="unbounded">
          <xs:complexType>
            <xs:attribute name="Name" type="xs:string" use="required"/>
            <xs:attribute name="Value" type="xs:string" use="required"/>
          </xs:complexType>
        </xs:element>
      </xs:sequence>
      <xs:attribute name="Number" type="xs:string"/>
      <xs:attribute name="Date" type="xs:date" use="required"/>
      <xs:attribute name="AllocatedAt" type="xs:dateTime"/>
      <xs:attribute name="AllocatedBy" type="xs:string"/>
      <xs:attribute name="ListName" type="xs:string"/>
      <xs:attribute name="ListKind" type="xs:string"/>
      <xs:attribute name="Stratum" type="xs:string"/>
      <xs:attribute name="Sequence" type="xs:positiveInteger"/>
    </xs:complexType>
  </xs:element>
</xs:schema>
"""

# The empty foundation groups ecrf fills, and the element it places in each.
REDEFINED_GROUPS = {"SubjectDataElementExtension": "Allocation"}


def x(tag: str) -> str:
    """A tag in ecrf's extension namespace."""
    return f"{{{ECRF_NS}}}{tag}"


# What the export writes of one subject and the import reads back: the allocation area's
# record of an allocation made by another instance.
AllocationInfo = RecordedAllocation


def allocation_element(info: AllocationInfo) -> etree._Element | None:
    """``<ecrf:Allocation>``; None for a subject with neither arm nor dose level."""
    if info.arm is None and info.dose_level is None:
        return None
    nsmap = {ECRF_PREFIX: ECRF_NS}
    el = etree.Element(x("Allocation"), nsmap=nsmap)
    if info.arm is not None:
        el.set("Arm", info.arm)
    if info.dose_level is not None:
        el.set("DoseLevel", str(info.dose_level))
    if info.randomized_on is not None:
        rand = etree.SubElement(el, x("Randomization"))
        attrib = {
            "Number": info.number, "Date": info.randomized_on.isoformat(),
            "AllocatedAt": (info.allocated_at.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
                            if info.allocated_at else None),
            "AllocatedBy": info.allocated_by, "ListName": info.list_name,
            "ListKind": info.list_kind, "Stratum": info.stratum,
            "Sequence": str(info.sequence) if info.sequence is not None else None,
        }
        for name, value in attrib.items():
            if value is not None:
                rand.set(name, value)
        for name, value in sorted(info.strata.items()):
            etree.SubElement(rand, x("Stratum"), Name=name, Value=value)
    return el


class ExtensionError(ValueError):
    """An ecrf extension element whose content cannot be read."""


def read_allocation(subject_data: etree._Element) -> AllocationInfo | None:
    """The ``<ecrf:Allocation>`` of a SubjectData, None when it has none."""
    el = subject_data.find(x("Allocation"))
    if el is None:
        return None
    key = subject_data.get("SubjectKey")
    try:
        level = el.get("DoseLevel")
        rand = el.find(x("Randomization"))
        if rand is None:
            return AllocationInfo(arm=el.get("Arm"),
                                  dose_level=int(level) if level else None)
        at = rand.get("AllocatedAt")
        sequence = rand.get("Sequence")
        return AllocationInfo(
            arm=el.get("Arm"), dose_level=int(level) if level else None,
            number=rand.get("Number"), randomized_on=dt.date.fromisoformat(rand.get("Date")),
            allocated_at=dt.datetime.fromisoformat(at.replace("Z", "+00:00")) if at else None,
            allocated_by=rand.get("AllocatedBy"), list_name=rand.get("ListName"),
            list_kind=rand.get("ListKind") or "production", stratum=rand.get("Stratum"),
            sequence=int(sequence) if sequence else None,
            strata={s.get("Name"): s.get("Value") for s in rand.iterfind(x("Stratum"))})
    except (TypeError, ValueError) as exc:
        raise ExtensionError(f"subject {key}: ecrf:Allocation cannot be read ({exc})") from None


def redefining_schema(foundation_uri: str, xml_uri: str, xmldsig_uri: str) -> str:
    """The ODM 1.3.2 driver schema with ecrf's extension declared (xs:redefine)."""
    groups = "\n".join(
        f'    <xs:group name="{group}"><xs:sequence><xs:group ref="{group}"/>'
        f'<xs:element ref="{ECRF_PREFIX}:{name}"/></xs:sequence></xs:group>'
        for group, name in REDEFINED_GROUPS.items())
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<xs:schema xmlns="http://www.cdisc.org/ns/odm/v1.3" xmlns:xs="http://www.w3.org/2001/XMLSchema"
           xmlns:{ECRF_PREFIX}="{ECRF_NS}" targetNamespace="http://www.cdisc.org/ns/odm/v1.3"
           elementFormDefault="qualified" attributeFormDefault="unqualified">
  <xs:import namespace="http://www.w3.org/XML/1998/namespace" schemaLocation="{xml_uri}"/>
  <xs:import namespace="http://www.w3.org/2000/09/xmldsig#" schemaLocation="{xmldsig_uri}"/>
  <xs:import namespace="{ECRF_NS}" schemaLocation="{EXTENSION_FILE}"/>
  <xs:redefine schemaLocation="{foundation_uri}">
{groups}
  </xs:redefine>
</xs:schema>
"""
