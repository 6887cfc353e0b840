"""The committed OpenAPI document is the one the service serves (contract §8), and it
documents what clients build against: auth errors as problem+json, stable operation ids."""

import importlib.util
import json
import re
from types import ModuleType
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.conftest import repo_root

COMMITTED = repo_root() / "openapi" / "openapi.json"
METHODS = {"get", "put", "post", "delete", "patch", "head", "options"}
OPERATION_ID = re.compile(r"^[a-z][a-z0-9_]*$")
PROBLEM_REF = {"$ref": "#/components/schemas/Problem"}


def _export_script() -> ModuleType:
    path = repo_root() / "scripts" / "export_openapi.py"
    spec = importlib.util.spec_from_file_location("export_openapi", path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _operations(document: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (path, method, operation)
        for path, item in document["paths"].items()
        for method, operation in item.items()
        if method in METHODS
    ]


@pytest.fixture(scope="module")
def committed() -> dict[str, Any]:
    document: dict[str, Any] = json.loads(COMMITTED.read_text(encoding="utf-8"))
    return document


def test_committed_document_is_what_the_service_serves(
    client: TestClient, committed: dict[str, Any]
) -> None:
    served = client.get("/openapi.json")
    assert served.status_code == 200
    assert served.json() == committed, "run: python scripts/export_openapi.py"
    # Byte for byte too, key order included: the file is the script's rendering of it.
    script = _export_script()
    assert COMMITTED.read_text(encoding="utf-8") == script.render(served.json())


def test_export_script_check_mode(tmp_path: Any, capsys: pytest.CaptureFixture[str]) -> None:
    script = _export_script()
    assert script.main(["--check"]) == 0
    stale = tmp_path / "openapi.json"
    stale.write_text(COMMITTED.read_text(encoding="utf-8").replace("hearme", "hearyou", 1))
    assert script.main(["--check", "--output", str(stale)]) == 1
    assert "out of date" in capsys.readouterr().err
    assert script.main(["--output", str(stale)]) == 0
    assert stale.read_text(encoding="utf-8") == COMMITTED.read_text(encoding="utf-8")


def test_every_v1_operation_documents_401_as_problem_json(committed: dict[str, Any]) -> None:
    operations = [op for op in _operations(committed) if op[0].startswith("/v1/")]
    assert operations
    for path, method, operation in operations:
        where = f"{method.upper()} {path}"
        responses = operation["responses"]
        assert "401" in responses, where
        content = responses["401"].get("content", {})
        assert "application/problem+json" in content, where
        assert content["application/problem+json"]["schema"] == PROBLEM_REF, where
        assert operation.get("security"), f"{where} declares no bearer security"


def test_error_responses_are_problem_json_only(committed: dict[str, Any]) -> None:
    """Errors are served as application/problem+json (contract §1), never documented as
    plain application/json."""
    for path, method, operation in _operations(committed):
        for status, response in operation["responses"].items():
            if not path.startswith("/v1/") or not status.startswith("4"):
                continue
            where = f"{method.upper()} {path} {status}"
            content = response.get("content", {})
            assert set(content) == {"application/problem+json"}, where
            # FastAPI's own 422 shape must not survive: the body really is a Problem.
            assert content["application/problem+json"]["schema"] == PROBLEM_REF, where
    assert "HTTPValidationError" not in json.dumps(committed)


def test_problem_schema_has_the_contract_fields(committed: dict[str, Any]) -> None:
    problem = committed["components"]["schemas"]["Problem"]
    assert {"type", "title", "status", "detail", "errors"} <= set(problem["properties"])
    assert {"title", "status"} <= set(problem["required"])


def test_operation_ids_are_stable_and_unique(committed: dict[str, Any]) -> None:
    ids = [operation.get("operationId") for _, _, operation in _operations(committed)]
    assert all(isinstance(i, str) and OPERATION_ID.match(i) for i in ids), ids
    assert len(ids) == len(set(ids)), "operation ids must be unique"
    # Stable: the route function's name (from which FastAPI also derives the summary), not
    # FastAPI's default of name + path + method, which changes whenever a path does.
    for path, method, operation in _operations(committed):
        name = operation["operationId"]
        assert operation["summary"] == name.replace("_", " ").title(), f"{method} {path}"
    by_route = {
        (path, method): operation["operationId"]
        for path, method, operation in _operations(committed)
    }
    assert by_route[("/v1/surveys", "post")] == "create_survey"
    assert by_route[("/v1/surveys/{survey}/responses", "post")] == "submit_response"
    assert by_route[("/v1/surveys/{survey}/responses:import", "post")] == "import_responses"
    assert by_route[("/v1/surveys/{survey}/responses/{response_id}", "delete")] == (
        "erase_response"
    )
    assert by_route[("/healthz", "get")] == "healthz"


def test_every_operation_has_a_description(committed: dict[str, Any]) -> None:
    for path, method, operation in _operations(committed):
        assert operation.get("description"), f"{method.upper()} {path} has no docstring"


def test_every_v1_operation_declares_the_problems_any_request_may_meet(
    committed: dict[str, Any],
) -> None:
    """Contract §11: 429 and 503 (with Retry-After) everywhere, 413 where a body is read,
    507 where something is written."""
    for path, method, operation in _operations(committed):
        if not path.startswith("/v1/"):
            continue
        where = f"{method.upper()} {path}"
        responses = operation["responses"]
        wanted = {"429", "503"}
        if "requestBody" in operation:
            wanted.add("413")
        if method in ("post", "put", "delete"):
            wanted.add("507")
        assert wanted <= set(responses), (where, sorted(responses))
        for status in ("429", "503"):
            assert "Retry-After" in responses[status]["headers"], where


def _concrete(path: str) -> str:
    return re.sub(r"\{[^}]+\}", "x", path)


def test_every_405_has_an_allow_header_naming_every_method_of_the_path(
    client: TestClient, committed: dict[str, Any]
) -> None:
    for path, item in committed["paths"].items():
        documented = {m.upper() for m in item if m in METHODS}
        unused = next(m for m in ("PATCH", "PUT", "DELETE", "POST") if m not in documented)
        response = client.request(unused, _concrete(path))
        assert response.status_code == 405, (unused, path, response.text)
        assert response.headers["content-type"].startswith("application/problem+json")
        allowed = {m.strip() for m in response.headers["allow"].split(",")}
        # HEAD is served wherever GET is (Starlette), though not documented.
        assert documented <= allowed <= documented | {"HEAD"}, (path, allowed)
