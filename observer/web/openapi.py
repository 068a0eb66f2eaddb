"""The OpenAPI document of ``POST /api/event``, generated from the models that validate it."""

from __future__ import annotations

from typing import Any

from pydantic.json_schema import models_json_schema

from observer import __version__
from observer.sources.api_event import DeploymentEvent, IncidentEvent, SurveyEvent

REF = "#/components/schemas/{model}"


def openapi_document(max_events: int) -> dict[str, Any]:
    _, schemas = models_json_schema(
        [
            (DeploymentEvent, "validation"),
            (IncidentEvent, "validation"),
            (SurveyEvent, "validation"),
        ],
        ref_template=REF,
    )
    one_event = {
        "oneOf": [
            {"$ref": REF.format(model="DeploymentEvent")},
            {"$ref": REF.format(model="IncidentEvent")},
            {"$ref": REF.format(model="SurveyEvent")},
        ],
        "discriminator": {
            "propertyName": "type",
            "mapping": {
                "deployment": REF.format(model="DeploymentEvent"),
                "incident": REF.format(model="IncidentEvent"),
                "survey": REF.format(model="SurveyEvent"),
            },
        },
    }
    error = {
        "type": "object",
        "properties": {
            "error": {"type": "string"},
            "fields": {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {"field": {"type": "string"}, "message": {"type": "string"}},
                },
            },
        },
        "required": ["error"],
    }

    def failure(description: str) -> dict[str, Any]:
        return {
            "description": description,
            "content": {"application/json": {"schema": {"$ref": REF.format(model="Error")}}},
        }

    return {
        "openapi": "3.1.0",
        "info": {
            "title": "observer event API",
            "version": __version__,
            "description": "Events that pipelines push: deployments GitHub never sees, "
            "incidents, and anonymous pulse-survey answers. A list is validated whole: one "
            "invalid item rejects the request.",
        },
        "paths": {
            "/api/event": {
                "post": {
                    "summary": "Record one event or a list of events",
                    "operationId": "postEvent",
                    "security": [{"bearer": []}, {"signature": []}],
                    "requestBody": {
                        "required": True,
                        "content": {
                            "application/json": {
                                "schema": {
                                    "oneOf": [
                                        one_event,
                                        {
                                            "type": "array",
                                            "items": one_event,
                                            "minItems": 1,
                                            "maxItems": max_events,
                                        },
                                    ]
                                }
                            }
                        },
                    },
                    "responses": {
                        "200": {
                            "description": "Every event applied, or recognised as a repeat.",
                            "content": {
                                "application/json": {
                                    "schema": {"$ref": REF.format(model="Results")}
                                }
                            },
                        },
                        "400": failure("The body is not JSON."),
                        "401": failure("Missing or wrong bearer token or signature."),
                        "413": failure("The body is larger than MAX_BODY_BYTES."),
                        "415": failure("The body is not application/json."),
                        "422": failure("An event failed validation; nothing was applied."),
                    },
                }
            }
        },
        "components": {
            "schemas": {
                **schemas["$defs"],
                "Error": error,
                "Results": {
                    "type": "object",
                    "properties": {
                        "results": {
                            "type": "array",
                            "items": {
                                "type": "object",
                                "properties": {
                                    "type": {"type": "string"},
                                    "result": {
                                        "type": "string",
                                        "enum": ["accepted", "duplicate", "ignored"],
                                    },
                                    "detail": {"type": ["string", "null"]},
                                },
                            },
                        }
                    },
                },
            },
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer"},
                "signature": {
                    "type": "apiKey",
                    "in": "header",
                    "name": "X-Hub-Signature-256",
                    "description": "sha256= and the HMAC-SHA256 of the body with WEBHOOK_SECRET.",
                },
            },
        },
    }
