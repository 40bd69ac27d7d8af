"""Alliance business rules that FHIRPath cannot express: national identifier check characters.

- An Organization identifier in the unified social credit code system (GB 32100-2015) must
  carry a valid check character.
- A Patient identifier in the resident ID system (GB 11643-1999) must carry a valid check
  character, hold a real birth date, and agree with ``Patient.birthDate`` when both exist.

Each issue names the element and says what is wrong in English and Chinese.
"""

from __future__ import annotations

from fhir_server.outcome import Issue
from fhir_server.types import Resource
from fhir_server.validation.identifiers import (
    id_card_birth_date,
    id_card_valid,
    uscc_valid,
)

USCC_SYSTEM = "http://alliance-fhir.org/fhir/sid/uscc"
ID_CARD_SYSTEM = "urn:oid:2.16.156.10011.1.3"


def _identifiers(resource: Resource, system: str) -> list[tuple[int, str]]:
    return [(index, identifier["value"])
            for index, identifier in enumerate(resource.get("identifier") or [])
            if isinstance(identifier, dict) and identifier.get("system") == system
            and isinstance(identifier.get("value"), str)]


def business_rules(resource: Resource) -> list[Issue]:
    """Issues (errors) of the alliance identifier rules; empty when all hold."""
    rtype = resource.get("resourceType")
    issues: list[Issue] = []
    if rtype == "Organization":
        for index, value in _identifiers(resource, USCC_SYSTEM):
            if not uscc_valid(value):
                issues.append(Issue(
                    "business-rule",
                    f"{value!r} is not a valid unified social credit code (GB 32100-2015 "
                    f"check character) / 统一社会信用代码校验位错误",
                    f"Organization.identifier[{index}].value"))
    elif rtype == "Patient":
        for index, value in _identifiers(resource, ID_CARD_SYSTEM):
            where = f"Patient.identifier[{index}].value"
            if not id_card_valid(value):
                issues.append(Issue(
                    "business-rule",
                    f"{value!r} is not a valid resident ID number (GB 11643-1999 check "
                    f"character) / 居民身份证号码校验位错误", where))
                continue
            born = id_card_birth_date(value)
            if born is None:
                issues.append(Issue("business-rule", f"{value!r} holds no real birth date / "
                                    "身份证号码中的出生日期无效", where))
            elif isinstance(resource.get("birthDate"), str) and len(
                    resource["birthDate"]) == 10 and resource["birthDate"] != born.isoformat():
                issues.append(Issue(
                    "business-rule",
                    f"The resident ID number says born {born.isoformat()} but birthDate is "
                    f"{resource['birthDate']} / 身份证出生日期与出生日期不一致",
                    "Patient.birthDate"))
    return issues
