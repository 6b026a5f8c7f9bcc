"""Bounded, seeded fuzz runs in the suite (issue 12, item 5): schemathesis over the app's own OpenAPI
and a hypothesis fuzzer posting mutated FHIR resources. Neither may ever get a 5xx. The longer run is
`python bench/fuzz_server.py`."""

from __future__ import annotations

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings

from tests.fhir_server.reliability.fuzzing import Request, hostile_request

# Per run (each database): 8 cases x 38 OpenAPI operations, 150 mutated resources.
OPENAPI_CASES_PER_OPERATION = 8
RESOURCE_CASES = 150

_SETTINGS = dict(derandomize=True, database=None, deadline=None, suppress_health_check=list(HealthCheck))


def test_openapi_fuzz_never_answers_5xx(app):
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    server_errors: list[str] = []
    cases = 0
    for result in schema.get_all_operations():
        operation = result.ok()

        @settings(max_examples=OPENAPI_CASES_PER_OPERATION, **_SETTINGS)
        @given(case=operation.as_strategy())
        def call(case) -> None:
            nonlocal cases
            cases += 1
            response = case.call()
            if response.status_code >= 500:
                server_errors.append(f"{case.method} {case.formatted_path} -> {response.status_code}")

        call()
    assert cases >= 200
    assert server_errors == []


def test_mutated_resources_never_get_5xx(live_server):
    with httpx.Client(base_url=live_server + "/", timeout=60) as http:
        http.put("Patient/bn-fuzz", json={"resourceType": "Patient", "id": "bn-fuzz", "gender": "male"})

        @settings(max_examples=RESOURCE_CASES, **_SETTINGS)
        @given(request=hostile_request())
        def send(request: Request) -> None:
            r = http.request(request.method, request.path, content=request.body, headers=request.headers)
            assert r.status_code < 500, (r.status_code, r.text[:500])
            assert r.headers["content-type"].startswith("application/fhir+json"), (
                r.status_code,
                r.text[:300],
            )

        send()


@pytest.mark.parametrize("levels", [99, 101, 150])
def test_depth_boundary_from_the_fuzzer_is_a_clean_answer(live_server, levels):
    from tests.fhir_server.reliability.fuzzing import _deep, _dumps

    body = {"resourceType": "Patient", "extension": [_deep(levels)]}
    r = httpx.post(
        live_server + "/Patient", content=_dumps(body), headers={"Content-Type": "application/fhir+json"}
    )
    assert r.status_code in (201, 400)
