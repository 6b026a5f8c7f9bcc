"""Where the R4B models disagree with FHIR R4, R4 wins; where R4 itself is violated, we reject."""

from __future__ import annotations

import pytest

from fhir_server.errors import FhirError
from fhir_server.validation import validate


def test_primitive_extension_on_an_extension_value_is_valid_r4():
    # Shape of the official example CodeSystem-v2-0725 (R4B's Extension model forbids `_valueString`).
    code_system = {
        "resourceType": "CodeSystem",
        "status": "active",
        "content": "complete",
        "concept": [
            {
                "code": "A",
                "extension": [
                    {
                        "url": "http://hl7.org/fhir/StructureDefinition/codesystem-concept-comments",
                        "valueString": "Ghi chú",
                        "_valueString": {
                            "extension": [
                                {
                                    "url": "http://hl7.org/fhir/StructureDefinition/translation",
                                    "extension": [{"url": "lang", "valueCode": "vi"}],
                                }
                            ]
                        },
                    }
                ],
            }
        ],
    }
    assert validate(code_system) is code_system


def test_r4_cardinality_still_applies_search_parameter_needs_a_base():
    with pytest.raises(FhirError) as err:
        validate(
            {
                "resourceType": "SearchParameter",
                "url": "http://x/sp",
                "name": "x",
                "status": "active",
                "description": "x",
                "code": "x",
                "type": "token",
            }
        )
    assert err.value.status == 400
    assert "SearchParameter.base" in err.value.outcome["issue"][0]["expression"]


def test_r4_only_resource_types_are_accepted_without_an_r4b_model():
    assert validate({"resourceType": "MedicinalProduct", "id": "thuoc-1"})["id"] == "thuoc-1"
