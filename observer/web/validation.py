"""Validation errors as clients need them: which field, and what is wrong, never the value."""

from __future__ import annotations

from pydantic import ValidationError

# Discriminator tags that pydantic puts in an error's location; they are not fields.
_TAGS = frozenset({"deployment", "incident", "survey"})
_TAG_ERRORS = frozenset({"union_tag_invalid", "union_tag_not_found"})


def describe(
    error: ValidationError, limit: int = 20, *, tags: frozenset[str] = _TAGS
) -> list[dict[str, str]]:
    """Up to ``limit`` problems, each naming its field as ``[1].repository`` or ``repository``.

    ``tags`` are the discriminator values to leave out of locations; a webhook payload has
    none, and there ``deployment`` is a field.
    """
    problems = []
    for item in error.errors(include_url=False, include_input=False, include_context=False)[:limit]:
        field = ""
        for part in item["loc"]:
            if isinstance(part, int):
                field += f"[{part}]"
            elif part not in tags:
                field += f".{part}" if field else str(part)
        if item["type"] in _TAG_ERRORS:
            field += ".type" if field else "type"
        problems.append({"field": field or "body", "message": item["msg"]})
    return problems
