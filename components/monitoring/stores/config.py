"""The stack file's ``monitoring.remoteWrite``: the distributed metric stores Prometheus writes to, one typed entry
per kind (``generic``, ``amp``, ``azureMonitor``, ``gmp``).

Every entry says what the store needs and nothing it does not: a URL and credentials for a store of your own
(Thanos Receive, Mimir, Cortex, VictoriaMetrics), a workspace for a cloud's managed Prometheus, whose identity the
stack creates (no static key anywhere). Credentials are ``SecretStr``: they come from ``pulumi config set
--secret`` and go into a Secret Prometheus mounts, never into the chart's values.
"""

from __future__ import annotations

import re
from typing import Annotated, ClassVar, Literal

from pydantic import Field, SecretStr, field_validator, model_validator

from components.clusters.kinds import CLUSTER_KINDS, ClusterKind
from components.config.fields import DnsLabel, PrometheusLabelName, Section, Window
from components.monitors.rule_model import parse_duration

StoreKind = Literal["generic", "amp", "azureMonitor", "gmp"]
SendMode = Literal["all", "recordings"]
"""``all``: every series Prometheus holds; ``recordings``: only the models' recording rules (drift, SLO, accuracy
and the model's own infrastructure series) but the per-bin shares the store can derive again: at the sample
model's size, 407 of its 1,074 series (``benchmarks/remote_write.py``), and none of the cluster's own."""

PROMETHEUS_REPLICA_LABEL = "prometheus_replica"
"""The external label the operator gives each replica (``$(POD_NAME)``), which Thanos Query deduplicates on."""
HA_TRACKER_REPLICA_LABEL = "__replica__"
"""The label Amazon Managed Service for Prometheus, Mimir and Cortex deduplicate an HA pair on (with ``cluster``)."""

_RELABEL_ACTIONS = Literal[
    "replace", "keep", "drop", "hashmod", "labelmap", "labeldrop", "labelkeep", "lowercase", "uppercase",
    "keepequal", "dropequal",
]
_HEADER_NAME = r"^[A-Za-z0-9-]+$"
_RESERVED_HEADERS = {"authorization", "content-type", "content-encoding", "user-agent",
                     "x-prometheus-remote-write-version"}
"""Headers Prometheus sets itself (the CRD's ``headers`` may not override them) or that carry credentials."""


class QueueConfig(Section):
    """How Prometheus batches and retries what it sends (``queue_config``); unset settings keep Prometheus'
    defaults (capacity 10000, shards 1 to 50, 2000 samples per send, 5s deadline, backoff 30ms to 5s)."""

    capacity: int | None = Field(None, ge=1, description="Samples buffered per shard.", examples=[10000])
    min_shards: int | None = Field(None, ge=1, description="Fewest parallel senders.", examples=[1])
    max_shards: int | None = Field(None, ge=1, description="Most parallel senders.", examples=[50])
    max_samples_per_send: int | None = Field(None, ge=1, description="Samples per request.", examples=[2000])
    batch_send_deadline: Window | None = Field(
        None, description="Longest a sample waits for its batch to fill.", examples=["5s"]
    )
    min_backoff: Window | None = Field(None, description="First wait after a failed send.", examples=["30ms"])
    max_backoff: Window | None = Field(None, description="Longest wait between retries.", examples=["5s"])
    retry_on_rate_limit: bool | None = Field(
        None, description="Retry on HTTP 429 rather than drop the batch.", examples=[True]
    )
    sample_age_limit: Window | None = Field(
        None, description="Drop samples older than this instead of sending them after an outage.", examples=["2h"]
    )

    @model_validator(mode="after")
    def _ordered(self) -> QueueConfig:
        if self.min_shards is not None and self.max_shards is not None and self.min_shards > self.max_shards:
            raise ValueError(f"minShards must not exceed maxShards (got minShards={self.min_shards}, "
                             f"maxShards={self.max_shards})")
        if (self.min_backoff is not None and self.max_backoff is not None
                and parse_duration(self.min_backoff) > parse_duration(self.max_backoff)):
            raise ValueError(f"minBackoff must not exceed maxBackoff (got minBackoff={self.min_backoff}, "
                             f"maxBackoff={self.max_backoff})")
        return self

    def as_spec(self) -> dict[str, object]:
        """The Prometheus CRD's ``queueConfig`` (only the settings given)."""
        return self.model_dump(by_alias=True, exclude_none=True)


class RelabelRuleConfig(Section):
    """One write relabel rule, as Prometheus' ``write_relabel_configs`` take it (regexes are RE2, anchored)."""

    source_labels: tuple[PrometheusLabelName, ...] = Field(
        (), description="Labels whose values, joined by separator, the regex reads.", examples=[["__name__"]]
    )
    separator: str | None = Field(None, description="Joins the source labels' values (default ';').")
    target_label: PrometheusLabelName | None = Field(None, description="Label a replace writes to.",
                                                      examples=["team"])
    regex: str | None = Field(None, min_length=1, description="Anchored RE2 expression (default '(.*)').",
                              examples=["apiserver_.*_bucket"])
    modulus: int | None = Field(None, ge=1, description="Modulus of a hashmod.")
    replacement: str | None = Field(None, description="Value a replace writes (default '$1').")
    action: _RELABEL_ACTIONS = Field("replace", description="What the rule does.", examples=["drop"])

    @field_validator("separator", "regex", "replacement")
    @classmethod
    def _not_a_template(cls, value: str | None) -> str | None:
        if value is not None and "{{" in value:
            raise ValueError(f"must not contain '{{{{' (got {value!r}): the chart renders remote-write settings as "
                             "Go templates; in a regex, escape the braces: \\{\\{")
        return value

    @field_validator("regex")
    @classmethod
    def _compiles(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                re.compile(value)
            except re.error as error:
                raise ValueError(f"is not a regular expression ({error})") from None
        return value

    @model_validator(mode="after")
    def _complete(self) -> RelabelRuleConfig:
        if self.action in ("replace", "hashmod", "lowercase", "uppercase", "keepequal", "dropequal") \
                and self.target_label is None:
            raise ValueError(f"action {self.action} needs targetLabel (got none)")
        if self.action == "hashmod" and self.modulus is None:
            raise ValueError("action hashmod needs modulus (got none)")
        if self.action in ("keep", "drop", "hashmod", "lowercase", "uppercase", "keepequal", "dropequal") \
                and not self.source_labels:
            raise ValueError(f"action {self.action} needs sourceLabels (got none)")
        return self

    def as_spec(self) -> dict[str, object]:
        """The CRD's ``RelabelConfig``."""
        spec = self.model_dump(by_alias=True, exclude_none=True)
        if not self.source_labels:
            spec.pop("sourceLabels")
        return spec


class _Store(Section):
    """What every store entry has: a name, and what Prometheus sends it."""

    clusters: ClassVar[tuple[ClusterKind, ...]] = CLUSTER_KINDS
    """The cluster kinds a store of this kind works from (a managed Prometheus needs its cloud's identity)."""

    name: DnsLabel = Field(
        description="Name of the store: the remote-write queue's `remote_name` and the `slo_store` label of the "
        "SLO budget series it evaluates.",
        examples=["thanos"],
    )
    send: SendMode = Field(
        "all",
        description="`all` series, or only the models' `recordings` (drift, SLO, accuracy: about a tenth of the "
        "samples; the dashboard's raw-series panels then stay empty on the store).",
        examples=["recordings"],
    )

    @property
    def evaluates_long_windows(self) -> bool:
        """Whether the store can evaluate the rules whose windows outlast Prometheus' retention (the SLO period's
        budget), from the data it holds: Thanos Ruler against a generic store's queryUrl, the workspace's own
        rules on AMP and Azure Monitor."""
        return False


class _RemoteWriteStore(_Store):
    """A store Prometheus writes to with the remote-write protocol."""

    queue: QueueConfig = QueueConfig()
    write_relabel: tuple[RelabelRuleConfig, ...] = Field(
        (),
        description="Relabel rules applied to every series before it is sent, after the send filter (drop "
        "costly series here).",
        examples=[[{"sourceLabels": ["__name__"], "regex": "apiserver_.*_bucket", "action": "drop"}]],
    )
    remote_timeout: Window | None = Field(None, description="Timeout of one send (default 30s).", examples=["30s"])


class BasicAuthConfig(Section):
    """HTTP basic authentication of a store's endpoint."""

    username: str = Field(min_length=1, description="User name.", examples=["prometheus"])
    password: SecretStr = Field(description="Password; set it with --secret.", examples=["<password>"])


class StoreTlsConfig(Section):
    """How Prometheus verifies a store's certificate."""

    ca_certificate: str | None = Field(
        None,
        pattern=r"^-----BEGIN CERTIFICATE-----[\s\S]+-----END CERTIFICATE-----\s*$",
        description="PEM of the CA that signed the store's certificate (not secret); unset: the system's CAs.",
        examples=["-----BEGIN CERTIFICATE-----\n...\n-----END CERTIFICATE-----"],
    )
    server_name: str | None = Field(None, min_length=1, description="Name the certificate must hold, if not the "
                                    "URL's host.", examples=["receive.thanos.internal"])
    insecure_skip_verify: bool = Field(
        False, description="Accept any certificate: only for a test store, never in production.", examples=[True]
    )


class GenericStoreConfig(_RemoteWriteStore):
    """A store of your own that takes Prometheus remote write: Thanos Receive, Mimir, Cortex, VictoriaMetrics."""

    kind: Literal["generic"]
    url: str = Field(
        pattern=r"^https?://[^\s/]+(/[^\s]*)?$",
        description="Remote-write endpoint (Thanos Receive: /api/v1/receive, Mimir: /api/v1/push).",
        examples=["https://thanos-receive.example.com/api/v1/receive"],
    )
    tenant: str | None = Field(
        None, pattern=r"^[A-Za-z0-9_.-]{1,150}$",
        description="Tenant the series belong to, sent in tenantHeader (Thanos, Mimir, Cortex multi-tenancy).",
        examples=["ml-platform"],
    )
    tenant_header: str = Field(
        "THANOS-TENANT", pattern=_HEADER_NAME,
        description="Header carrying the tenant (Thanos: THANOS-TENANT, Mimir and Cortex: X-Scope-OrgID).",
        examples=["X-Scope-OrgID"],
    )
    headers: dict[str, str] = Field(
        default_factory=dict, description="Other headers to send (not credentials: those are basicAuth or "
        "bearerToken).", examples=[{"X-Source": "ml-observability"}],
    )
    basic_auth: BasicAuthConfig | None = Field(None, description="Basic authentication.")
    bearer_token: SecretStr | None = Field(None, min_length=1, description="Bearer token; set it with --secret.",
                                           examples=["<token>"])
    tls: StoreTlsConfig = StoreTlsConfig()
    replica_label: PrometheusLabelName = Field(
        PROMETHEUS_REPLICA_LABEL,
        description="Label the store deduplicates the two replicas of a highly available Prometheus on: "
        "prometheus_replica for Thanos (--query.replica-label), __replica__ for Mimir's and Cortex's HA tracker.",
        examples=[HA_TRACKER_REPLICA_LABEL],
    )
    query_url: str | None = Field(
        None,
        pattern=r"^https?://[^\s/]+(/[^\s]*)?$",
        description="The store's Prometheus query API (Thanos Query, Mimir's /prometheus): Grafana gets it as a "
        "data source, and Thanos Ruler evaluates there the rules whose windows outlast Prometheus' retention.",
        examples=["http://thanos-query.thanos.svc:9090"],
    )

    @field_validator("headers")
    @classmethod
    def _plain_headers(cls, value: dict[str, str]) -> dict[str, str]:
        for name in value:
            if not re.match(_HEADER_NAME, name):
                raise ValueError(f"{name!r} is not a header name")
            if name.lower() in _RESERVED_HEADERS:
                raise ValueError(f"{name!r} is set by Prometheus or carries credentials: use basicAuth or "
                                 "bearerToken for credentials, and remove it")
        return value

    @model_validator(mode="after")
    def _one_credential(self) -> GenericStoreConfig:
        if self.basic_auth is not None and self.bearer_token is not None:
            raise ValueError("basicAuth and bearerToken are alternatives (got both); keep one")
        if self.tenant is not None and self.tenant_header.lower() in {h.lower() for h in self.headers}:
            raise ValueError(f"headers sets {self.tenant_header}, which tenant sets too; remove one")
        return self

    @model_validator(mode="after")
    def _not_templates(self) -> GenericStoreConfig:
        # Thanos Ruler's remoteWrite repeats this store's entry, and the chart renders it as a Go template.
        text = {"url": self.url, "tls.serverName": self.tls.server_name,
                **{f"headers.{name}": value for name, value in self.headers.items()}}
        templated = [key for key, value in text.items() if value is not None and "{{" in value]
        if templated:
            raise ValueError(f"must not contain '{{{{' (got it in {', '.join(templated)}): the chart renders Thanos "
                             "Ruler's remote-write settings as Go templates; change it")
        return self

    @property
    def evaluates_long_windows(self) -> bool:
        return self.query_url is not None


_AWS_QUEUE = QueueConfig.model_validate({"capacity": 2500, "maxShards": 200, "maxSamplesPerSend": 1000})
"""The queue AWS documents for remote write to a workspace (AMP-onboard-ingest-metrics)."""


class AmpStoreConfig(_RemoteWriteStore):
    """Amazon Managed Service for Prometheus (EKS): a workspace, written to with SigV4 by an IAM role that
    Prometheus' service account assumes (IRSA), allowed only ``aps:RemoteWrite`` on that workspace."""

    clusters: ClassVar[tuple[ClusterKind, ...]] = ("eks",)
    kind: Literal["amp"]
    workspace_arn: str | None = Field(
        None,
        pattern=r"^arn:aws[a-z-]*:aps:[a-z0-9-]+:[0-9]{12}:workspace/ws-[A-Za-z0-9-]+$",
        description="ARN of an existing workspace; unset: the stack creates one (deleted with the stack).",
        examples=["arn:aws:aps:eu-west-1:123456789012:workspace/ws-0123abcd-4567-89ef-0123-456789abcdef"],
    )
    queue: QueueConfig = _AWS_QUEUE

    @property
    def evaluates_long_windows(self) -> bool:
        return True


class AzureMonitorStoreConfig(_RemoteWriteStore):
    """Azure Monitor managed service for Prometheus (AKS): an Azure Monitor workspace, written to through its data
    collection rule by a user-assigned identity that Prometheus' service account federates with (workload
    identity), granted only Monitoring Metrics Publisher on that rule."""

    clusters: ClassVar[tuple[ClusterKind, ...]] = ("aks",)
    kind: Literal["azureMonitor"]
    workspace_id: str | None = Field(
        None,
        pattern=r"^/subscriptions/[^/]+/resourceGroups/[^/]+/providers/Microsoft\.Monitor/accounts/[^/]+$",
        description="Resource id of an existing Azure Monitor workspace; unset: the stack creates one in the "
        "cluster's resource group.",
        examples=["/subscriptions/<id>/resourceGroups/monitoring/providers/Microsoft.Monitor/accounts/ml-metrics"],
    )

    @property
    def evaluates_long_windows(self) -> bool:
        return True


GMP_PROMETHEUS_IMAGE = "gke.gcr.io/prometheus-engine/prometheus:v2.53.5-gmp.9-gke.0"
"""Google's drop-in Prometheus that exports to Managed Service for Prometheus (self-deployed collection)."""


class GmpStoreConfig(_Store):
    """Google Cloud Managed Service for Prometheus (GKE), by self-deployed collection: Prometheus runs Google's
    drop-in build, which exports what it scrapes and records to Monarch, as a Google service account that
    Prometheus' Kubernetes service account impersonates (Workload Identity), granted only
    ``roles/monitoring.metricWriter``. It is not remote write: queue and relabel settings do not apply."""

    clusters: ClassVar[tuple[ClusterKind, ...]] = ("gke",)

    kind: Literal["gmp"]
    image: str = Field(
        GMP_PROMETHEUS_IMAGE,
        # registry/repository:tag: the chart's values take the registry apart from the repository.
        pattern=r"^[^\s:@/]+(/[^\s:@/]+)+:v2\.[0-9]+\.[0-9]+-gmp\.[0-9]+(-gke\.[0-9]+)?$",
        description="Google's Prometheus build (registry/repository:tag), pinned (a 2.x release: the rules are "
        "checked against 2.53).",
        examples=[GMP_PROMETHEUS_IMAGE],
    )


StoreConfig = Annotated[
    GenericStoreConfig | AmpStoreConfig | AzureMonitorStoreConfig | GmpStoreConfig,
    Field(discriminator="kind"),
]
STORE_MODELS: dict[StoreKind, type[_Store]] = {
    "generic": GenericStoreConfig,
    "amp": AmpStoreConfig,
    "azureMonitor": AzureMonitorStoreConfig,
    "gmp": GmpStoreConfig,
}
CLOUD_STORE_KINDS: tuple[StoreKind, ...] = ("amp", "azureMonitor", "gmp")
"""Kinds whose identity is Prometheus' service account: a stack has at most one store of each."""


def store_problems(stores: tuple[StoreConfig, ...], kind: ClusterKind) -> list[tuple[int, str]]:
    """What a list of stores cannot do from a cluster of ``kind``: ``(index, problem)``."""
    problems: list[tuple[int, str]] = []
    seen: dict[str, int] = {}
    cloud: dict[str, int] = {}
    for index, store in enumerate(stores):
        if store.name in seen:
            problems.append((index, f"name {store.name!r} is taken by remoteWrite[{seen[store.name]}]; each store "
                                    "needs its own name"))
        seen.setdefault(store.name, index)
        if kind not in store.clusters:
            problems.append((index, f"{store.kind} stores work from {' and '.join(store.clusters)} clusters only "
                                    f"(got cluster.kind {kind}): use a generic store with its remote-write URL"))
        if store.kind in CLOUD_STORE_KINDS:
            if store.kind in cloud:
                problems.append((index, f"a second {store.kind} store (remoteWrite[{cloud[store.kind]}] is one): "
                                        "Prometheus has one service account, so one cloud identity; keep one"))
            cloud.setdefault(store.kind, index)
    return problems
