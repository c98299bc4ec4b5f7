"""The workspace's layout (core/workspace/layout.py) names every file and folder once; its docstring is the
workspace's tree for people, so the two must say the same."""
import re

from lungkd.core.models.card import CARD_FILE as CARD_FILE_OF_MODELS
from lungkd.core.workspace import layout

NAMES = {name: value for name, value in vars(layout).items()
         if re.fullmatch(r"[A-Z_]+_(FILE|FOLDER|TOML|JSON|MARKDOWN|HTML)", name) and isinstance(value, str)}


def test_the_tree_in_the_docstring_names_every_file_and_folder_constant_and_its_value():
    tree = layout.__doc__
    assert len(NAMES) >= 18
    for name, value in NAMES.items():
        assert name in tree, f"{name} is not in the tree"
        assert value.rstrip("/") in tree, f"{name}'s value {value!r} is not in the tree"


def test_the_tree_names_no_constant_that_is_not_there():
    named = set(re.findall(r"\b([A-Z][A-Z_]+_(?:FILE|FOLDER|TOML|JSON|MARKDOWN|HTML))\b", layout.__doc__))
    assert named == set(NAMES)


def test_the_model_card_file_is_the_layouts():
    assert CARD_FILE_OF_MODELS is layout.CARD_FILE and layout.REPORT_FILES == (
        layout.REPORT_JSON, layout.REPORT_MARKDOWN, layout.REPORT_HTML)
