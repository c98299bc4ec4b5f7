"""The base of every recipe table: strict, closed, immutable pydantic models, and the translation of
pydantic's validation errors into messages that name the key, the value and what is allowed."""
from __future__ import annotations

import json
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StrictInt, ValidationError

from lungkd.core.errors import RecipeError


MAX_SEED = 2**31 - 1  # what every consumer takes: torch, numpy's legacy generator (< 2**32), SQLite, a C int
Seed = Annotated[StrictInt, Field(ge=0, le=MAX_SEED)]



class Spec(BaseModel):
    """Unknown keys are refused, types are not coerced (no 4.5 epochs, no "true" for true), numbers are
    finite, and a spec never changes after it is made (`model_copy(update=...)` makes a new one)."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True, allow_inf_nan=False,
                              validate_default=True)

    def replace(self, **changes: Any):
        """A copy with `changes`, validated like a new spec: a bad value is a RecipeError worded as a loaded
        file's would be (the wizard shows it as typed)."""
        try:
            return type(self).model_validate({**self.model_dump(), **changes})
        except ValidationError as exc:
            raise recipe_error(exc, None) from None


# The tags of a key that is either one table or a list of them (core.data.sources.Data): pydantic puts them in
# its locations, where a person reading the error would look for a key.
SHAPE_TAGS = ("one_table", "table_list")


def _where(loc: tuple) -> tuple[str, str]:
    """("[teachers.train]", "epochs") from pydantic's location ("teachers", "train", "epochs"); ("", "name") for a
    key at the top of the file."""
    named: list[str] = []
    for part in (str(p) for p in loc if p not in SHAPE_TAGS):
        if part.isdigit() and named:  # a [[students]] entry or a list item: numbered as a person counts
            named[-1] = f"{named[-1]} {int(part) + 1}"
        else:
            named.append(part)
    if not named:
        return "", ""
    section = ".".join(named[:-1])
    return (f"[{section}]" if section else ""), named[-1]


def toml_text(value: Any) -> str:
    """A value as it is written in a TOML file."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(toml_text(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{k} = {toml_text(v)}" for k, v in value.items()) + " }"
    return repr(value)


_TYPE_FIXES = {
    "int_type": "use a whole number, e.g. {key} = 8.",
    "float_type": "use a number, e.g. {key} = 0.001.",
    "bool_type": "use true or false.",
    "string_type": 'use text in quotes, e.g. {key} = "...".',
    "tuple_type": "use a list, e.g. {key} = [1, 2, 3].",
    "dict_type": "use a table: [{key}] on its own line, then its keys.",
    "model_type": "use a table: [{key}] on its own line, then its keys.",
    "finite_number": "use a finite number.",
}


def _fix(error: dict, key: str) -> str:
    ctx = error.get("ctx") or {}
    if "expected" in ctx:
        return f"use one of: {ctx['expected']}."
    for bound, words in (("ge", "at least"), ("gt", "more than"), ("le", "at most"), ("lt", "less than")):
        if bound in ctx:
            return f"use a value {words} {ctx[bound]}."
    if error["type"] in ("too_short", "too_long"):
        return f"give between 1 and {ctx.get('max_length', 'a few')} items." if error["type"] == "too_long" \
            else "give at least one item."
    return _TYPE_FIXES.get(error["type"], "").format(key=key or "value")


def _problem(error: dict, recipe: str) -> tuple[str, str]:
    section, key = _where(error["loc"])
    kind, message = error["type"], error["msg"].removeprefix("Value error, ").rstrip(".")
    if kind == "extra_forbidden":
        return (f"unknown key {section + ' ' if section else ''}{key}.",
                "remove it, or check its spelling against docs/recipes.md.")
    if kind == "missing":
        place = section or recipe
        table = isinstance(error.get("input"), dict) and key in ("teachers", "data", "model")
        return (f"{place} needs {'a [' + key + '] table' if table else key}.",
                f"add {'[' + key + ']' if table else key + ' = ...'}; see docs/recipes.md.")
    where = f"{section} {key}" if section else key
    if kind == "value_error":  # a rule of LungKD's: the message names the keys and the remedy
        if not key:
            return f"{message}.", ""
        if isinstance(error.get("input"), dict):  # a rule across the keys of a table
            return f"[{'.'.join(filter(None, (section.strip('[]'), key)))}]: {message}.", ""
        return f"{where} = {toml_text(error.get('input'))}: {message}.", ""
    return f"{where} = {toml_text(error.get('input'))}: {message}.", _fix(error, key)


def recipe_error(exc: ValidationError, path: str | None, recipe: str = "the recipe") -> RecipeError:
    """Every problem pydantic found, worded as the rest of LungKD's errors."""
    problems = [_problem(e, recipe) for e in exc.errors(include_url=False)]
    if len(problems) == 1:
        message, fix = problems[0]
    else:
        message = " ".join(f"({n}) {m}" for n, (m, _) in enumerate(problems, 1))
        fix = " ".join(f"({n}) {f}" for n, (_, f) in enumerate(problems, 1) if f)
    return RecipeError(message, path=path, fix=fix)
