"""The run plots tell every run of a large experiment apart: the paper's Table 1 recipe trains 55 runs (11 kinds
of 5 seeds); each curve has its own colour, line and marker, and the legend (one entry per kind, then per seed)
is short enough to read beside the plots without covering them."""
import torch  # noqa: F401  - before PySide6, as in the entry point

from lungkd.app.training.wizard import RunPage
from lungkd.core.kd.experiment import planned_runs
from lungkd.core.recipe_files import find_recipe
from lungkd.core.recipes import load_experiment


def run_page(wizard) -> RunPage:
    while not isinstance(wizard.currentPage(), RunPage):
        wizard.next()
    return wizard.currentPage()


def test_every_run_of_the_paper_students_recipe_has_its_own_look_and_the_legend_names_kinds_and_seeds(
        wizard, qtbot, tmp_path):
    runs = [run.name for run in planned_runs(load_experiment(find_recipe("paper-students")))]
    assert len(runs) == 55  # 5 teachers; 5 students of 5 seeds, each beside its hard-label baseline
    page = run_page(wizard)
    wizard.resize(1200, 800)
    for epoch in (1, 2):
        for index, run in enumerate(runs):
            page._plot(run, {"epoch": epoch, "loss": 1 / epoch + index / 100, "test": {"score": 40 + index}})

    looks = set()
    for run in runs:
        curve = page.series[run][4]  # the Score curve
        pen = curve.opts["pen"]
        looks.add((pen.color().name(), pen.style(), curve.opts["symbol"]))
    assert len(looks) == len(runs)  # no two runs drawn alike

    kinds = [label.text for _, label in page.legend.items]
    assert kinds[:3] == ["teacher", "student cnn6 mean_5", "baseline cnn6 hard"] and len(kinds) == 11
    assert [label.text for _, label in page.seed_legend.items] == [f"seed {s}" for s in range(1, 6)]
    qtbot.wait(50)
    for legend in (page.legend.sceneBoundingRect(), page.seed_legend.sceneBoundingRect()):
        assert not any(legend.intersects(plot.vb.sceneBoundingRect()) for plot in (page.loss_plot, page.score_plot))
        assert legend.height() <= page.curves.sceneRect().height()  # every entry can be seen
    page.grab().save(str(tmp_path / "run-plots.png"))


def test_runs_of_one_seed_need_no_seed_entries_and_a_new_run_clears_the_styles(wizard):
    page = run_page(wizard)
    for run in ("teacher seed 1", "student cnn6 mean_1 seed 1"):
        page._plot(run, {"epoch": 1, "loss": 1.0, "test": {"score": 50.0}})
    assert [label.text for _, label in page.legend.items] == ["teacher", "student cnn6 mean_1"]
    assert not page.seed_legend.items  # one seed: nothing to tell apart
    colours = {page.series[run][3].opts["pen"].color().name() for run in page.series}
    assert len(colours) == 2
    page.reset()  # a new run starts with the first colour again
    page._plot("student cnn6 mean_1 seed 1", {"epoch": 1, "loss": 1.0})
    assert page.series["student cnn6 mean_1 seed 1"][3].opts["pen"].color().name() == "#0072b2"
