"""Page ids beyond what the database holds are a 404, never a 500."""

from __future__ import annotations

import pytest
from aiohttp.test_utils import TestClient

from tests.conftest import Tokens
from tests.pages_support import login


@pytest.mark.parametrize(
    "path",
    [
        "/personnes/99999999999",
        "/campagnes/99999999999",
        "/situations/99999999999",
        "/publics/99999999999",
        "/modeles/99999999999",
        "/personnes/-1",
    ],
)
async def test_huge_page_ids_are_not_found(client: TestClient, tokens: Tokens, path: str) -> None:
    await login(client, "admin")
    response = await client.get(path, allow_redirects=False)
    assert response.status == 404, path
