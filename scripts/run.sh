#!/bin/sh
# Builds siamesed (release) and runs the daemon with the default settings: the
# README's main command calls this. Arguments are passed to siamesed.
# With no model at the default path, siamesed first trains one on the packaged
# Fashion-MNIST (about a minute), then serves on 127.0.0.1:8080 -- unless the
# database already holds samples: then the model file is missing by mistake
# (a mistyped --model), and siamesed names the model that made them instead.
set -eu
cd "$(dirname "$0")/.."
[ -f build/build.ninja ] || meson setup build --buildtype=release
meson compile -C build
exec ./build/siamesed "$@"
