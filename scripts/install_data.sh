#!/usr/bin/env bash
# Install the datasets that have a system package, for the dev/test set-up; safe to rerun.
#
#   scripts/install_data.sh
#
# Fashion-MNIST (60k/10k) comes from Debian's dataset-fashion-mnist package, which puts the
# original IDX files in /usr/share/datasets/fashion-mnist/; creditlab reads them from there, and
# the tests then run on the real data. Without apt-get or root this only says what to do: the
# dataset is otherwise downloaded on first use (into $CREDITLAB_DATA, default ~/.cache/creditlab).
# MNIST's offline 5,000-image subset comes with the `data` extra (pip install -e ".[data]").
set -euo pipefail

if [ -f /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz ]; then
    exit 0
fi
if command -v apt-get >/dev/null && [ "$(id -u)" = 0 ]; then
    export DEBIAN_FRONTEND=noninteractive
    if ! apt-get install -y -qq dataset-fashion-mnist >/dev/null 2>&1; then
        apt-get update -qq >/dev/null
        apt-get install -y -qq dataset-fashion-mnist >/dev/null
    fi
elif command -v apt-get >/dev/null; then
    echo "install_data: run 'sudo apt-get install dataset-fashion-mnist' for the offline Fashion-MNIST" \
         "(otherwise it is downloaded on first use)" >&2
else
    echo "install_data: no apt-get here; Fashion-MNIST will be downloaded on first use" \
         "(into \$CREDITLAB_DATA, default ~/.cache/creditlab)" >&2
fi
