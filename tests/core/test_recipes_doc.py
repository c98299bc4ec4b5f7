"""docs/recipes.md describes every key the recipe schema accepts, and every shipped recipe loads and writes
back to itself."""
from pathlib import Path

import pytest
from pydantic import BaseModel

from lungkd.core.recipes import ExperimentRecipe, TrainRecipe, load_experiment, load_recipe, parse_experiment, \
    parse_recipe, recipe_to_toml

ROOT = Path(__file__).resolve().parents[2]
RECIPES = ROOT / "resources" / "recipes"


def _keys(model: type[BaseModel]) -> set[str]:
    """Every key a recipe file may hold, nested tables included."""
    keys = set()
    for name, field in model.model_fields.items():
        if field.exclude:
            continue
        keys.add(name)
        annotation = field.annotation
        for candidate in (annotation, *getattr(annotation, "__args__", ())):
            for inner in (candidate, *getattr(candidate, "__args__", ())):
                if isinstance(inner, type) and issubclass(inner, BaseModel):
                    keys |= _keys(inner)
    return keys


def test_every_recipe_key_is_documented():
    doc = (ROOT / "docs" / "recipes.md").read_text(encoding="utf-8")
    keys = _keys(ExperimentRecipe) | _keys(TrainRecipe)
    assert {"epochs", "curated_k", "location_source", "together", "label_noise"} <= keys
    missing = sorted(k for k in keys if f"`{k}`" not in doc and f"`[{k}]`" not in doc and f"[{k}]" not in doc)
    assert missing == []


@pytest.mark.parametrize("path", sorted(RECIPES.glob("*.toml")), ids=lambda p: p.stem)
def test_shipped_experiment_recipes_load_and_write_back_to_themselves(path):
    import tomllib

    recipe = load_experiment(path)
    again = parse_experiment(tomllib.loads(recipe_to_toml(recipe)))
    assert again.to_dict() == recipe.to_dict() and again.description == recipe.description


@pytest.mark.parametrize("path", sorted((RECIPES / "train").glob("*.toml")), ids=lambda p: p.stem)
def test_shipped_training_recipes_load_and_write_back_to_themselves(path):
    import tomllib

    recipe = load_recipe(path)
    assert parse_recipe(tomllib.loads(recipe_to_toml(recipe))).to_dict() == recipe.to_dict()
