#!/usr/bin/env bash
# Set up ./.venv with creditlab installed (editable) and the given extras; safe to rerun.
#
#   scripts/setup.sh            # the dashboard: creditlab[app]
#   scripts/setup.sh dev        # everything for the tests, plus Debian's chromium for browser tests
#
# torch is installed first, on its own, because a loose `torch>=2.2` would let pip pick the
# newest release, a multi-GB CUDA build. CREDITLAB_TORCH says which torch to take; the default
# is the release this project is tested with, which these CPU-only machines hold as a local
# wheel and which on a user's GPU machine is PyPI's usual (CUDA) build. A torch already in the
# venv is kept.
set -euo pipefail
cd "$(dirname "$0")/.."
extras="${1:-app}"
python="${PYTHON:-python3}"

if [ ! -x .venv/bin/python ]; then
    "$python" -m venv .venv
fi
if ! .venv/bin/python -c "import torch" 2>/dev/null; then
    .venv/bin/pip install --quiet "${CREDITLAB_TORCH:-torch==2.13.0}"
fi
.venv/bin/pip install --quiet -e ".[${extras}]"

if [ "$extras" = "dev" ]; then
    scripts/install_data.sh          # Fashion-MNIST from Debian's package, so tests use real data
fi
if [ "$extras" = "dev" ] && [ ! -x /usr/bin/chromium ]; then
    # Playwright cannot download its own browser here; the browser tests use Debian's.
    if command -v apt-get >/dev/null && [ "$(id -u)" = 0 ]; then
        apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
    else
        echo "setup: no /usr/bin/chromium; browser tests will be skipped (install Debian's chromium to run them)" >&2
    fi
fi
