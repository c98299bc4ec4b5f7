#!/usr/bin/env bash
# What a user does with a fresh bundle, checked by what the user sees (windows rendered, datasets listed,
# models trained, predictions printed); packaging/smoke.sh runs this in a scratch folder with a bare
# environment, no network and the source tree and Python installs hidden. Arguments: the bundle folder and a
# real recording (with its .txt annotation beside it).
set -euo pipefail
BUNDLE=$1
RECORDING=$2
step() { printf '\n== %s\n' "$*"; }
fail() { echo "FAIL: $*"; exit 1; }
picture() { [ -s "$1" ] && [ "$(head -c 8 "$1" | od -An -tx1 | tr -d ' \n')" = 89504e470d0a1a0a ] ||
    fail "$1 is not a PNG picture"; echo "wrote $1 ($(stat -c %s "$1") bytes)"; }
workspace="$HOME/.local/share/LungKD/workspace"  # the user data folder, as for an installed app

step "lungkd --version"
"$BUNDLE/lungkd" --version | tee version.txt
grep -q "^Location *bundle $BUNDLE/_internal" version.txt || fail "not running from $BUNDLE"

step "lungkd-studio, first start: generated recordings analysed by the shipped demo model"
"$BUNDLE/lungkd-studio" --screenshot first-start.png 2> first-start.err || { cat first-start.err >&2; fail "no window"; }
cat first-start.err >&2
picture first-start.png
# the analyses ran in their helper process: the frozen bundle starts it as the launcher's multiprocessing child
! grep -q "no helper process could start" first-start.err || fail "the Studio's analysis helper did not start"
echo "workspace: $workspace"
# the demo recordings the window lists, as `lungkd data stats` sees them
"$BUNDLE/lungkd" data stats "$workspace/datasets/studio-demo" | tee demo-stats.txt
grep -q "recordings 6 (6 with audio" demo-stats.txt || fail "the first start did not write its 6 demo recordings"

step "lungkd-studio --open $(basename "$RECORDING") --screenshot"
"$BUNDLE/lungkd-studio" --open "$RECORDING" --screenshot real-recording.png
picture real-recording.png

step "lungkd predict (the shipped demo model) on $(basename "$RECORDING")"
"$BUNDLE/lungkd" predict "$BUNDLE/_internal/lungkd/resources/models/demo-cnn6" "$RECORDING" 2>predict.err | tee predict.txt
cat predict.err >&2
grep -q " cycles from annotation" predict.txt || fail "predict printed no cycles"
# its cycles were found in its helper process (the Scout), started as the launcher's multiprocessing child
! grep -q "helper process finding recordings' cycles stopped" predict.err || fail "lungkd predict's helper did not start"

step "lungkd visit-report (the shipped demo model) on $(basename "$RECORDING"), as a PDF"
"$BUNDLE/lungkd" visit-report "$RECORDING" --model "$BUNDLE/_internal/lungkd/resources/models/demo-cnn6" \
    --out visit.pdf
[ "$(head -c 5 visit.pdf)" = "%PDF-" ] || fail "no PDF written (Qt's PDF writer, started as the bundle with its flag)"
echo "visit.pdf: $(stat -c %s visit.pdf) bytes"

# A tiny experiment: 2 teachers and a distilled student, 1 epoch each, on 24 generated recordings.
tiny_experiment() {  # NAME EXECUTOR
    cat > "$1.toml" <<EOF
name = "$1"
executor = "$2"
[data]
synthetic = { recordings = 24, seed = 0 }
split = "patient"
[teachers]
arch = "cnn6"
size = "tiny"
k = 2
[teachers.train]
epochs = 1
lr = 1e-3
specaugment = false
[[students]]
arch = "cnn6"
size = "tiny"
labels = "mean_2"
[students.train]
epochs = 1
lr = 1e-3
specaugment = false
EOF
}

step "lungkd run: a tiny experiment, each run in a worker process (the process executor)"
tiny_experiment tiny-process process
"$BUNDLE/lungkd" run tiny-process.toml | tee run-process.txt
grep -q "Teacher seed 1: training in worker process" run-process.txt || fail "no worker process trained teacher 1"
grep -q "^report: " run-process.txt || fail "the experiment wrote no report"
student="$workspace/experiments/tiny-process/students/cnn6-mean_2-seed-1/model"

step "lungkd run: the same in this process (the inprocess executor)"
tiny_experiment tiny-inprocess inprocess
"$BUNDLE/lungkd" run tiny-inprocess.toml | tee run-inprocess.txt
grep -q "^report: " run-inprocess.txt || fail "the experiment wrote no report"
"$BUNDLE/lungkd" runs

step "lungkd models trained: the trained models, with the warnings they carry"
"$BUNDLE/lungkd" models trained | tee trained.txt
grep -q "tiny-process · student cnn6 mean_2 · seed 1" trained.txt || fail "the trained student is not listed"

step "lungkd predict with the student just trained"
"$BUNDLE/lungkd" predict "$student" "$RECORDING" | tee predict-student.txt
grep -q " cycles from annotation" predict-student.txt || fail "predict printed no cycles"

step "lungkd train: every architecture of the registry, tiny, 1 epoch on 12 generated recordings"
for arch in cnn6 resnet18 efficientnet_b0 ast audio_clap bts; do
    cat > "tiny-$arch.toml" <<EOF
name = "tiny-$arch"
selection = "last"
[data]
synthetic = { recordings = 12, seed = 1 }
[model]
arch = "$arch"
size = "tiny"
[train]
epochs = 1
batch_size = 16
EOF
    "$BUNDLE/lungkd" train "tiny-$arch.toml" > "train-$arch.txt" 2>&1 || { cat "train-$arch.txt"; fail "$arch"; }
    grep -E "^(epoch|selected|model saved)" "train-$arch.txt" | sed "s/^/$arch: /"
done
echo "PASS: the bundle ran every step"
