#!/usr/bin/env bash
# Build portbench images without a registry: a local base image, a wheelhouse, then the image.
#
#   containers/build.sh base                      # mmdebstrap Debian 12 -> podman import (CPU base)
#   containers/build.sh wheelhouse [py311|py310]  # pip wheel the pinned closure (py310: give PYTHON=python3.10)
#   containers/build.sh image cpu [BASE_IMAGE]    # podman build --isolation=chroot
#   containers/build.sh image cuda|ascend|mlu|xpu|dcu   # needs containers/.build/vendor/<target>/ (README)
#   containers/build.sh smoke [IMAGE]             # run the smoke suite inside, --network=none, results on the host
#
# Everything is built for this machine's architecture (uname -m): like Paddle's and Ascend's images,
# each architecture is built on a native host. Environment overrides:
#   ENGINE=podman|docker   PORTBENCH_BAKE_SUITES="smoke standard scenarios ernie-shapes"
#   EXTRA_BUILD_ARGS="--build-arg PADDLE_XPU_VERSION=3.2.0.dev20261101" (words added to the build command)
#   BUILD_DIR=containers/.build   PYTHON=python3 (the one whose wheels match the image's Python)
#   PIP_DOWNLOAD_ARGS="..." (e.g. --index-url https://www.paddlepaddle.org.cn/packages/stable/cu126/ for cuda)
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/.." && pwd)"
ARCH="$(uname -m)"
ENGINE="${ENGINE:-podman}"
BUILD_DIR="${BUILD_DIR:-$HERE/.build}"
PYTHON="${PYTHON:-$( [[ -x "$REPO/.venv/bin/python" ]] && echo "$REPO/.venv/bin/python" || echo python3)}"
DEBIAN_SUITE="${DEBIAN_SUITE:-bookworm}"
LOCAL_BASE="${LOCAL_BASE:-localhost/debian:12-slim}"
BAKE_SUITES="${PORTBENCH_BAKE_SUITES:-smoke standard scenarios ernie-shapes}"
VERSION="$(sed -n 's/^version = "\(.*\)"/\1/p' "$REPO/pyproject.toml")"
REVISION="$(git -C "$REPO" rev-parse HEAD 2>/dev/null || echo unknown)"
# What the CPU image needs from the OS: Python 3.11 with venv, and the shared libraries the
# opencv-python and paddlepaddle wheels link against (libGL, glib, X11/xcb client libs, libgomp).
BASE_PACKAGES="python3,python3-venv,libgomp1,libgl1,libglib2.0-0,libxcb1,libx11-6"

log() { printf '[build.sh %(%H:%M:%S)T] %s\n' -1 "$*" >&2; }

# A containers.conf for hosts where the engine's defaults fail (hybrid cgroups, no RLIMIT_NOFILE raise).
engine_env() {
    if [[ "$ENGINE" == podman && -z "${CONTAINERS_CONF:-}" ]]; then
        export CONTAINERS_CONF="$HERE/podman-containers.conf"
    fi
}

build_base() {
    local tarball="$BUILD_DIR/rootfs-$DEBIAN_SUITE-$ARCH.tar"
    mkdir -p "$BUILD_DIR"
    log "mmdebstrap $DEBIAN_SUITE ($BASE_PACKAGES) -> $tarball"
    mmdebstrap --variant=minbase --include="$BASE_PACKAGES" \
        --customize-hook='chroot "$1" apt-get clean' \
        --customize-hook='rm -rf "$1"/var/lib/apt/lists/* "$1"/usr/share/doc/* "$1"/usr/share/man/*' \
        "$DEBIAN_SUITE" "$tarball"
    log "podman import -> $LOCAL_BASE"
    "$ENGINE" import --change 'CMD ["/bin/bash"]' "$tarball" "$LOCAL_BASE" >/dev/null
    log "base image $LOCAL_BASE ready"
}

# The Python a target's base ships decides its lock: Debian 12 and the CANN image have 3.11, Paddle's
# device images 3.10.
python_for() { case "$1" in cpu|ascend) echo py311 ;; *) echo py310 ;; esac; }
lock_file() { [[ "$1" == py311 ]] && echo "$HERE/requirements.lock" || echo "$HERE/requirements-$1.lock"; }

build_wheelhouse() {
    local flavour="${1:-py311}"
    local context="$BUILD_DIR/context-$ARCH-$flavour" lock
    lock="$(lock_file "$flavour")"
    local want="${flavour#py}" have
    have="$("$PYTHON" -c 'import sys; print(f"{sys.version_info[0]}{sys.version_info[1]}")')"
    [[ "$have" == "$want" ]] || { echo "the $flavour wheelhouse needs a Python $want PYTHON (got $have)" >&2; exit 2; }
    rm -rf "$context/wheelhouse" && mkdir -p "$context/wheelhouse"
    log "pip wheel the pinned closure ($(basename "$lock")) -> $context/wheelhouse"
    # pip wheel reuses published wheels and builds the sdist-only ones (pure Python) into wheels.
    # shellcheck disable=SC2086
    "$PYTHON" -m pip wheel --quiet --no-deps --only-binary=paddlepaddle,opencv-python,numpy \
        -r "$lock" -w "$context/wheelhouse" ${PIP_DOWNLOAD_ARGS:-}
    cp "$lock" "$context/requirements.lock"
    build_portbench_wheel "$context"
    log "wheelhouse: $(find "$context/wheelhouse" -name '*.whl' | wc -l) wheels, $(du -sh "$context/wheelhouse" | cut -f1)"
}

build_portbench_wheel() {
    # The working tree as a wheel; rebuilt for every image, so only the last layers change with the code.
    local context="$1"
    rm -rf "$context/portbench" && mkdir -p "$context/portbench"
    log "pip wheel portbench $VERSION -> $context/portbench"
    "$PYTHON" -m pip wheel --quiet --no-deps "$REPO" -w "$context/portbench"
}

stage_context() {
    # The parts of the context every recipe COPYs; the wheels come from build_wheelhouse.
    local context="$1"
    cp "$HERE/bake.sh" "$HERE/os-packages.sh" "$HERE/user.sh" "$context/"
}

build_image() {
    local target="$1" base="${2:-}"
    local recipe="$HERE/$target/Containerfile"
    [[ -f "$recipe" ]] || { echo "no recipe $recipe" >&2; exit 2; }
    local flavour context
    flavour="$(python_for "$target")"
    context="$BUILD_DIR/context-$ARCH-$flavour"
    [[ -d "$context/wheelhouse" ]] || { echo "no wheelhouse in $context: run '$0 wheelhouse $flavour' first" >&2; exit 2; }
    build_portbench_wheel "$context"
    stage_context "$context"
    if [[ "$target" != cpu ]]; then
        # Vendor SDKs and Paddle device wheels are fetched once by hand (credentials, portals):
        # containers/<target>/README lists them; they are copied into the context here.
        local vendor="$BUILD_DIR/vendor/$target"
        [[ -d "$vendor" ]] || { echo "put the $target vendor files into $vendor (see containers/README.md)" >&2; exit 2; }
        rm -rf "$context/vendor" && cp -r "$vendor" "$context/vendor"
    fi
    local tag="localhost/portbench:$VERSION-$target-$ARCH"
    local args=(build -f "$recipe" -t "$tag"
        --build-arg "PORTBENCH_VERSION=$VERSION" --build-arg "VCS_REF=$REVISION"
        --build-arg "CREATED=$(date -u +%Y-%m-%dT%H:%M:%SZ)" --build-arg "PORTBENCH_BAKE_SUITES=$BAKE_SUITES")
    [[ -n "$base" ]] && args+=(--build-arg "BASE_IMAGE=$base")
    [[ "$target" == cpu && -z "$base" ]] && args+=(--build-arg "BASE_IMAGE=$LOCAL_BASE")
    # podman: chroot isolation (the OCI default fails on hybrid-cgroup kernels), Docker format (HEALTHCHECK).
    [[ "$ENGINE" == podman ]] && args+=(--isolation=chroot --format docker)
    # shellcheck disable=SC2206
    args+=(${EXTRA_BUILD_ARGS:-})
    log "$ENGINE ${args[*]} $context"
    "$ENGINE" "${args[@]}" "$context"
    log "image $tag ready"
    echo "$tag"
}

run_smoke() {
    local image="${1:-localhost/portbench:$VERSION-cpu-$ARCH}"
    local results="${RESULTS_DIR:-$BUILD_DIR/results}"
    mkdir -p "$results" && chmod 0777 "$results"
    engine_env
    log "$ENGINE run smoke in $image, results -> $results"
    "$ENGINE" run --rm --network=none --read-only --tmpfs /tmp --shm-size=1g \
        -v "$results:/results:rw" "$image" \
        portbench run --suite smoke --out /results/smoke
}

case "${1:-}" in
    base) build_base ;;
    wheelhouse) shift; build_wheelhouse "${1:-py311}" ;;
    image) shift; build_image "${1:?target: cpu|cuda|ascend|mlu|xpu|dcu}" "${2:-}" ;;
    smoke) shift; run_smoke "${1:-}" ;;
    *) sed -n '2,15p' "$0" >&2; exit 2 ;;
esac
