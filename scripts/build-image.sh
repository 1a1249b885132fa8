#!/usr/bin/env bash
# Build the Dockerfile's image with buildah (no Docker daemon needed) and serve the README's click from
# its entrypoint. .ci/run runs it.
#   bash scripts/build-image.sh                      # base image: python:3.11-slim-bookworm from the registry
#   SI_IMAGE_BASE=local bash scripts/build-image.sh  # base image made here by debootstrap (Debian bookworm's
#                                                    # python3.11), for machines that reach no container registry
# Exits 0 with "image: skipped" only where no builder can run at all; a failing build or a built image
# that does not serve exits 1.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
tag=localhost/session-intent:ci
skip() { echo "image: skipped: $*"; exit 0; }

command -v buildah >/dev/null || skip "no buildah (Debian: apt-get install buildah)"
base_args=()
if [[ "${SI_IMAGE_BASE:-registry}" == local ]]; then
  command -v debootstrap >/dev/null || skip "no debootstrap for a local base image"
  root=$(mktemp -d)
  trap 'rm -rf "$root"' EXIT
  debootstrap --variant=minbase --include=python3,python3-venv,python-is-python3,ca-certificates \
    bookworm "$root" http://deb.debian.org/debian >/dev/null || skip "debootstrap could not build a base"
  # The host's CA bundle, so pip inside the build trusts what the host trusts (a TLS-inspecting proxy).
  cp /etc/ssl/certs/ca-certificates.crt "$root/etc/ssl/certs/ca-certificates.crt"
  command -v podman >/dev/null || skip "no podman to import the local base image"
  tar -C "$root" -c . | podman import --quiet --change "ENV PIP_CERT=/etc/ssl/certs/ca-certificates.crt" - \
    localhost/debian-python:3.11-bookworm >/dev/null
  base_args=(--build-arg PYTHON_IMAGE=localhost/debian-python:3.11-bookworm)
fi

# chroot isolation: RUN steps need no user namespaces or cgroups, which sandboxes often refuse.
buildah bud --isolation chroot --network host "${base_args[@]}" -t "$tag" "$repo" >/tmp/si-image-build.log 2>&1 \
  || { tail -n 30 /tmp/si-image-build.log; echo "image: the build failed" >&2; exit 1; }

container=$(buildah from "$tag")
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
entrypoint=$(buildah inspect "$tag" | python3 -c 'import json, sys; print(" ".join(json.load(sys.stdin)["OCIv1"]["config"]["Entrypoint"]))')
# setsid: the run leads its own process group, which the entrypoint's server and its embedded redis-server join
# (chroot isolation has no PID namespace to end them). buildah does not pass a TERM on to them, so the cleanup
# signals the whole group; before it did, every run left an orphaned redis-server behind.
# shellcheck disable=SC2086  # the entrypoint's words, as the image declares them
setsid buildah run --isolation chroot --network host --env SI_PORT="$port" "$container" -- $entrypoint \
  >/tmp/si-image-serve.log 2>&1 &
server=$!
stop_group() {
  kill -TERM -- "-$server" 2>/dev/null || return 0
  for _ in $(seq 20); do kill -0 -- "-$server" 2>/dev/null || return 0; sleep 0.5; done
  kill -KILL -- "-$server" 2>/dev/null || true
}
cleanup() { stop_group; buildah rm "$container" >/dev/null 2>&1 || true; [[ -z "${root:-}" ]] || rm -rf "$root"; }
trap cleanup EXIT
for _ in $(seq 60); do
  curl -sf "localhost:$port/readyz" >/dev/null && break
  kill -0 "$server" 2>/dev/null || break
  sleep 1
done
curl -sf "localhost:$port/readyz" >/dev/null \
  || { tail -n 30 /tmp/si-image-serve.log; echo "image: its entrypoint did not become ready" >&2; exit 1; }
curl -sf -X POST "localhost:$port/v1/sessions/s-8f3a1c/events" -H 'content-type: application/json' \
  -d '{"event_id": "c-0001", "action": "view_product", "from_ad": true}'
echo
curl -sf "localhost:$port/v1/sessions/s-8f3a1c/risk" | grep -q '"event_index":0' \
  || { echo "image: /risk did not read the click back" >&2; exit 1; }
echo "image: $tag built and its entrypoint ($entrypoint) served the README's click"
