"""The tiny experiment the engine tests run: three tiny CNN6 teachers, two students beside their baselines,
the curated and second-generation ensembles, on 16 synthetic recordings with 10 % wrong labels."""

RECIPE = """
name = "{name}"
selection = "best_test"
deterministic = true

[data]
synthetic = {{ recordings = {recordings}, seed = 3, label_noise = 0.1 }}

[teachers]
arch = "cnn6"
size = "tiny"
k = 3
together = {together}

[teachers.train]
epochs = 2
batch_size = 16

[ensembles]
curated_k = 2

[[students]]
arch = "cnn6"
size = "tiny"
labels = "{labels}"
seeds = [1, 2]
baseline = true

[students.train]
epochs = 2
batch_size = 16

[second_generation]
student = 1
"""


def tiny_recipe(tmp_path, name="tiny", labels="mean_3", recordings=16, together=True):
    """The recipe as a file; `together` trains the teachers as one batched model (the default for CNN6)."""
    path = tmp_path / f"{name}.toml"
    path.write_text(RECIPE.format(name=name, labels=labels, recordings=recordings, together=str(together).lower()))
    return path
