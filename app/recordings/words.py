"""What the Studio calls the things it marks, the same on every view: a prediction that differs from the annotation
is not the same warning as a sound outside the model's training data, and a generated recording is no patient's."""

DIFFERS = "differs from the annotation"  # the model predicts another class than the annotated one
OUTSIDE = "outside the model's training data"  # the sound is beyond the model's limit: its prediction is doubtful
GENERATED = "generated recording, not a real patient"  # written by core.data.synth, whatever its name says


def differ(count: int) -> str:
    """'1 differs from the annotation', '3 differ from the annotation'."""
    return f"{count} {DIFFERS if count == 1 else DIFFERS.replace('differs', 'differ', 1)}"
