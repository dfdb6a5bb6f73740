#!/usr/bin/env bash
# The Dockerfile's runtime image, checked without a Docker engine:
#   - the model is copied outside every VOLUME (a volume or bind mount there
#     would hide it) and SIAMESED_MODEL points at that copy;
#   - the key file lives in the data volume, so the generated key survives
#     restarts, and listening on every interface is what the image does
#     (which the daemon only allows with a key);
#   - the health check asks /healthz, the one route that needs no key.
# usage: dockerfile.sh DOCKERFILE
set -euo pipefail
df=$1
fail() { echo "FAIL: $*" >&2; exit 1; }
runtime=$(sed -e :a -e '/\\$/N; s/\\\n//; ta' "$df" | awk '/^FROM /{n++} n==2')   # the second stage, continuation lines joined
[ -n "$runtime" ] || fail "no runtime stage"
volumes=$(sed -n 's/^VOLUME  *//p' <<<"$runtime" | tr -d '[]",')
[ -n "$volumes" ] || fail "no VOLUME"
model_dst=$(grep -E '^COPY .*model\.safetensors' <<<"$runtime" | awk '{print $NF}')
[ -n "$model_dst" ] || fail "the runtime image copies no model"
env_val() { { grep -oE "SIAMESED_$1=[^ ]+" <<<"$runtime" || true; } | head -1 | cut -d= -f2; }
[ "$(env_val MODEL)" = "$model_dst" ] || fail "SIAMESED_MODEL is '$(env_val MODEL)', the model is at $model_dst"
keyfile=$(env_val API_KEY_FILE)
[ -n "$keyfile" ] || fail "no SIAMESED_API_KEY_FILE: a container would serve without a key"
in_volume=0
for v in $volumes; do
    case "$model_dst" in "$v"/*|"$v") fail "the model ($model_dst) is inside VOLUME $v";; esac
    case "$keyfile" in "$v"/*) in_volume=1;; esac
done
[ "$in_volume" = 1 ] || fail "the key file $keyfile is not in a volume: a new container would get a new key"
[ "$(env_val LISTEN)" = "0.0.0.0:8080" ] || fail "SIAMESED_LISTEN is '$(env_val LISTEN)'"
grep -q 'HEALTHCHECK.*/healthz' <<<"$runtime" || fail "the health check does not use /healthz"
echo "ok: model at $model_dst outside volume(s) $volumes; key file $keyfile in the volume"
