# Sourced by the install scripts (install-tools.sh, install-engine.sh, install-node.sh): the pins, the one cache
# layout they share and the build steps more than one of them needs.
# Binaries go to "$TOOLS_DIR/<tool>-<version>/bin" (tests/tools.py looks there), images to
# "$TOOLS_DIR/images/<image>-<key>/", Go's module and build caches beside them, so a pin change builds a new
# folder and a warm cache costs nothing.

# shellcheck source=scripts/tool-versions.env
source "$(dirname "${BASH_SOURCE[0]}")/tool-versions.env"

TOOLS_DIR="${ML_OBS_TOOLS_DIR:-$HOME/.cache/ml-observability/tools}"
export GOMODCACHE="${GOMODCACHE_OVERRIDE:-$TOOLS_DIR/go/mod}"
export GOCACHE="${GOCACHE_OVERRIDE:-$TOOLS_DIR/go/build}"
export GOFLAGS="-buildvcs=false"
export CGO_ENABLED=0
mkdir -p "$TOOLS_DIR"

# Runs the body of one tool's build in a throwaway folder unless "$dest/.complete" says it is already built.
# The builds are niced: they share the machine's cores with whatever else runs.
build_tool() {  # build_tool <name> <version> <function>
  local name=$1 version=$2 body=$3
  local dest="$TOOLS_DIR/$name-$version/bin"
  if [[ -f "$dest/.complete" ]]; then
    echo "$name $version $dest (cached)"
    return
  fi
  rm -rf "$dest"; mkdir -p "$dest"
  local start=$SECONDS work
  work=$(mktemp -d)
  (cd "$work" && "$body" "$dest")
  chmod -R u+w "$work"; rm -rf "$work"
  touch "$dest/.complete"
  echo "$name $version $dest (built in $((SECONDS - start))s)"
}

module_dir() {  # module_dir <module@version>: the unpacked, read-only module in the module cache
  go mod download -json "$1" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p'
}

# k8s.io/kubernetes requires its staging modules at v0.0.0 and replaces them with ./staging paths: a wrapper
# routes each one to its published v0.<minor>.<patch>. The version stamps are not optional: without them the
# server reports v0.0.0-master and pulumi-kubernetes refuses to talk to it. Run in an empty folder.
build_kube_commands() {  # build_kube_commands <dest> <command>...
  local dest=$1 v=$KUBERNETES_VERSION gomod minor ldflags="-s -w" module command; shift
  go mod init build.local/kube >/dev/null 2>&1
  gomod=$(go mod download -json "k8s.io/kubernetes@$v" | sed -n 's/^[[:space:]]*"GoMod": "\(.*\)",$/\1/p')
  for module in $(go mod edit -json "$gomod" | python3 -c '
import json, sys
print("\n".join(r["Path"] for r in json.load(sys.stdin)["Require"] if r["Version"] == "v0.0.0"))'); do
    go mod edit -replace="$module=$module@v0.${v#v1.}"
  done
  go get "k8s.io/kubernetes@$v"
  minor=${v#v1.}; minor=${minor%%.*}
  for package in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    ldflags+=" -X $package.gitVersion=$v -X $package.gitMajor=1 -X $package.gitMinor=$minor"
    ldflags+=" -X $package.gitTreeState=clean -X $package.gitCommit=module-$v"
  done
  for command in "$@"; do
    nice go build -trimpath -ldflags "$ldflags" -o "$dest/$command" "k8s.io/kubernetes/cmd/$command"
  done
}
