#!/usr/bin/env bash
# Prepare what travels to a lent GPU machine with the working tree (both folders are ignored by
# git; name them in the device tool's `carry`):
#   data/packs/cifar10-jpeg.npz   the CIFAR-10 JPEG copy as one dataset pack (about 18 MiB)
#   data/device-lib/              pure-Python packages the GPU machine lacks (fastjsonschema,
#                                 which checks protocols there) and COMMIT, the commit to record
# Usage: scripts/prepare-gpu.sh [SRC]   (SRC defaults to ../shared/datasets/cifar10-jpeg)
set -euo pipefail
cd "$(dirname "$0")/.."
src=${1:-../shared/datasets/cifar10-jpeg}
py=${PYTHON:-.venv/bin/python}
[ -x "$py" ] || py=python3
# Pack again when there is no pack or it is not a current, intact one (an older pack version).
if ! "$py" -c 'import sys; from ncrepro.data import pack_info; pack_info(sys.argv[1])' \
        data/packs/cifar10-jpeg.npz 2>/dev/null; then
    "$py" -m ncrepro.data pack --overwrite "$src" data/packs/cifar10-jpeg.npz
fi
rm -rf data/device-lib
mkdir -p data/device-lib
fjs=$("$py" -c 'import fastjsonschema, os; print(os.path.dirname(fastjsonschema.__file__))')
cp -r "$fjs" data/device-lib/
find data/device-lib -name '__pycache__' -prune -exec rm -rf {} +
commit=$(git rev-parse HEAD)
[ -z "$(git status --porcelain --untracked-files=no -- . ":(exclude)data")" ] || commit="$commit-dirty"
echo "$commit" > data/device-lib/COMMIT
total=$(du -cb data/packs data/device-lib | tail -1 | cut -f1)
# A tracked file missing from the working tree (a finished run's checkpoint, deleted before its
# commit) makes du fail; count what is there rather than stop.
tracked=$(git ls-files -z | { xargs -0 du -cb 2>/dev/null || true; } | tail -1 | cut -f1)
echo "prepared: data/packs ($(du -sh data/packs | cut -f1)), data/device-lib ($(du -sh data/device-lib | cut -f1)), commit $commit"
echo "travelling: $(( (total + tracked) / 1048576 )) MiB of the 64 MiB allowed"
echo 'run (device tool): command "scripts/gpu-sweep.sh book-gpu 8.5", carry ["data/packs", "data/device-lib"], timeout_s 600'
