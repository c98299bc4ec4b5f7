"""Recipe files without the schema: reading a .toml recipe safely (size, nesting, encoding, syntax, each refused
with the file and the fix), telling its kind, and the recipes LungKD ships. Listing and finding recipes import
only this module, so `lungkd recipes` answers without pydantic, numpy or torch (core.recipes validates)."""
from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass
from importlib.resources import files
from pathlib import Path

from lungkd.core.errors import RecipeError
from lungkd.core.storage import UnreadableFileError, read_regular_file


MAX_RECIPE_BYTES = 64 << 10  # a recipe is a few hundred bytes; tomllib takes seconds and GBs on a megabyte of tables
# The deepest key of a recipe is [students.train] lr, three levels. tomllib builds a dotted key of n parts
# (a.a.a... = 1) in time and memory that grow as n squared, so such keys are refused before it sees them.
MAX_NESTING_PER_LINE = 32
_STRINGS_AND_COMMENTS = re.compile(r'"""[\s\S]*?"""|\'\'\'[\s\S]*?\'\'\'|"(?:[^"\\\n]|\\.)*"|\'[^\'\n]*\'|#[^\n]*')


def recipe_kind(document: dict) -> str | None:
    """"training" (one [model]), "experiment" ([teachers]), or None when the document is neither."""
    if "teachers" in document:
        return "experiment"
    return "training" if "model" in document else None


def read_toml(path: str | Path) -> dict:
    path = Path(path)
    try:
        text = read_regular_file(path, MAX_RECIPE_BYTES).decode("utf-8-sig")  # a Windows editor's BOM is fine
        _check_nesting(text, path)
        return tomllib.loads(text)
    except FileNotFoundError:
        raise RecipeError("recipe file not found.", path=path, fix="give the path of a .toml recipe.") from None
    except UnreadableFileError as exc:  # a folder, a FIFO or a device (by its type), or too large (by its size)
        if "folder" in exc.reason:
            raise RecipeError("this is a folder, not a recipe file.", path=path,
                              fix="give the path of a .toml recipe.") from None
        raise RecipeError(f"not read: {exc.reason}; far too large for a recipe." if "larger" in exc.reason else
                          f"not read: {exc.reason}.", path=path,
                          fix="give the .toml recipe file (a few hundred bytes), not another file.") from None
    except UnicodeDecodeError:
        raise RecipeError("not a text file.", path=path, fix="give a .toml recipe saved as UTF-8 text.") from None
    except tomllib.TOMLDecodeError as exc:
        raise RecipeError(f"not valid TOML ({exc}).", path=path, fix="correct the syntax at the place named.") from None
    except RecursionError:
        raise RecipeError("nested too deeply to be a recipe.", path=path,
                          fix="recipes have at most three levels of tables; see docs/recipes.md.") from None


@dataclass(frozen=True)
class ShippedRecipe:
    name: str
    kind: str  # "experiment" or "training"
    description: str
    path: Path


def shipped_recipes_folder() -> Path:
    """The recipes LungKD ships: package data of lungkd.resources, found through the package wherever it is
    (a checkout, an installed wheel or the frozen bundle)."""
    return Path(str(files("lungkd.resources") / "recipes"))


def _description(document: dict, path: Path) -> str:
    """The recipe's `description`, else the first comment line of the file."""
    if document.get("description"):
        return document["description"]
    comments = [line.lstrip("# ").strip() for line in path.read_text(encoding="utf-8").splitlines()
                if line.startswith("#")]
    return comments[0] if comments else ""


def shipped_recipes() -> list[ShippedRecipe]:
    """The recipes LungKD ships (resources/recipes/): experiments first, then training recipes, by name."""
    recipes = []
    for path in sorted(shipped_recipes_folder().rglob("*.toml")):
        document = read_toml(path)
        recipes.append(ShippedRecipe(path.stem, recipe_kind(document) or "unknown", _description(document, path),
                                     path))
    return sorted(recipes, key=lambda r: (r.kind != "experiment", r.name))


def find_recipe(text: str | Path) -> Path:
    """A recipe file given by its path, or a shipped recipe given by its name (`paper-bts-mean5`)."""
    path = Path(text).expanduser()
    if path.exists() or path.suffix == ".toml" or len(path.parts) > 1:
        return path  # a path, even a wrong one: reading it names the problem
    for recipe in shipped_recipes():
        if recipe.name == path.name:
            return recipe.path
    names = ", ".join(r.name for r in shipped_recipes())
    raise RecipeError(f"no recipe file '{text}' here, and no shipped recipe of that name.", path=path,
                      fix=f"give the path of a .toml recipe, or one of the shipped recipes: {names} "
                          "(`lungkd recipes` describes them).")


def _check_nesting(text: str, path: Path) -> None:
    """Refuses a line that opens more tables, arrays or key levels ('.', '[', '{' outside strings and comments)
    than any recipe needs. Keys and inline tables cannot span lines in TOML, so this bounds how deep one
    statement can reach; arrays nested deeper than Python's recursion limit end in RecursionError below."""
    def blank(match: re.Match) -> str:  # keep the line breaks of multi-line strings, so line numbers stay right
        return "\n" * match.group().count("\n")

    for number, line in enumerate(_STRINGS_AND_COMMENTS.sub(blank, text).split("\n"), start=1):
        if sum(line.count(c) for c in ".[{") > MAX_NESTING_PER_LINE:
            raise RecipeError(f"line {number} is nested too deeply to be part of a recipe.", path=path,
                              fix="recipes have at most three levels of tables; see docs/recipes.md.")
