#!/usr/bin/env bash
# Builds the real Pulumi engine and a Kubernetes control plane from their published Go modules, so that the
# engine tests (tests/engine) run `pulumi preview` / `pulumi up` exactly as a user types them, with no installer
# and no plugin download: the module proxy is the only source.
#
# Same cache layout as scripts/install-tools.sh: binaries in "$ML_OBS_TOOLS_DIR/<tool>-<version>/bin" (default
# ~/.cache/ml-observability/tools), Go module and build caches in "$ML_OBS_TOOLS_DIR/go", a `.complete` marker per
# folder, so a pin change builds a new folder and a warm cache costs nothing.
#
# Usage: scripts/install-engine.sh [pulumi] [pulumi-resource-kubernetes] [etcd] [kube]   (no argument: all of them)
# Prints one line per tool: "<tool> <version> <bin dir> (cached|built in Ns)".
set -euo pipefail

# shellcheck source=scripts/tool-cache.sh
source "$(dirname "$0")/tool-cache.sh"

# Module copies whose replace directives are dropped (the Kubernetes provider) complete their go.sum as they build.
export GOFLAGS="-buildvcs=false -mod=mod"

# The CLI and the Python language host must sit in one folder: the engine finds bundled language hosts next to the
# `pulumi` executable, and the host finds its `pulumi-language-python-exec` script next to itself.
build_pulumi() {
  local dest=$1 v=$PULUMI_VERSION
  go mod init build.local/pulumi >/dev/null 2>&1
  # pkg/v3's own go.mod points sdk/v3 at ../sdk; as a dependency that replace is ignored and the published sdk/v3
  # at the same version is the same code.
  go get "github.com/pulumi/pulumi/pkg/v3@$v" "github.com/pulumi/pulumi/sdk/v3@$v"
  nice go build -trimpath -tags osusergo,grpcnotrace \
    -ldflags "-s -w -X github.com/pulumi/pulumi/sdk/v3/go/common/version.Version=$v" \
    -o "$dest/pulumi" github.com/pulumi/pulumi/pkg/v3/cmd/pulumi
  cp "$(module_dir "github.com/pulumi/pulumi/sdk/v3@$v")/python/cmd/pulumi-language-python-exec" "$dest/"
  # The language host became its own module (sdk/python/cmd/pulumi-language-python/v3) after sdk/v3 v3.68.0, and
  # the module proxy serves no version of that module; v3.68.0 is the newest host published inside sdk/v3. It is
  # built in its own wrapper so that its sdk/v3 stays the one it was released with.
  mkdir host && (
    cd host && go mod init build.local/pulumi-language-python >/dev/null 2>&1
    go get "github.com/pulumi/pulumi/sdk/v3@$PULUMI_LANGUAGE_PYTHON_VERSION"
    nice go build -trimpath \
      -ldflags "-s -w -X github.com/pulumi/pulumi/sdk/v3/go/common/version.Version=$PULUMI_LANGUAGE_PYTHON_VERSION" \
      -o "$dest/pulumi-language-python" github.com/pulumi/pulumi/sdk/v3/python/cmd/pulumi-language-python
    # The policy-pack analyzer is a script that runs `python -m pulumi_policy`; newer sdk/v3 zips no longer ship it.
    cp "$(module_dir "github.com/pulumi/pulumi/sdk/v3@$PULUMI_LANGUAGE_PYTHON_VERSION")/python/dist/pulumi-analyzer-policy-python" "$dest/"
  )
  chmod 0755 "$dest"/*
}

# pulumi-resource-kubernetes embeds two generated, git-ignored files (schema-embed.json,
# terraform-mapping-embed.json) that the module zip lacks, so it builds from a writable copy of the module with
# them generated, the way its Makefile's `go generate` does (version stamped into the schema, JSON re-serialized).
build_kubernetes_provider() {
  local dest=$1 source
  source=$(module_dir "github.com/pulumi/pulumi-kubernetes/provider/v4@$PULUMI_KUBERNETES_PROVIDER_MODULE_VERSION")
  cp -r "$source/." . && chmod -R u+w .
  # Points at the repository's ../sdk; the provider's Go code does not import sdk/v4, so the replace just goes.
  go mod edit -dropreplace=github.com/pulumi/pulumi-kubernetes/sdk/v4
  (
    cd cmd/pulumi-resource-kubernetes
    python3 - "$PULUMI_KUBERNETES_PROVIDER_VERSION" <<'GEN'
import json, sys
schema = json.load(open("schema.json"))
schema["version"] = sys.argv[1]
json.dump(schema, open("schema-embed.json", "w"), separators=(",", ":"))
json.dump(json.load(open("terraform-mapping.json")), open("terraform-mapping-embed.json", "w"), separators=(",", ":"))
GEN
  )
  nice go build -trimpath \
    -ldflags "-s -w -X github.com/pulumi/pulumi-kubernetes/provider/v4/pkg/version.Version=$PULUMI_KUBERNETES_PROVIDER_VERSION" \
    -o "$dest/pulumi-resource-kubernetes" ./cmd/pulumi-resource-kubernetes
}

# etcd's server/go.mod points its sibling modules at ../ paths; as a dependency of a wrapper those replaces are
# ignored and the siblings resolve to their published versions, tagged together with the server.
build_etcd() {
  local dest=$1
  go mod init build.local/etcd >/dev/null 2>&1
  go get "go.etcd.io/etcd/server/v3@$ETCD_VERSION"
  nice go build -trimpath \
    -ldflags "-s -w -X go.etcd.io/etcd/api/v3/version.GitSHA=module-$ETCD_VERSION" \
    -o "$dest/etcd" go.etcd.io/etcd/server/v3
}

# The control plane of the engine tests; the node's own commands are built by scripts/install-node.sh.
build_kube() { build_kube_commands "$1" kube-apiserver kube-controller-manager; }

want() { [[ ${#SELECTED[@]} -eq 0 ]] || [[ " ${SELECTED[*]} " == *" $1 "* ]]; }
SELECTED=("$@")

if want pulumi; then build_tool pulumi "$PULUMI_VERSION" build_pulumi; fi
if want pulumi-resource-kubernetes; then
  build_tool pulumi-resource-kubernetes "$PULUMI_KUBERNETES_PROVIDER_VERSION" build_kubernetes_provider
fi
if want etcd; then build_tool etcd "$ETCD_VERSION" build_etcd; fi
if want kube; then build_tool kube "$KUBERNETES_VERSION" build_kube; fi
