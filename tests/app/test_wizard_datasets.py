"""The wizard's Data page on a folder of each format LungKD reads: what it recognised, the mapped counts, each
source label's class and what was left out and why; and a recipe that pools several datasets."""
import pytest
import torch  # noqa: F401  - before PySide6, as in the entry point

from lungkd.app.training.wizard import DataPage
from lungkd.core.data.synth_layouts import write_synthetic_layout
from lungkd.core.recipes import parse_experiment

FORMAT_WORDS = {"sprsound": "SPRSound with its official split (train and test folders)",
                "hf_lung": "HF_Lung with its official split (train and test folders)",
                "table": "Label table with no official split",
                "audacity": "Audacity label tracks with its official split (train and test folders)"}


def _inspect(page: DataPage, qtbot) -> None:
    page.inspect.click()
    qtbot.waitUntil(lambda: page.stats is not None, timeout=60000)


@pytest.mark.parametrize("layout", sorted(FORMAT_WORDS))
def test_the_data_page_shows_each_format_with_its_mapped_counts_and_what_was_left_out(wizard, qtbot, tmp_path,
                                                                                      layout):
    summary = write_synthetic_layout(tmp_path / layout, layout, 12, 5)
    data = wizard.currentPage()
    qtbot.keyClicks(data.folder, str(tmp_path / layout))
    _inspect(data, qtbot)
    assert data.detected.text().startswith(FORMAT_WORDS[layout] + ": 12 recordings (12 with audio)")
    rows = {data.counts.item(r, 0).text(): [data.counts.item(r, c).text() for c in range(1, 5)]
            for r in range(data.counts.rowCount())}
    assert rows["all"] == [str(n) for n in summary.cycles.values()]  # the classes after the label map
    for split, counts in summary.cycles_by_split.items():
        assert rows[split] == [str(n) for n in counts.values()]
    mapping = data.mapping.text()
    first = next(iter(summary.source_labels))
    assert f"{first} → " in mapping and f"({summary.source_labels[first]})" in mapping
    assert "Left out: " in mapping and "of audio in no cycle (unlabelled time, not taken as normal)" in mapping
    if layout == "sprsound":
        assert "recordings annotated Poor Quality" in mapping
    if layout == "table":  # no train/test folders: the page takes the patient-wise split and shows it
        assert data.split.currentText() == "patient" and wizard.recipe.data.split == "patient"
        assert "of the patients held out for testing" in data.split_note.text()
    data.grab().save(str(tmp_path / f"data-page-{layout}.png"))


def test_a_recipe_of_several_datasets_is_shown_pooled_and_kept_as_it_is(wizard, qtbot):
    recipe = parse_experiment({
        "name": "pooled", "data": [{"name": "a", "synthetic": {"recordings": 8, "seed": 1}},
                                   {"name": "b", "synthetic": {"recordings": 8, "seed": 2, "layout": "audacity"}}],
        "teachers": {"arch": "cnn6", "size": "tiny", "k": 1}})
    wizard.recipe = recipe
    data = wizard.currentPage()
    data.show_recipe(recipe)
    assert not data.folder.isEnabled() and not data.synthetic.isEnabled()
    assert data.folder.text() == "a + b (the recipe's 2 datasets)"
    data.selection.setCurrentText("last")
    _inspect(data, qtbot)
    assert data.detected.text().startswith("2 datasets pooled: 16 recordings")
    assert wizard.recipe.data == recipe.data and wizard.recipe.selection == "last"
