"""A small JSON Schema (draft 2020-12) validator for the keywords wsd's schemas use.

wsd-artifacts depends on numpy only, so rather than pull in ``jsonschema``
this module implements the subset of draft 2020-12 that
``manifest.schema.json`` is written in, driven by the schema document itself
(the document is the single source of truth). A schema that uses any other
keyword is refused outright (:func:`check_keywords`), so the document can
never say something this validator silently ignores.

Unlike a typical validator it reports every violation, each with the path of
the field (``functions.unet.inputs[0].dtype``) and what was expected there.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

# Keywords that only carry identity or documentation.
_ANNOTATIONS = frozenset({"$schema", "$id", "$defs", "$comment", "title", "description"})
# Keywords that constrain instances; each is implemented below.
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


@dataclass(frozen=True)
class Violation:
    """One place where an instance breaks its schema."""

    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path or '(top level)'}: {self.message}"


def check_keywords(schema: Any, where: str = "#") -> None:
    """Raise ``ValueError`` if ``schema`` uses a keyword this module does not implement."""
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
    for key in ("items", "additionalProperties", "propertyNames"):
        if key in schema:
            check_keywords(schema[key], f"{where}/{key}")
    for group in ("properties", "$defs"):
        for name, sub in schema.get(group, {}).items():
            check_keywords(sub, f"{where}/{group}/{name}")


def validate(instance: Any, schema: Mapping[str, Any]) -> list[Violation]:
    """Every violation of ``schema`` by ``instance``, in document order."""
    return list(_Validator(schema).check(instance, schema, ""))


def json_type(value: Any) -> str:
    """The JSON type name of a parsed JSON value."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list | tuple):
        return "array"
    if isinstance(value, Mapping):
        return "object"
    return type(value).__name__


def child_path(path: str, key: str | int) -> str:
    """``path`` extended by an object key or an array index."""
    if isinstance(key, int):
        return f"{path}[{key}]"
    if _IDENTIFIER.match(key):
        return f"{path}.{key}" if path else key
    return f"{path}[{json.dumps(key)}]"


def _show(value: Any) -> str:
    text = json.dumps(value, default=repr)
    return text if len(text) <= 60 else text[:57] + "..."


def _got(value: Any) -> str:
    kind = json_type(value)
    if kind in ("object", "array"):
        return f"got {_TYPE_WORDS.get(kind, kind)}"
    return f"got {_show(value)}"


def _count(n: int, noun: str) -> str:
    if n == 1:
        return f"1 {noun}"
    return f"{n} {noun[:-1] + 'ies' if noun.endswith('y') else noun + 's'}"


def _is_type(value: Any, kind: str) -> bool:
    actual = json_type(value)
    if kind == "integer":
        return actual == "integer" or (actual == "number" and float(value).is_integer())
    if kind == "number":
        return actual in ("integer", "number")
    return actual == kind


def _json_equal(a: Any, b: Any) -> bool:
    # JSON equality: 1 == 1.0, but true != 1.
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    if isinstance(a, Mapping) and isinstance(b, Mapping):
        return a.keys() == b.keys() and all(_json_equal(a[k], b[k]) for k in a)
    if isinstance(a, list | tuple) and isinstance(b, list | tuple):
        return len(a) == len(b) and all(_json_equal(x, y) for x, y in zip(a, b, strict=True))
    if _is_number(a) and _is_number(b):
        return bool(a == b)
    return json_type(a) == json_type(b) and bool(a == b)


def _is_number(value: Any) -> bool:
    return json_type(value) in ("integer", "number")


class _Validator:
    def __init__(self, root: Mapping[str, Any]) -> None:
        self.root = root

    def _resolve(self, ref: str) -> Any:
        node: Any = self.root
        for part in ref[2:].split("/"):
            node = node[part]
        return node

    def _expected(self, schema: Mapping[str, Any], fallback: str) -> str:
        return str(schema.get("description", fallback))

    def check(self, value: Any, schema: Any, path: str) -> Iterator[Violation]:
        if schema is True:
            return
        if schema is False:
            yield Violation(path, "unexpected field")
            return
        if "$ref" in schema:
            yield from self.check(value, self._resolve(schema["$ref"]), path)
        if "type" in schema:
            kinds = schema["type"] if isinstance(schema["type"], list) else [schema["type"]]
            if not any(_is_type(value, k) for k in kinds):
                words = " or ".join(_TYPE_WORDS[k] for k in kinds)
                yield Violation(path, f"expected {words}, {_got(value)}")
                return
        if "const" in schema and not _json_equal(value, schema["const"]):
            yield Violation(path, f"expected {_show(schema['const'])}, {_got(value)}")
            return
        if "enum" in schema and not any(_json_equal(value, e) for e in schema["enum"]):
            choices = ", ".join(_show(e) for e in schema["enum"])
            yield Violation(path, f"expected one of {choices}, {_got(value)}")
            return
        if _is_number(value):
            yield from self._check_number(value, schema, path)
        elif isinstance(value, str):
            yield from self._check_string(value, schema, path)
        elif isinstance(value, list | tuple):
            yield from self._check_array(value, schema, path)
        elif isinstance(value, Mapping):
            yield from self._check_object(value, schema, path)

    def _check_number(
        self, value: Any, schema: Mapping[str, Any], path: str
    ) -> Iterator[Violation]:
        if "minimum" in schema and not value >= schema["minimum"]:
            yield Violation(path, f"expected a value >= {schema['minimum']}, {_got(value)}")
        if "exclusiveMinimum" in schema and not value > schema["exclusiveMinimum"]:
            yield Violation(path, f"expected a value > {schema['exclusiveMinimum']}, {_got(value)}")
        if isinstance(value, float) and not math.isfinite(value):
            yield Violation(path, f"expected a finite number, {_got(value)}")

    def _check_string(
        self, value: str, schema: Mapping[str, Any], path: str
    ) -> Iterator[Violation]:
        if "minLength" in schema and len(value) < schema["minLength"]:
            yield Violation(
                path, f"expected at least {_count(schema['minLength'], 'character')}, {_got(value)}"
            )
        if "pattern" in schema and not re.search(schema["pattern"], value):
            expected = self._expected(schema, f"a string matching {schema['pattern']}")
            yield Violation(path, f"expected {expected}, {_got(value)}")

    def _check_array(
        self, value: list[Any] | tuple[Any, ...], schema: Mapping[str, Any], path: str
    ) -> Iterator[Violation]:
        if "minItems" in schema and len(value) < schema["minItems"]:
            yield Violation(
                path, f"expected at least {_count(schema['minItems'], 'item')}, got {len(value)}"
            )
        if schema.get("uniqueItems"):
            for i, item in enumerate(value):
                if any(_json_equal(item, earlier) for earlier in value[:i]):
                    yield Violation(
                        child_path(path, i), f"expected unique items, {_show(item)} repeats"
                    )
        if "items" in schema:
            for i, item in enumerate(value):
                yield from self.check(item, schema["items"], child_path(path, i))

    def _check_object(
        self, value: Mapping[str, Any], schema: Mapping[str, Any], path: str
    ) -> Iterator[Violation]:
        for name in schema.get("required", ()):
            if name not in value:
                yield Violation(child_path(path, name), "required field is missing")
        if "minProperties" in schema and len(value) < schema["minProperties"]:
            yield Violation(
                path,
                f"expected at least {_count(schema['minProperties'], 'entry')}, got {len(value)}",
            )
        properties = schema.get("properties", {})
        for key, item in value.items():
            where = child_path(path, key)
            if "propertyNames" in schema:
                for v in self.check(key, schema["propertyNames"], where):
                    yield Violation(where, f"invalid name: {v.message}")
            if key in properties:
                yield from self.check(item, properties[key], where)
            elif "additionalProperties" in schema:
                extra = schema["additionalProperties"]
                if extra is False:
                    allowed = ", ".join(properties)
                    yield Violation(where, f"unexpected field (expected only: {allowed})")
                else:
                    yield from self.check(item, extra, where)
