# Sourced by scripts/install-tools.sh and scripts/install-engine.sh: the pins and the one cache layout they share.
# Binaries go to "$TOOLS_DIR/<tool>-<version>/bin" (tests/tools.py looks there), Go's module and build caches
# beside them, so a pin change builds a new folder and a warm cache costs nothing.

# shellcheck source=scripts/tool-versions.env
source "$(dirname "${BASH_SOURCE[0]}")/tool-versions.env"

TOOLS_DIR="${ML_OBS_TOOLS_DIR:-$HOME/.cache/ml-observability/tools}"
export GOMODCACHE="${GOMODCACHE_OVERRIDE:-$TOOLS_DIR/go/mod}"
export GOCACHE="${GOCACHE_OVERRIDE:-$TOOLS_DIR/go/build}"
export GOFLAGS="-buildvcs=false"
export CGO_ENABLED=0
mkdir -p "$TOOLS_DIR"
