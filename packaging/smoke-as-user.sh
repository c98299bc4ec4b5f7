#!/usr/bin/env bash
# What a user does with a fresh bundle; packaging/smoke.sh runs this in a scratch folder with a bare
# environment, no network and the source tree and Python installs hidden. Arguments: the bundle folder and
# a real recording (with its .txt annotation beside it).
set -euo pipefail
BUNDLE=$1
RECORDING=$2
step() { printf '\n== %s\n' "$*"; }
require() { [ -e "$1" ] || { echo "FAIL: $1 is missing"; exit 1; }; }

step "lungkd --version"
"$BUNDLE/lungkd" --version | tee version.txt
grep -q "^Location *bundle $BUNDLE/_internal" version.txt || { echo "FAIL: not running from $BUNDLE"; exit 1; }

step "lungkd-studio, first start: generated recordings analysed by the shipped demo model"
"$BUNDLE/lungkd-studio" --screenshot first-start.png
require first-start.png
workspace="$HOME/.local/share/LungKD/workspace"  # the user data folder, as for an installed app
require "$workspace/datasets/studio-demo/.complete"
echo "workspace: $workspace"

step "lungkd-studio --open $(basename "$RECORDING") --screenshot"
"$BUNDLE/lungkd-studio" --open "$RECORDING" --screenshot real-recording.png
require real-recording.png
echo "wrote real-recording.png ($(stat -c %s real-recording.png) bytes)"

step "lungkd predict (the shipped demo model) on $(basename "$RECORDING")"
"$BUNDLE/lungkd" predict "$BUNDLE/_internal/lungkd/resources/models/demo-cnn6" "$RECORDING"

step "lungkd run: the shipped CPU demo with 1 epoch per model"
sed -e 's/^epochs = .*/epochs = 1/' -e 's/^name = .*/name = "demo-cpu-1-epoch"/' \
    "$BUNDLE/_internal/lungkd/resources/recipes/demo-cpu.toml" > demo-cpu-1-epoch.toml
"$BUNDLE/lungkd" run demo-cpu-1-epoch.toml
require "$workspace/experiments/demo-cpu-1-epoch/report.md"
"$BUNDLE/lungkd" runs

step "lungkd train: every architecture of the registry, tiny, 1 epoch on 12 generated recordings"
for arch in cnn6 resnet18 efficientnet_b0 ast audio_clap bts; do
    cat > "tiny-$arch.toml" <<EOF
name = "tiny-$arch"
[data]
synthetic = { recordings = 12, seed = 1 }
[model]
arch = "$arch"
size = "tiny"
[train]
epochs = 1
batch_size = 16
selection = "last"
EOF
    "$BUNDLE/lungkd" train "tiny-$arch.toml" 2>&1 | grep -E "^(epoch|selected|model saved)" | sed "s/^/$arch: /"
done
echo "PASS: the bundle ran every step"
