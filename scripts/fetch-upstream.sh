#!/usr/bin/env bash
# Lays out the upstream chart data the tests read (tests/tools.py upstream_dir()) where ../shared/upstream is
# absent, as in a CI runner: the pinned kube-prometheus-stack with its subcharts unpacked, and beside it the
# chart's values, its subcharts' values and the monitoring.coreos.com CRDs the tests validate objects against.
#
# Usage: scripts/fetch-upstream.sh DEST [CHART.tgz]
#   DEST        folder to fill (then: export ML_OBS_UPSTREAM_DIR=DEST)
#   CHART.tgz   a packaged chart to use instead of `helm pull` from the chart's repository
# Needs helm (HELM, the pinned build of scripts/install-tools.sh, or helm on PATH) unless CHART.tgz is given.
set -euo pipefail
cd "$(dirname "$0")/.."

dest=${1:?usage: scripts/fetch-upstream.sh DEST [CHART.tgz]}
package=${2:-}
chart=kube-prometheus-stack
# The version and repository the program deploys (components/monitoring/config.py), so the tests read that very chart.
version=$(sed -n 's/^KUBE_PROMETHEUS_STACK_VERSION = "\(.*\)"$/\1/p' components/monitoring/config.py)
repository=$(sed -n 's/^PROMETHEUS_COMMUNITY_REPOSITORY = "\(.*\)"$/\1/p' components/monitoring/config.py)
[[ -n $version && -n $repository ]] || { echo "chart version or repository not found in components/monitoring/config.py" >&2; exit 1; }

mkdir -p "$dest/charts"
rm -rf "${dest:?}/charts/$chart" "${dest:?}/$chart-$version"
if [[ -n $package ]]; then
  tar -xzf "$package" -C "$dest/charts"
else
  # shellcheck source=scripts/tool-versions.env
  source scripts/tool-versions.env
  helm=${HELM:-${ML_OBS_TOOLS_DIR:-$HOME/.cache/ml-observability/tools}/helm-$HELM_VERSION/bin/helm}
  [[ -x $helm ]] || helm=$(command -v helm) || { echo "helm not found: bash scripts/install-tools.sh helm" >&2; exit 1; }
  "$helm" pull "$chart" --repo "$repository" --version "$version" --untar --untardir "$dest/charts"
fi
top="$dest/charts/$chart"
grep -q "^version: $version$" "$top/Chart.yaml" || { echo "$top is not $chart $version" >&2; exit 1; }

# A packaged chart carries its dependencies as archives; the tests read them unpacked, as `helm template` can.
shopt -s nullglob
for archive in "$top"/charts/*.tgz; do
  tar -xzf "$archive" -C "$top/charts"
  rm "$archive"
done

data="$dest/$chart-$version"
mkdir -p "$data/crds" "$data/subcharts"
cp "$top/values.yaml" "$data/values.yaml"
for kind in podmonitors probes prometheusrules servicemonitors; do
  cp "$top/charts/crds/crds/crd-$kind.yaml" "$data/crds/"
done
for sub in grafana kube-state-metrics prometheus-node-exporter; do
  sub_version=$(sed -n 's/^version: *//p' "$top/charts/$sub/Chart.yaml" | head -1)
  cp "$top/charts/$sub/values.yaml" "$data/subcharts/$sub-$sub_version-values.yaml"
done
cat > "$data/SOURCE.md" <<EOF
# Upstream data: $chart $version

Laid out by scripts/fetch-upstream.sh from ${package:-$repository} (chart $chart, version $version): values.yaml, the
subcharts' values and the monitoring.coreos.com CRDs (crds/), copied unchanged from the chart in ../charts/$chart.
EOF
echo "upstream data for $chart $version in $dest"
