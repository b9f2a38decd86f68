"""Schemathesis over every operation of /api/openapi.json, as an admin with a bearer token.

Generated requests, valid and invalid, must never get a server error, and every answer
must match what the document says (status, content type, schema). The budget is bounded
(examples per operation, derandomized) so the whole test stays well under two minutes.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
)

from tests.services import require_postgres

EXAMPLES = {GenerationMode.POSITIVE: 12, GenerationMode.NEGATIVE: 8}
CHECKS = (not_a_server_error, response_schema_conformance, content_type_conformance)


def _fuzz(document: dict[str, Any], base_url: str, token: str) -> dict[str, Any]:
    schema = schemathesis.openapi.from_dict(document)
    headers = {"Authorization": f"Bearer {token}"}
    figures: dict[str, Any] = {"operations": 0, "requests": 0, "failures": []}
    operations = [result.ok() for result in schema.get_all_operations()]
    # Revoking a token may revoke the one the fuzzer calls with: that operation goes last.
    operations.sort(key=lambda op: op.method.upper() == "DELETE" and "/auth/" in op.path)
    for operation in operations:
        figures["operations"] += 1
        for mode, examples in EXAMPLES.items():

            @settings(
                max_examples=examples,
                deadline=None,
                derandomize=True,
                database=None,
                suppress_health_check=list(HealthCheck),
            )
            @given(case=operation.as_strategy(generation_mode=mode))
            def run(case: schemathesis.Case) -> None:
                figures["requests"] += 1
                response = case.call(base_url=base_url, headers=headers, timeout=10)
                figures.setdefault("statuses", {}).setdefault(response.status_code, 0)
                figures["statuses"][response.status_code] += 1
                try:
                    case.validate_response(response, checks=CHECKS)
                except (Exception, BaseExceptionGroup) as exc:  # report each, not the first
                    figures["failures"].append(f"{case.method} {case.formatted_path}: {exc!r}")

            run()
    return figures


@pytest.mark.slow
@pytest.mark.parametrize("db_url", ["postgres"], indirect=True)
async def test_every_api_operation_survives_generated_requests(client, tokens) -> None:
    require_postgres()
    document = await (await client.get("/api/openapi.json")).json()
    base_url = str(client.make_url("")).rstrip("/")
    figures = await asyncio.to_thread(_fuzz, document, base_url, tokens["admin"])
    print(
        f"schemathesis: {figures['operations']} operations, {figures['requests']} requests, "
        f"{len(figures['failures'])} failures {figures.get('statuses')}"
    )
    assert figures["operations"] >= 40
    assert not figures["failures"], "\n\n".join(figures["failures"][:20])
