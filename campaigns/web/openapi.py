"""The OpenAPI 3 document, built from the routes the API routers declare."""

from __future__ import annotations

import re
from typing import Any

from campaigns.web.http import ApiRouter, bound_integers

ERROR_SCHEMA = {
    "type": "object",
    "properties": {"error": {"type": "string"}, "detail": {"type": "string"}},
    "required": ["error", "detail"],
}


def build_openapi(routers: list[ApiRouter], *, version: str) -> dict[str, Any]:
    paths: dict[str, dict[str, Any]] = {}
    components: dict[str, Any] = {"Error": ERROR_SCHEMA}
    for router in routers:
        for spec in router.routes:
            if not spec.path.startswith("/api/"):
                continue
            operation: dict[str, Any] = {
                "summary": spec.summary,
                "tags": [spec.tag],
                "operationId": f"{spec.method.lower()}_{_slug(spec.path)}",
                "responses": {
                    "200": _response(spec.response, components),
                    "4XX": {
                        "description": "Erreur",
                        "content": {
                            "application/json": {"schema": {"$ref": "#/components/schemas/Error"}}
                        },
                    },
                },
            }
            if spec.no_content:
                operation["responses"]["204"] = {"description": spec.no_content}
            if spec.roles is not None:
                operation["security"] = [{"bearer": []}]
                operation["x-roles"] = [role.value for role in spec.roles]
            else:
                operation["security"] = []
            # The same descriptions the routes check their parameters against (web.http).
            params = [
                {"name": p.name, "in": "path", "required": True, "schema": p.schema(in_path=True)}
                for p in spec.path_params
            ]
            params += [
                {"name": p.name, "in": "query", "required": False, "schema": p.schema()}
                for p in spec.query_params
            ]
            if params:
                operation["parameters"] = params
            if spec.body is not None:
                operation["requestBody"] = {
                    "required": True,
                    "content": {"application/json": {"schema": _ref(spec.body, components)}},
                }
            elif spec.content_type == "multipart/form-data":
                operation["requestBody"] = {
                    "required": True,
                    "content": {"multipart/form-data": {"schema": {"type": "object"}}},
                }
            paths.setdefault(spec.path, {})[spec.method.lower()] = operation
    return {
        "openapi": "3.1.0",
        "info": {"title": "campaigns", "version": version},
        "paths": paths,
        "components": {
            "schemas": components,
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
    }


def _slug(path: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", path.lower()).strip("_")


def _ref(model: Any, components: dict[str, Any]) -> dict[str, Any]:
    schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
    bound_integers(schema)
    for name, definition in schema.pop("$defs", {}).items():
        components[name] = definition
    components[model.__name__] = schema
    return {"$ref": f"#/components/schemas/{model.__name__}"}


def _response(model: Any, components: dict[str, Any]) -> dict[str, Any]:
    if model is None:
        return {"description": "OK"}
    return {
        "description": "OK",
        "content": {"application/json": {"schema": _ref(model, components)}},
    }
