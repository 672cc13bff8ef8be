#!/usr/bin/env bash
# Builds the command-line tools the test suite drives (helm, promtool/prometheus, amtool/alertmanager)
# from their published Go modules, at the versions the pinned kube-prometheus-stack chart deploys.
#
# Binaries land in "$ML_OBS_TOOLS_DIR/<tool>-<version>/bin" (default ~/.cache/ml-observability/tools),
# outside the repository, so a version bump builds a new folder and a warm cache costs nothing.
# Go's module and build caches live beside them and are reused between runs.
#
# Usage: scripts/install-tools.sh [helm] [prometheus] [alertmanager] [thanos] [actionlint] [sloth]   (no argument: all)
# Prints one line per tool: "<tool> <version> <bin dir> (cached|built in Ns)".
set -euo pipefail

# shellcheck source=scripts/tool-cache.sh
source "$(dirname "$0")/tool-cache.sh"

build() {  # build <name> <version> <ldflags> <package@version>...
  local name=$1 version=$2 ldflags=$3; shift 3
  local dest="$TOOLS_DIR/$name-$version/bin"
  if [[ -f "$dest/.complete" ]]; then
    echo "$name $version $dest (cached)"
    return
  fi
  rm -rf "$dest"; mkdir -p "$dest"
  local start=$SECONDS
  GOBIN="$dest" go install -trimpath -ldflags "$ldflags" "$@"
  touch "$dest/.complete"
  echo "$name $version $dest (built in $((SECONDS - start))s)"
}

# Modules whose go.mod has replace directives cannot be built by `go install pkg@version`: build them from a
# throwaway wrapper module that requires the pinned version and repeats those replaces.
build_wrapped() {  # build_wrapped <name> <version> <ldflags> <module version> <replace...> -- <package>...
  local name=$1 version=$2 ldflags=$3 module_version=$4; shift 4
  local replaces=()
  while [[ $1 != -- ]]; do replaces+=("$1"); shift; done; shift
  local dest="$TOOLS_DIR/$name-$version/bin"
  if [[ -f "$dest/.complete" ]]; then
    echo "$name $version $dest (cached)"
    return
  fi
  rm -rf "$dest"; mkdir -p "$dest"
  local start=$SECONDS wrapper
  wrapper=$(mktemp -d)
  trap 'rm -rf "$wrapper"' RETURN
  (
    cd "$wrapper"
    go mod init "build.local/$name" >/dev/null 2>&1
    for replace in "${replaces[@]}"; do go mod edit -replace "$replace"; done
    go get "${@/%/@$module_version}"
    for package in "$@"; do
      go build -trimpath -ldflags "$ldflags" -o "$dest/$(basename "$package")" "$package"
    done
  )
  touch "$dest/.complete"
  echo "$name $version $dest (built in $((SECONDS - start))s)"
}

# Modules that embed generated files they do not ship (Alertmanager's web UI assets) build from a writable copy
# of the module source, with the generated folder laid out by a preparation command.
build_from_source() {  # build_from_source <name> <version> <ldflags> <module@version> <prepare command> <package dir>...
  local name=$1 version=$2 ldflags=$3 module=$4 prepare=$5; shift 5
  local dest="$TOOLS_DIR/$name-$version/bin"
  if [[ -f "$dest/.complete" ]]; then
    echo "$name $version $dest (cached)"
    return
  fi
  rm -rf "$dest"; mkdir -p "$dest"
  local start=$SECONDS source work
  source=$(go mod download -json "$module" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
  work=$(mktemp -d)
  trap 'chmod -R u+w "$work"; rm -rf "$work"' RETURN
  cp -r "$source/." "$work"
  chmod -R u+w "$work"
  (
    cd "$work"
    bash -c "$prepare"
    for package in "$@"; do
      go build -trimpath -ldflags "$ldflags" -o "$dest/$(basename "$package")" "$package"
    done
  )
  touch "$dest/.complete"
  echo "$name $version $dest (built in $((SECONDS - start))s)"
}

want() { [[ $# -eq 0 ]] || [[ " ${SELECTED[*]} " == *" $1 "* ]]; }
SELECTED=("$@")

if [[ ${#SELECTED[@]} -eq 0 ]] || want helm; then
  build helm "$HELM_VERSION" \
    "-s -w -X helm.sh/helm/v3/internal/version.version=$HELM_VERSION" \
    "helm.sh/helm/v3/cmd/helm@$HELM_VERSION"
fi
if [[ ${#SELECTED[@]} -eq 0 ]] || want prometheus; then
  pv="github.com/prometheus/common/version"
  # The web UI's assets are not in the module: this prometheus serves the HTTP API, not the UI.
  build_wrapped prometheus "$PROMETHEUS_VERSION" \
    "-s -w -X $pv.Version=${PROMETHEUS_VERSION#v} -X $pv.Branch=HEAD -X $pv.Revision=module-$PROMETHEUS_MODULE_VERSION" \
    "$PROMETHEUS_MODULE_VERSION" \
    "cloud.google.com/go=cloud.google.com/go@v0.123.0" -- \
    github.com/prometheus/prometheus/cmd/prometheus github.com/prometheus/prometheus/cmd/promtool
fi
if [[ ${#SELECTED[@]} -eq 0 ]] || want alertmanager; then
  pv="github.com/prometheus/common/version"
  # The web UI's compiled assets are not in the module; an index page stands in for them, the API is complete.
  build_from_source alertmanager "$ALERTMANAGER_VERSION" \
    "-s -w -X $pv.Version=${ALERTMANAGER_VERSION#v} -X $pv.Branch=HEAD -X $pv.Revision=module-$ALERTMANAGER_VERSION" \
    "github.com/prometheus/alertmanager@$ALERTMANAGER_VERSION" \
    "mkdir -p ui/app/dist && echo '<!doctype html><title>Alertmanager</title><p>Web UI not built.</p>' > ui/app/dist/index.html" \
    ./cmd/alertmanager ./cmd/amtool
fi
if [[ ${#SELECTED[@]} -eq 0 ]] || want thanos; then
  pv="github.com/prometheus/common/version"
  # Its go.mod replaces six modules (forks and pins), repeated here; the release's build tags (.promu.yml).
  GOFLAGS="$GOFLAGS -tags=netgo,slicelabels" build_wrapped thanos "$THANOS_VERSION" \
    "-s -w -X $pv.Version=${THANOS_VERSION#v} -X $pv.Branch=HEAD -X $pv.Revision=module-$THANOS_VERSION" \
    "$THANOS_VERSION" \
    "capnproto.org/go/capnp/v3=capnproto.org/go/capnp/v3@v3.0.0-alpha.30" \
    "github.com/bradfitz/gomemcache=github.com/themihai/gomemcache@v0.0.0-20180902122335-24332e2d58ab" \
    "github.com/sercand/kuberesolver/v4=github.com/sercand/kuberesolver/v5@v5.1.1" \
    "github.com/vimeo/galaxycache=github.com/thanos-community/galaxycache@v0.0.0-20211122094458-3a32041a1f1e" \
    "gopkg.in/alecthomas/kingpin.v2=github.com/alecthomas/kingpin@v1.3.8-0.20210301060133-17f40c25f497" \
    "zenhack.net/go/util=github.com/zenhack/go-util@v0.0.0-20231005031245-66f5419c2aea" -- \
    github.com/thanos-io/thanos/cmd/thanos
fi
if [[ ${#SELECTED[@]} -eq 0 ]] || want actionlint; then
  build actionlint "$ACTIONLINT_VERSION" \
    "-s -w -X github.com/rhysd/actionlint.version=$ACTIONLINT_VERSION -X github.com/rhysd/actionlint.installedFrom=go-module" \
    "github.com/rhysd/actionlint/cmd/actionlint@$ACTIONLINT_VERSION"
fi
if [[ ${#SELECTED[@]} -eq 0 ]] || want sloth; then
  # One package at a time: the build shares the machine's two cores.
  GOFLAGS="$GOFLAGS -p=1" build sloth "$SLOTH_VERSION" \
    "-s -w -X github.com/slok/sloth/internal/info.Version=$SLOTH_VERSION" \
    "github.com/slok/sloth/cmd/sloth@$SLOTH_VERSION"
fi
