#!/usr/bin/env bash
# Install the datasets that have a system package, for the dev/test set-up; safe to rerun.
#
#   scripts/install_data.sh
#
# Fashion-MNIST (60k/10k) comes from Debian's dataset-fashion-mnist package, which puts the
# original IDX files in /usr/share/datasets/fashion-mnist/; creditlab reads them from there, and
# the tests then run on the real data. Without apt-get or root this only says what to do: the
# dataset is otherwise downloaded on first use (into $CREDITLAB_DATA, default ~/.cache/creditlab).
# When apt is busy past setup.sh's bounded wait or fails, the set-up goes on: the dataset is
# then downloaded now, through creditlab's own downloader, if the venv is there; else on first use.
# MNIST's offline 5,000-image subset comes with the `data` extra (pip install -e ".[data]").
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup.sh          # only its apt functions: waiting for the lock, retrying

# The fallback: creditlab's downloader (checksummed, resumable) into the data directory.
download() {
    if [ ! -x .venv/bin/python ]; then
        echo "install_data: Fashion-MNIST will be downloaded on first use (into \$CREDITLAB_DATA, default ~/.cache/creditlab)" >&2
        return 0
    fi
    echo "install_data: downloading Fashion-MNIST instead (into \$CREDITLAB_DATA, default ~/.cache/creditlab)" >&2
    .venv/bin/python - <<'PY' || true
import sys
from engine.data.registry import load_images
try:
    source = load_images("fashion-mnist").meta.get("source", "?")
except Exception as exc:        # no network, a bad mirror: one line, and the set-up goes on
    sys.exit(f"install_data: the download failed too ({str(exc).splitlines()[0][:200]}); "
             "tests on Fashion-MNIST will try again or skip")
print(f"install_data: Fashion-MNIST is ready ({source})", file=sys.stderr)
PY
}

if [ -f /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz ]; then
    exit 0
fi
if command -v apt-get >/dev/null && [ "$(id -u)" = 0 ]; then
    if ! apt_install dataset-fashion-mnist; then
        echo "install_data: could not install Debian's dataset-fashion-mnist" >&2
        download
    fi
elif command -v apt-get >/dev/null; then
    echo "install_data: run 'sudo apt-get install dataset-fashion-mnist' for the offline Fashion-MNIST" \
         "(otherwise it is downloaded on first use)" >&2
else
    echo "install_data: no apt-get here; Fashion-MNIST will be downloaded on first use" \
         "(into \$CREDITLAB_DATA, default ~/.cache/creditlab)" >&2
fi
