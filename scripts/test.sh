#!/bin/sh
# Builds siamesed and runs every test: the README's test command calls this.
#   scripts/test.sh [BUILDDIR] [extra meson setup options...]
# A fresh BUILDDIR is configured with warnings as errors; an existing one is reused.
set -eu
cd "$(dirname "$0")/.."
builddir=${1:-build-test}
[ $# -gt 0 ] && shift
if [ ! -f "$builddir/build.ninja" ]; then
    meson setup "$builddir" --buildtype=debugoptimized -Dwerror=true "$@"
fi
meson compile -C "$builddir"
meson test -C "$builddir" --print-errorlogs --num-processes 2
