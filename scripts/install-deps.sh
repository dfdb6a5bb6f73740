#!/bin/sh
# Installs everything siamesed needs to build, test and run on Debian 12, from
# Debian's own packages. Idempotent; skips apt when every package is present.
#   scripts/install-deps.sh          build + run + test dependencies
#   scripts/install-deps.sh --bench  also what bench/ uses (wrk, python3-torch, python3-faiss, bc,
#                                    libspng-dev and libdeflate-dev for bench_png)
#   scripts/install-deps.sh --no-browser  without what tests/browser needs (the
#                                         browser test then skips: a Docker build)
# The browser tests (tests/browser) need Debian's chromium and the npm packages
# pinned in tests/browser/package-lock.json (npm ci, when the tree is here);
# Node.js and npm are the machine's, or Debian's when there are none.
set -eu
root="$(cd "$(dirname "$0")/.." && pwd)"
pkgs="gcc pkg-config meson ninja-build git ca-certificates
libopenblas-dev libdnnl-dev libmicrohttpd-dev libcjson-dev libsqlite3-dev sqlite3 check
libpng-dev libjpeg62-turbo-dev zlib1g-dev nettle-dev libcurl4-openssl-dev
python3 python3-numpy python3-yaml dataset-fashion-mnist clang-format gnutls-bin
libpq-dev postgresql haproxy"
browser=yes
for arg in "$@"; do
    case "$arg" in
    --bench) pkgs="$pkgs wrk python3-torch python3-faiss bc procps libspng-dev libdeflate-dev" ;;
    --no-browser) browser=no ;;
    *) echo "install-deps.sh: unknown option $arg" >&2; exit 2 ;;
    esac
done
if [ "$browser" = yes ]; then
    pkgs="$pkgs chromium"
    command -v npm >/dev/null 2>&1 || pkgs="$pkgs nodejs npm"
fi
missing=""
for p in $pkgs; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
if [ -n "$missing" ]; then
    SUDO=""
    [ "$(id -u)" -ne 0 ] && SUDO=sudo
    echo "installing:$missing" >&2
    $SUDO apt-get update -q
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends $missing
fi
# npm ci again only when the lock file changed since the last install.
b="$root/tests/browser"
if [ "$browser" = yes ] && [ -f "$b/package-lock.json" ] &&
    ! cmp -s "$b/package-lock.json" "$b/node_modules/.siamesed-lock" 2>/dev/null; then
    (cd "$b" && npm ci --no-audit --no-fund && cp package-lock.json node_modules/.siamesed-lock)
fi
