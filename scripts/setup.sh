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
#
# Only the venv is required. The Debian packages (chromium, dataset-fashion-mnist) are extras:
# on a busy machine another process (unattended-upgrades, someone else's set-up) may hold apt's
# lock for minutes, so the set-up waits for it, saying what it waits for, at most
# CREDITLAB_APT_WAIT seconds in all (default 600), retries apt, and when it still fails goes on
# without the package and says what that costs. Sourcing this file only defines the apt functions
# (install_data.sh and the tests use them).

# The locks apt and dpkg take (CREDITLAB_APT_LOCKS lets a test point at a lock of its own).
APT_LOCKS="${CREDITLAB_APT_LOCKS:-/var/lib/dpkg/lock-frontend /var/lib/dpkg/lock /var/lib/apt/lists/lock /var/cache/apt/archives/lock}"

# Who holds a POSIX lock on the file $1, as "pid N (command)"; nothing when no one does.
# Read from /proc/locks rather than by taking the lock, which could make the holder's next
# apt call fail. Matched on the inode only: on overlayfs the device there is the upper layer's.
apt_lock_holder() {
    local file=$1 ino pid cmd
    [ -e "$file" ] && [ -r /proc/locks ] || return 0
    ino=$(stat -Lc %i "$file" 2>/dev/null) || return 0
    # "1: POSIX  ADVISORY  WRITE <pid> <maj>:<min>:<inode> <start> <end>"; "->" lines are waiters.
    pid=$(awk -v ino="$ino" '$2 != "->" { n = split($6, d, ":"); if (n == 3 && d[3] == ino) { print $5; exit } }' \
          /proc/locks 2>/dev/null) || return 0
    [ -n "$pid" ] || return 0
    cmd=$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | cut -c1-80) || cmd="gone"
    echo "pid $pid (${cmd% })"
}

# Wait until no lock in APT_LOCKS is held, giving up after $1 seconds (at most one more),
# printing what it waits for at once and then every 30 s. Status 1 if a lock is still held at the end.
apt_wait_lock() {
    local limit=$1 start=$SECONDS last=$((SECONDS - 30)) lock holder busy
    while :; do
        busy=""
        for lock in $APT_LOCKS; do
            holder=$(apt_lock_holder "$lock")
            if [ -n "$holder" ]; then busy="$lock, held by $holder"; break; fi
        done
        [ -z "$busy" ] && return 0
        # SECONDS counts whole seconds, so ">= limit" could give up after limit - 1 real seconds
        if (( SECONDS - start > limit )); then
            echo "setup: apt is still busy after ${limit} s of waiting ($busy)" >&2
            return 1
        fi
        if (( SECONDS - last >= 30 )); then
            echo "setup: waiting for apt's lock $busy ($((SECONDS - start)) s so far, at most ${limit} s)" >&2
            last=$SECONDS
        fi
        sleep 1
    done
}

# One budget for waiting on apt per set-up (CREDITLAB_APT_WAIT seconds, default 600), shared by
# its apt steps through CREDITLAB_APT_DEADLINE: a machine that is busy for the first package is
# not waited for again, in full, for the next.
apt_wait_left() {
    local left=$(( CREDITLAB_APT_DEADLINE - $(date +%s) ))
    echo $(( left > 0 ? left : 0 ))
}

# apt-get install -y the packages $@, quietly: wait for the lock, then up to 3 tries (the
# package lists updated before the second, in case they were stale). Status 1, with the last
# try's output on stderr, if none succeeded.
apt_install() {
    local try out="" left
    export DEBIAN_FRONTEND=noninteractive
    export CREDITLAB_APT_DEADLINE="${CREDITLAB_APT_DEADLINE:-$(( $(date +%s) + ${CREDITLAB_APT_WAIT:-600} ))}"
    for try in 1 2 3; do
        apt_wait_lock "$(apt_wait_left)" || return 1      # still busy: waiting longer is no plan
        left=$(apt_wait_left)
        # apt's own lock timeout: for a process that takes the lock between our look and apt's.
        if (( try > 1 )); then
            apt-get -o DPkg::Lock::Timeout="$left" update -qq >/dev/null 2>&1 || true
        fi
        if out=$(apt-get -o DPkg::Lock::Timeout="$left" install -y -qq "$@" 2>&1); then
            return 0
        fi
        echo "setup: apt-get install $* failed (try $try of 3)" >&2
        if (( try < 3 )); then sleep "${CREDITLAB_APT_PAUSE:-5}"; fi    # a test shortens it
    done
    printf '%s\n' "$out" | tail -n 5 >&2
    return 1
}

main() {
    set -euo pipefail
    cd "$(dirname "$0")/.."
    local extras="${1:-app}" python="${PYTHON:-python3}"

    if [ ! -x .venv/bin/python ]; then
        "$python" -m venv .venv
    fi
    if ! .venv/bin/python -c "import torch" 2>/dev/null; then
        .venv/bin/pip install --quiet "${CREDITLAB_TORCH:-torch==2.13.0}"
    fi
    .venv/bin/pip install --quiet -e ".[${extras}]"

    if [ "$extras" = "dev" ]; then
        scripts/install_data.sh      # Fashion-MNIST from Debian's package, so tests use real data
    fi
    if [ "$extras" = "dev" ] && [ ! -x /usr/bin/chromium ]; then
        # Playwright cannot download its own browser here; the browser tests use Debian's.
        if command -v apt-get >/dev/null && [ "$(id -u)" = 0 ]; then
            if ! apt_install chromium; then
                echo "setup: could not install Debian's chromium; browser tests will be skipped" \
                     "(rerun scripts/setup.sh dev later to add it)" >&2
            fi
        else
            echo "setup: no /usr/bin/chromium; browser tests will be skipped (install Debian's chromium to run them)" >&2
        fi
    fi
}

if [ "${BASH_SOURCE[0]}" = "$0" ]; then
    main "$@"
fi
