#!/usr/bin/env bash
# Builds everything the local node of tests/node runs, from sources only, since no container registry is reachable:
#
#   kube-node       kubelet, kube-proxy, kube-scheduler and kubectl from k8s.io/kubernetes (the control
#                   plane's version)
#   operator        the Prometheus Operator and its config reloader, at the chart's appVersion
#   images          one OCI archive per image the chart and the kubelet start, tagged with the exact reference
#                   they ask for: the operator, the reloader, Prometheus and Alertmanager (the binaries
#                   scripts/install-tools.sh built), kube-state-metrics, node-exporter and the pause container
#   python-base     a Debian root filesystem with Python (debootstrap), the base the model's Dockerfile builds on
#   model-image TAG the model service, built by buildah from model-service/Dockerfile itself, on python-base
#
# Binaries land in "$TOOLS_DIR/<tool>-<version>/bin" and images in "$TOOLS_DIR/images/<image>-<key>/" (image.tar,
# a docker-archive that containerd imports, and a `ref` file naming the reference it is tagged with), so that a version bump builds a new folder and a warm
# cache costs nothing. Needs Go, gcc, debootstrap and buildah (apt-get install debootstrap buildah), and root for
# debootstrap and buildah.
#
# Usage: scripts/install-node.sh [kube-node] [operator] [images] [python-base] [model-image TAG]
#        (no argument: all but model-image, which the node test builds for the tag of the sources it deploys)
# Prints one line per tool or image: "<name> <version> <folder> (cached|built in Ns)".
set -euo pipefail

# shellcheck source=scripts/tool-cache.sh
source "$(dirname "$0")/tool-cache.sh"
ROOT=$(cd "$(dirname "$0")/.." && pwd)
# The wrappers' go.sum is completed as the packages of each command are built (they import more than go get saw).
export GOFLAGS="-buildvcs=false -mod=mod"
IMAGES_DIR="$TOOLS_DIR/images"
PROMETHEUS_BIN="$TOOLS_DIR/prometheus-$PROMETHEUS_VERSION/bin"
ALERTMANAGER_BIN="$TOOLS_DIR/alertmanager-$ALERTMANAGER_VERSION/bin"
OPERATOR_BIN="$TOOLS_DIR/prometheus-operator-$PROMETHEUS_OPERATOR_VERSION/bin"
KUBE_STATE_METRICS_BIN="$TOOLS_DIR/kube-state-metrics-$KUBE_STATE_METRICS_VERSION/bin"
NODE_EXPORTER_BIN="$TOOLS_DIR/node-exporter-$NODE_EXPORTER_VERSION/bin"
PAUSE_BIN="$TOOLS_DIR/pause-$PAUSE_VERSION/bin"
PROMETHEUS_COMMON_VERSION=github.com/prometheus/common/version

# ---- binaries ------------------------------------------------------------------------------------------------

build_kube_node() { build_kube_commands "$1" kubelet kube-proxy kube-scheduler kubectl; }

# The operator's go.mod replaces its own nested API and client modules with ./ paths; from a wrapper those
# replaces are ignored and the nested modules resolve to their published versions, tagged with the operator.
build_operator() {
  local dest=$1 v=$PROMETHEUS_OPERATOR_VERSION command
  go mod init build.local/prometheus-operator >/dev/null 2>&1
  go get "github.com/prometheus-operator/prometheus-operator@$v"
  for command in operator prometheus-config-reloader; do
    nice go build -trimpath \
      -ldflags "-s -w -X $PROMETHEUS_COMMON_VERSION.Version=${v#v} -X $PROMETHEUS_COMMON_VERSION.Revision=module-$v -X $PROMETHEUS_COMMON_VERSION.Branch=HEAD" \
      -o "$dest/$command" "github.com/prometheus-operator/prometheus-operator/cmd/$command"
  done
}

build_kube_state_metrics() {
  local dest=$1 v=$KUBE_STATE_METRICS_VERSION
  GOBIN="$dest" nice go install -trimpath \
    -ldflags "-s -w -X $PROMETHEUS_COMMON_VERSION.Version=$v -X $PROMETHEUS_COMMON_VERSION.Revision=module-$v -X $PROMETHEUS_COMMON_VERSION.Branch=HEAD" \
    "k8s.io/kube-state-metrics/v2@$v"
}

build_node_exporter() {
  local dest=$1 v=$NODE_EXPORTER_VERSION
  GOBIN="$dest" nice go install -trimpath \
    -ldflags "-s -w -X $PROMETHEUS_COMMON_VERSION.Version=${v#v} -X $PROMETHEUS_COMMON_VERSION.Revision=module-$v -X $PROMETHEUS_COMMON_VERSION.Branch=HEAD" \
    "github.com/prometheus/node_exporter@$v"
}

# The pause container is a few lines of C in the kubernetes repository (build/pause/linux/pause.c), which the
# k8s.io/kubernetes module carries; built statically, as its Makefile does.
build_pause() {
  local dest=$1 source
  source=$(module_dir "k8s.io/kubernetes@$KUBERNETES_VERSION")/build/pause/linux/pause.c
  gcc -Os -Wall -Werror -static -DVERSION="v$PAUSE_VERSION-module-$KUBERNETES_VERSION" -o "$dest/pause" "$source"
  strip "$dest/pause"
}

# ---- images --------------------------------------------------------------------------------------------------

# Every image is built in a throwaway buildah store and kept only as an archive, which containerd imports.
BUILDAH_STORE=""
buildah_store() {
  if [[ -z $BUILDAH_STORE ]]; then
    BUILDAH_STORE=$(mktemp -d)
    trap 'buildah --root "$BUILDAH_STORE/storage" --runroot "$BUILDAH_STORE/run" rm --all >/dev/null 2>&1 || true;
          umount -R "$BUILDAH_STORE" 2>/dev/null || true; rm -rf "$BUILDAH_STORE"' EXIT
  fi
}
bah() { buildah --root "$BUILDAH_STORE/storage" --runroot "$BUILDAH_STORE/run" --storage-driver overlay "$@"; }

# Runs an image's build function unless its folder is complete and holds that reference (a reference changed
# here, say a tag's flavour suffix, rebuilds); the function gets the reference.
build_image() {  # build_image <name> <key> <reference> <function>
  local name=$1 key=$2 ref=$3 body=$4
  local dest="$IMAGES_DIR/$name-$key"
  if [[ -f "$dest/.complete" && "$(cat "$dest/ref")" == "$ref" ]]; then
    echo "$name $key $dest (cached)"
    return
  fi
  rm -rf "$dest"; mkdir -p "$dest"
  local start=$SECONDS
  buildah_store
  "$body" "$ref"
  bah push --quiet "$ref" "docker-archive:$dest/image.tar:$ref" >/dev/null
  echo "$ref" > "$dest/ref"
  touch "$dest/.complete"
  echo "$name $key $dest (built in $((SECONDS - start))s, $(du -h "$dest/image.tar" | cut -f1))"
}

# A distroless image: the static binaries, the users the charts run as, the CA bundle and a writable /tmp.
# Upstream images put their binaries in the same places and use them as the entrypoint, which the charts rely on
# (they set args, never the command).
distroless() {  # distroless <reference> <user> <entrypoint> <source:destination>...
  local ref=$1 user=$2 entrypoint=$3; shift 3
  local container root item
  container=$(bah from scratch)
  root=$(mktemp -d)
  mkdir -p "$root/etc/ssl/certs" "$root/tmp"
  chmod 1777 "$root/tmp"
  printf 'root:x:0:0:root:/root:/sbin/nologin\nnobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n' > "$root/etc/passwd"
  printf 'root:x:0:\nnobody:x:65534:\nnonroot:x:65532:\n' > "$root/etc/group"
  cp /etc/ssl/certs/ca-certificates.crt "$root/etc/ssl/certs/"
  for item in "$@"; do
    mkdir -p "$root$(dirname "${item#*:}")"
    cp "${item%%:*}" "$root${item#*:}"
  done
  bah add --quiet "$container" "$root" / >/dev/null
  rm -rf "$root"
  bah config --user "$user" --entrypoint "$entrypoint" --cmd '' --workingdir / \
    --label "org.opencontainers.image.source=built locally by ml-observability scripts/install-node.sh" "$container"
  bah commit --quiet --format oci "$container" "$ref" >/dev/null
  bah rm "$container" >/dev/null
}

image_operator() { distroless "$1" 65534 '["/bin/operator"]' "$OPERATOR_BIN/operator:/bin/operator"; }
image_config_reloader() {
  distroless "$1" 65534 '["/bin/prometheus-config-reloader"]' \
    "$OPERATOR_BIN/prometheus-config-reloader:/bin/prometheus-config-reloader"
}
image_prometheus() {
  distroless "$1" 65534 '["/bin/prometheus"]' "$PROMETHEUS_BIN/prometheus:/bin/prometheus" \
    "$PROMETHEUS_BIN/promtool:/bin/promtool"
}
image_alertmanager() {
  distroless "$1" 65534 '["/bin/alertmanager"]' "$ALERTMANAGER_BIN/alertmanager:/bin/alertmanager" \
    "$ALERTMANAGER_BIN/amtool:/bin/amtool"
}
image_kube_state_metrics() {
  distroless "$1" 65534 '["/kube-state-metrics"]' "$KUBE_STATE_METRICS_BIN/kube-state-metrics:/kube-state-metrics"
}
image_node_exporter() {
  distroless "$1" 65534 '["/bin/node_exporter"]' "$NODE_EXPORTER_BIN/node_exporter:/bin/node_exporter"
}
image_pause() { distroless "$1" 65535 '["/pause"]' "$PAUSE_BIN/pause:/pause"; }

# Debian's Python on a minimal Debian root: what python:3.11-slim-bookworm provides to the Dockerfile (python,
# venv with pip, groupadd/useradd), without docs, caches or package lists.
image_python_base() {
  local ref=$1 rootfs container
  rootfs=$(mktemp -d)
  debootstrap --variant=minbase --include=python3,python3-venv,python-is-python3 \
    "$PYTHON_BASE_SUITE" "$rootfs" "$DEBIAN_MIRROR" >"$rootfs.log" 2>&1 || { tail -20 "$rootfs.log"; return 1; }
  rm -rf "$rootfs"/var/cache/apt/* "$rootfs"/var/lib/apt/lists/* "$rootfs"/usr/share/{doc,man,info,locale}/* \
    "$rootfs"/var/log/* "$rootfs.log"
  container=$(bah from scratch)
  # As a tar archive, which ADD unpacks with its owners and modes.
  tar --numeric-owner -C "$rootfs" -cf "$rootfs.tar" .
  bah add --quiet "$container" "$rootfs.tar" / >/dev/null
  rm -rf "$rootfs" "$rootfs.tar"
  bah config --env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin --env LANG=C.UTF-8 \
    --cmd '["python3"]' "$container"
  bah commit --quiet --format oci "$container" "$ref" >/dev/null
  bah rm "$container" >/dev/null
}

# The model's image, from its Dockerfile and the sources the tag hashes, on the python-base image.
image_model() {
  local ref=$1 base="$IMAGES_DIR/python-base-$PYTHON_BASE_SUITE-$PYTHON_BASE_REVISION"
  [[ -f "$base/.complete" ]] || { echo "python-base is not built: bash scripts/install-node.sh python-base" >&2; return 1; }
  bah pull --quiet "docker-archive:$base/image.tar" >/dev/null
  # The build's pip reaches PyPI as this machine's pip does: through its pip configuration and CA bundle, when it
  # has them (a TLS-inspecting proxy signs with a CA that only the machine's bundle holds). Build steps only:
  # nothing of it is in the image.
  local machine=() file
  for file in /etc/pip.conf /etc/ssl/certs/ca-certificates.crt; do
    [[ -f $file ]] && machine+=(--volume "$file:$file:ro")
  done
  # Docker's image format, which keeps the Dockerfile's HEALTHCHECK (OCI's has no such field).
  bah bud --quiet --format docker --network host --isolation oci --layers=false "${machine[@]}" \
    --build-arg "PYTHON_IMAGE=$(cat "$base/ref")" --build-arg SOURCE_DATE_EPOCH=1767225600 \
    -f "$ROOT/model-service/Dockerfile" -t "$ref" "$ROOT/model-service" >/dev/null
}

want() { [[ ${#SELECTED[@]} -eq 0 ]] || [[ " ${SELECTED[*]} " == *" $1 "* ]]; }
SELECTED=("$@")
if [[ ${#SELECTED[@]} -gt 0 && ${SELECTED[0]} == model-image ]]; then
  [[ ${#SELECTED[@]} -eq 2 ]] || { echo "usage: $0 model-image <tag>" >&2; exit 2; }
  build_image ml-model-service "${SELECTED[1]}" "docker.io/library/ml-model-service:${SELECTED[1]}" image_model
  exit 0
fi

if want kube-node; then build_tool kube-node "$KUBERNETES_VERSION" build_kube_node; fi
if want operator; then
  build_tool prometheus-operator "$PROMETHEUS_OPERATOR_VERSION" build_operator
fi
if want images; then
  build_tool kube-state-metrics "$KUBE_STATE_METRICS_VERSION" build_kube_state_metrics
  build_tool node-exporter "$NODE_EXPORTER_VERSION" build_node_exporter
  build_tool pause "$PAUSE_VERSION" build_pause
  [[ -f "$PROMETHEUS_BIN/.complete" && -f "$ALERTMANAGER_BIN/.complete" && -f "$OPERATOR_BIN/.complete" ]] || {
    echo "prometheus, alertmanager and the operator must be built first: bash scripts/install-tools.sh prometheus alertmanager && bash $0 operator" >&2
    exit 1
  }
  build_image prometheus-operator "$PROMETHEUS_OPERATOR_VERSION" \
    "quay.io/prometheus-operator/prometheus-operator:$PROMETHEUS_OPERATOR_VERSION" image_operator
  build_image prometheus-config-reloader "$PROMETHEUS_OPERATOR_VERSION" \
    "quay.io/prometheus-operator/prometheus-config-reloader:$PROMETHEUS_OPERATOR_VERSION" image_config_reloader
  build_image prometheus "$PROMETHEUS_VERSION" \
    "quay.io/prometheus/prometheus:$PROMETHEUS_VERSION-distroless" image_prometheus
  build_image alertmanager "$ALERTMANAGER_VERSION" \
    "quay.io/prometheus/alertmanager:$ALERTMANAGER_VERSION" image_alertmanager
  build_image kube-state-metrics "$KUBE_STATE_METRICS_VERSION" \
    "registry.k8s.io/kube-state-metrics/kube-state-metrics:$KUBE_STATE_METRICS_VERSION" image_kube_state_metrics
  build_image node-exporter "$NODE_EXPORTER_VERSION" \
    "quay.io/prometheus/node-exporter:$NODE_EXPORTER_VERSION-distroless" image_node_exporter
  build_image pause "$PAUSE_VERSION" "registry.k8s.io/pause:$PAUSE_VERSION" image_pause
fi
if want python-base; then
  build_image python-base "$PYTHON_BASE_SUITE-$PYTHON_BASE_REVISION" \
    "localhost/ml-observability/python:3.11-$PYTHON_BASE_SUITE-$PYTHON_BASE_REVISION" image_python_base
fi
