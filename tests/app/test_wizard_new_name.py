"""A recipe changed after an experiment of its name was started: the wizard proposes a new name and says what
differs in words, and a Run refused for it offers "Start as a new experiment" instead of a Resume that cannot
work."""
import torch  # noqa: F401  - before PySide6, as in the entry point
from PySide6.QtWidgets import QWizard

from lungkd.app.training.wizard import START_NEW, ReviewPage, RunPage, TeachersPage
from lungkd.core.recipes import SyntheticData
from lungkd.core.workspace.layout import RECIPE_FILE, experiment_folder
from recorded_experiment import recorded_experiment
from test_wizard_plain_folder import LITERAL_MARKS, plain_folder


def _go_to(wizard, page_type):
    while not isinstance(wizard.currentPage(), page_type):
        wizard.next()
    return wizard.currentPage()


def test_other_data_under_a_started_name_gets_a_new_name_and_the_difference_in_words(wizard, qtbot, model_folder,
                                                                                      synthetic_dir, tmp_path):
    recorded_experiment(wizard.workspace, model_folder, "demo-cpu")  # the demo was run before
    folder = plain_folder(synthetic_dir, tmp_path / "my recordings")
    data = wizard.currentPage()
    qtbot.keyClicks(data.folder, str(folder))
    wizard.next()
    qtbot.waitUntil(lambda: isinstance(wizard.currentPage(), TeachersPage), timeout=60000)
    review = _go_to(wizard, ReviewPage)
    assert review.name.text() == "my-recordings"  # after the new data, not "demo-cpu"
    note = review.note.text()
    assert note.startswith("An experiment named 'demo-cpu' was started with another recipe: the data was 14 "
                           f"generated recordings (seed 1), now the folder {folder}; ")
    assert "other settings. This one is named 'my-recordings' so that both are kept" in note
    assert not any(mark in note for mark in LITERAL_MARKS)
    qtbot.wait(100)  # the layout takes the note's lines, as on screen
    review.grab().save(str(tmp_path / "review-new-name.png"))

    review.name.setText("demo-cpu")  # the old name again: said at once, and Next refuses it
    assert review.error.text().startswith("An experiment named 'demo-cpu' was started with another recipe: the data")
    assert review.error.text().endswith("Choose another name to start a new experiment.")
    wizard.next()
    assert wizard.currentPage() is review
    review.name.setText("my-recordings")
    assert review.error.text() == ""
    run = _go_to(wizard, RunPage)
    assert wizard.recipe.name == "my-recordings" and run.start_button.text() == "Run"


def test_a_run_refused_for_its_name_offers_a_new_experiment_not_resume(wizard, qtbot, model_folder):
    generated = wizard.recipe.data.replace(synthetic=SyntheticData(recordings=12, seed=3))
    wizard.recipe = wizard.recipe.replace(data=generated)  # small, for the part of the run this test starts
    wizard.pages[0].show_recipe(wizard.recipe)
    run = _go_to(wizard, RunPage)
    recorded_experiment(wizard.workspace, model_folder, "demo-cpu")  # another window took the name meanwhile
    run.start()
    qtbot.waitUntil(lambda: run.start_button.text() == START_NEW, timeout=60000)
    message = run.error.text()
    assert "experiment 'demo-cpu' was started with another recipe: the data was 14 generated recordings (seed 1), " \
           "now 12 generated recordings (seed 3)" in message and not any(m in message for m in LITERAL_MARKS)
    assert "Resume cannot help" in run.stage.text()  # no Resume: it would be refused the same way
    assert message not in run.log.toPlainText()  # said once, below the log
    run.grab().save(str(wizard.workspace.parent / "run-refused-name.png"))

    run.start_button.click()  # starts this recipe under a free name; cancelled at once, it keeps what it began
    run.cancel_button.click()
    qtbot.waitUntil(lambda: run.start_button.text() == "Resume", timeout=120000)
    assert wizard.recipe.name == "synthetic-12-seed3-noise0"
    assert "Started as the new experiment 'synthetic-12-seed3-noise0'." in run.log.toPlainText()
    assert (experiment_folder(wizard.workspace, wizard.recipe.name) / RECIPE_FILE).is_file()
    assert not wizard.button(QWizard.WizardButton.NextButton).isEnabled()
