#!/bin/sh
# Image build step: fill PORTBENCH_CACHE with everything a run needs, then make it read-only.
# Each suite in PORTBENCH_BAKE_SUITES runs once in accuracy mode on the CPU backend: that generates its
# datasets, trains/exports the ERNIE models it uses (the reference model takes about 5 minutes) and
# proves the image works before it is tagged. A later `portbench run` finds a complete cache and
# writes only to --out, so the image runs with --network=none, a read-only root and a non-root UID.
set -eu
: "${PORTBENCH_CACHE:?set PORTBENCH_CACHE}"
: "${PORTBENCH_BAKE_SUITES:?set PORTBENCH_BAKE_SUITES (e.g. smoke standard)}"
scratch="$(mktemp -d)"
for suite in $PORTBENCH_BAKE_SUITES; do
    echo "bake: suite $suite (accuracy, cpu)"
    portbench run --suite "$suite" --backend cpu --mode accuracy --out "$scratch/$suite"
done
rm -rf "$scratch"
# Root-owned, world-readable, nobody may write: a run that tried to write the cache would fail loudly.
chmod -R a+rX,go-w "$PORTBENCH_CACHE"
echo "bake: $(du -sh "$PORTBENCH_CACHE" | cut -f1) in $PORTBENCH_CACHE"
ls "$PORTBENCH_CACHE" "$PORTBENCH_CACHE/models"
