#!/bin/sh
# Image build step: the OS packages the CPU image needs, on Debian/Ubuntu (apt) or openEuler/Kylin
# (dnf/yum). Skipped when they are already there (the base made by `containers/build.sh base` has them,
# and air-gapped builds cannot reach a package mirror). Python must be >= 3.10 with venv and match
# the wheelhouse's Python (cp311 for the committed lock).
set -eu
PYTHON="${PYTHON:-python3}"
have_all() {
    "$PYTHON" -c 'import sys, venv, ensurepip; sys.exit(sys.version_info < (3, 10))' 2>/dev/null &&
        ldconfig -p | grep -q 'libGL\.so\.1' && ldconfig -p | grep -q 'libglib-2\.0\.so\.0' &&
        ldconfig -p | grep -q 'libgomp\.so\.1'
}
if have_all; then
    echo "os-packages: present"
    exit 0
fi
if command -v apt-get >/dev/null; then
    apt-get update
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
        python3 python3-venv libgomp1 libgl1 libglib2.0-0 libxcb1 libx11-6
    rm -rf /var/lib/apt/lists/*
elif command -v dnf >/dev/null; then
    dnf install -y python3 python3-pip mesa-libGL glib2 libgomp libxcb libX11 shadow-utils
    dnf clean all
elif command -v yum >/dev/null; then
    yum install -y python3 python3-pip mesa-libGL glib2 libgomp libxcb libX11 shadow-utils
    yum clean all
fi
if ! have_all; then
    echo "os-packages: $PYTHON is $("$PYTHON" -V 2>&1) or a library is missing; portbench needs Python >= 3.10" \
         "with venv (openEuler 22.03 and Kylin V10 ship 3.9/3.7: pass --build-arg PYTHON=/path/to/python3.11)" >&2
    exit 1
fi
