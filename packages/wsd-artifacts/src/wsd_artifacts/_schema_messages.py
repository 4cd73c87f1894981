"""JSON Schema (draft 2020-12) validation whose problems read as one line each.

``jsonschema`` does the validating; this module says each problem the way
wsd reports it: the path of the field (``functions.unet.inputs[0].dtype``),
then what was expected there and what was found. Every problem is reported,
not only the first.

Messages are written for the keywords wsd's schemas use; a schema with any
other keyword is refused outright (:func:`check_keywords`), so no problem is
ever reported in jsonschema's own words. As before this module, numbers must
be finite, and tuples and mappings count as arrays and objects.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterator, Mapping
from functools import cache
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from jsonschema import ValidationError  # type: ignore[import-untyped]

# Keywords that only carry identity or documentation.
_ANNOTATIONS = frozenset({"$schema", "$id", "$defs", "$comment", "title", "description"})
# Keywords that constrain instances; _lines says each one's problems.
_ASSERTIONS = frozenset(
    {
        "$ref",
        "type",
        "enum",
        "const",
        "minimum",
        "exclusiveMinimum",
        "minLength",
        "pattern",
        "items",
        "minItems",
        "uniqueItems",
        "properties",
        "required",
        "additionalProperties",
        "propertyNames",
        "minProperties",
    }
)
SUPPORTED_KEYWORDS = _ANNOTATIONS | _ASSERTIONS
# Where a keyword's value is a schema, or an object of schemas.
_SUBSCHEMA = ("items", "additionalProperties", "propertyNames")
_SUBSCHEMAS = ("properties", "$defs")

_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_TYPE_WORDS = {
    "object": "an object",
    "array": "an array",
    "string": "a string",
    "integer": "an integer",
    "number": "a number",
    "boolean": "true or false",
    "null": "null",
}


def _is_number(value: Any) -> bool:
    if isinstance(value, bool):
        return False
    return isinstance(value, int) or (isinstance(value, float) and math.isfinite(value))


@cache
def _validator_class() -> Any:
    """Draft 2020-12 with our types: tuples are arrays, mappings objects, numbers finite.

    jsonschema is imported here, on the first validation, so that importing
    wsd_artifacts (every wsd command, the GPU machine's benchmark) needs none of it.
    """
    from jsonschema import Draft202012Validator, validators

    return validators.extend(
        Draft202012Validator,
        type_checker=Draft202012Validator.TYPE_CHECKER.redefine_many(
            {
                "array": lambda _, value: isinstance(value, list | tuple),
                "object": lambda _, value: isinstance(value, Mapping),
                "number": lambda _, value: _is_number(value),
            }
        ),
    )


def check_keywords(schema: Any, where: str = "#") -> None:
    """Raise ``ValueError`` if ``schema`` uses a keyword this module has no messages for."""
    if not isinstance(schema, Mapping):
        if isinstance(schema, bool):
            return
        raise ValueError(f"{where}: a schema must be an object or a boolean")
    unknown = set(schema) - SUPPORTED_KEYWORDS
    if unknown:
        raise ValueError(f"{where}: unsupported JSON Schema keywords {sorted(unknown)}")
    ref = schema.get("$ref")
    if ref is not None and not (isinstance(ref, str) and ref.startswith("#/$defs/")):
        raise ValueError(f"{where}: only local '#/$defs/...' references are supported")
    for key in _SUBSCHEMA:
        if key in schema:
            check_keywords(schema[key], f"{where}/{key}")
    for group in _SUBSCHEMAS:
        for name, sub in schema.get(group, {}).items():
            check_keywords(sub, f"{where}/{group}/{name}")


def validate(instance: Any, schema: Mapping[str, Any]) -> list[str]:
    """Every problem of ``instance`` against ``schema``, one line each (``path: message``)."""
    errors = _validator_class()(_explicit_false(schema)).iter_errors(instance)
    return list(dict.fromkeys(line for error in errors for line in _lines(error)))


def _explicit_false(schema: Any) -> Any:
    """``schema`` with each ``false`` subschema written ``{"not": {}}``.

    jsonschema reports a value that meets a bare ``false`` at the path of the
    object holding it, not at the value's own; ``not`` is reported where it
    belongs. ``additionalProperties: false`` stays: that keyword names the
    unexpected fields itself.
    """
    if schema is False:
        return {"not": {}}
    if not isinstance(schema, Mapping):
        return schema
    out = dict(schema)
    for key in _SUBSCHEMA:
        if key in out and not (key == "additionalProperties" and out[key] is False):
            out[key] = _explicit_false(out[key])
    for group in _SUBSCHEMAS:
        if group in out:
            out[group] = {name: _explicit_false(sub) for name, sub in out[group].items()}
    return out


def child_path(path: str, key: str | int) -> str:
    """``path`` extended by an object key or an array index."""
    if isinstance(key, int):
        return f"{path}[{key}]"
    if _IDENTIFIER.match(key):
        return f"{path}.{key}" if path else key
    return f"{path}[{json.dumps(key)}]"


def _lines(error: ValidationError) -> Iterator[str]:
    path = ""
    for key in error.absolute_path:
        path = child_path(path, key)
    if "propertyNames" in error.absolute_schema_path:
        # The instance is the name; the path is that of the object it names a field of.
        yield f"{child_path(path, error.instance)}: invalid name: {_expected(error)}"
        return
    value, keyword = error.instance, error.validator
    if keyword == "required":
        for name in error.validator_value:
            if name not in value:
                yield f"{child_path(path, name)}: required field is missing"
    elif keyword == "additionalProperties":
        allowed = ", ".join(error.schema.get("properties", {}))
        for name in value:
            if name not in error.schema.get("properties", {}):
                yield f"{child_path(path, name)}: unexpected field (expected only: {allowed})"
    elif keyword == "uniqueItems":
        for i, item in enumerate(value):
            if _validator_class()({"enum": list(value[:i])}).is_valid(item):
                yield f"{child_path(path, i)}: expected unique items, {_show(item)} repeats"
    else:
        yield f"{path or '(top level)'}: {_expected(error)}"


def _expected(error: ValidationError) -> str:
    """What a single-field problem expected and what it found."""
    keyword, rule, value = error.validator, error.validator_value, error.instance
    got = _got(value)
    if keyword == "type":
        kinds = rule if isinstance(rule, list) else [rule]
        if "number" in kinds and isinstance(value, float) and not math.isfinite(value):
            return f"expected a finite number, {got}"
        return f"expected {' or '.join(_TYPE_WORDS[k] for k in kinds)}, {got}"
    if keyword == "const":
        return f"expected {_show(rule)}, {got}"
    if keyword == "enum":
        return f"expected one of {', '.join(_show(e) for e in rule)}, {got}"
    if keyword == "minimum":
        return f"expected a value >= {rule}, {got}"
    if keyword == "exclusiveMinimum":
        return f"expected a value > {rule}, {got}"
    if keyword == "minLength":
        return f"expected at least {_count(rule, 'character')}, {got}"
    if keyword == "pattern":
        return f"expected {error.schema.get('description', f'a string matching {rule}')}, {got}"
    if keyword == "minItems":
        return f"expected at least {_count(rule, 'item')}, got {len(value)}"
    if keyword == "minProperties":
        return f"expected at least {_count(rule, 'entry')}, got {len(value)}"
    return "unexpected field"  # "not": a false subschema (_explicit_false)


def _show(value: Any) -> str:
    text = json.dumps(value, default=repr)
    return text if len(text) <= 60 else text[:57] + "..."


def _got(value: Any) -> str:
    if isinstance(value, Mapping):
        return "got an object"
    if isinstance(value, list | tuple):
        return "got an array"
    return f"got {_show(value)}"


def _count(n: int, noun: str) -> str:
    if n == 1:
        return f"1 {noun}"
    return f"{n} {noun[:-1] + 'ies' if noun.endswith('y') else noun + 's'}"
