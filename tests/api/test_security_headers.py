"""Security headers (contract §11, issue 10): nosniff everywhere, no-store on /v1 (answers
and exact counts), a strict Content-Security-Policy on HTML."""

import base64
import hashlib
import re
from typing import Any

from fastapi.testclient import TestClient

from api.security import content_security_policy
from tests.conftest import submission


def test_nosniff_and_no_store_on_v1_answers_and_errors(
    client: TestClient, admin: dict[str, str], survey: dict[str, Any]
) -> None:
    created = client.post("/v1/surveys/trust/responses", json=submission(), headers=admin)
    assert created.status_code == 201
    responses = [
        created,
        client.get(f"/v1/surveys/trust/responses/{created.json()['id']}", headers=admin),
        client.get("/v1/surveys/trust/responses", headers=admin),
        client.get("/v1/surveys/trust/stats/composition/role?format=csv", headers=admin),
        client.get("/v1/surveys/trust/responses"),  # 401
        client.patch("/v1/surveys", headers=admin),  # 405
        client.post(
            "/v1/surveys/trust/responses",
            content=b"x" * (2 * 1024 * 1024),
            headers={**admin, "Content-Type": "application/json"},
        ),  # 413, from the middleware
    ]
    assert [r.status_code for r in responses] == [201, 200, 200, 200, 401, 405, 413]
    for response in responses:
        assert response.headers["x-content-type-options"] == "nosniff", response.request.url
        assert response.headers["cache-control"] == "no-store", response.request.url


def test_nosniff_on_operations_endpoints(client: TestClient) -> None:
    for path in ("/healthz", "/readyz", "/metrics", "/openapi.json"):
        response = client.get(path)
        assert response.status_code == 200
        assert response.headers["x-content-type-options"] == "nosniff", path


def _policy(header: str) -> dict[str, list[str]]:
    directives = [d.strip().split() for d in header.split(";") if d.strip()]
    return {d[0]: d[1:] for d in directives}


def test_html_documentation_carries_a_strict_csp(client: TestClient) -> None:
    for path in ("/docs", "/redoc"):
        page = client.get(path)
        assert page.status_code == 200
        assert page.headers["content-type"].startswith("text/html")
        policy = _policy(page.headers["content-security-policy"])
        assert policy["default-src"] == ["'none'"]
        assert policy["frame-ancestors"] == ["'none'"]
        assert policy["base-uri"] == ["'none'"]
        assert "'unsafe-inline'" not in policy["script-src"]
        assert "'unsafe-eval'" not in policy["script-src"]
        assert int(page.headers["content-length"]) == len(page.content)
        # Every inline script of the page is allowed by its hash, and only those.
        inline = re.findall(r"<script>(.*?)</script>", page.text, re.DOTALL)
        hashes = {
            "'sha256-" + base64.b64encode(hashlib.sha256(s.encode()).digest()).decode() + "'"
            for s in inline
        }
        assert {s for s in policy["script-src"] if s.startswith("'sha256-")} == hashes, path


def test_csp_of_other_html_allows_nothing_but_its_own_inline_blocks() -> None:
    html = b"<html><style>p{color:red}</style><script src='x.js'></script><p>hi</p></html>"
    policy = _policy(content_security_policy(html, documentation=False))
    digest = base64.b64encode(hashlib.sha256(b"p{color:red}").digest()).decode()
    assert policy["style-src"] == [f"'sha256-{digest}'"]
    assert policy["script-src"] == ["'none'"]
    assert policy["default-src"] == ["'none'"]
    assert policy["img-src"] == ["data:"]
