"""The sample model's container image, made available to the cluster of each environment.

Where the image comes from depends on the cluster, and on nothing else in the program:

- ``model.image`` set: that reference is deployed as is, and nothing is built;
- kind: the local Docker engine builds ``model-service/`` and ``kind load`` copies the image into the nodes (no
  registry involved); the build reruns only when the sample's sources change, because the tag is a hash of
  them and the command's trigger;
- EKS, AKS, GKE: the stack creates a registry (ECR, ACR, Artifact Registry), pushes the image there with
  pulumi-docker-build, and grants the nodes pull access where they lack it;
- existing: the image is pushed to the registry that ``model.registry`` names (an existing cluster has none of
  the stack's), with its credentials, which then also become the pods' pull secret.

Cloud SDKs are imported inside the branch of their kind, so that a local user needs none of them.
"""

from __future__ import annotations

import hashlib
import re
import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pulumi
import pulumi_command as command
import pulumi_docker_build as docker_build

from components.clusters import Cluster
from components.config import ModelConfig

ROOT = Path(__file__).resolve().parents[2]
MODEL_SERVICE_DIR = ROOT / "model-service"
"""The sample's sources; also the image's build context."""
MODEL_SERVICE_CONTEXT = "model-service"
"""The build context as the build tools get it: relative to the project, where Pulumi runs the program, so
that the state does not depend on where the project is checked out."""
IMAGE_REPOSITORY = "ml-model-service"
"""Repository name of the image, locally and in every registry."""
MODEL_SERVICE_UID = 10001
"""Numeric user (and group) of the image's ``USER`` line: what the pod's ``runAsUser`` states, so that the kubelet
can verify ``runAsNonRoot`` without reading the image."""

_IGNORED_DIRECTORIES = {"__pycache__", ".git", ".pytest_cache", ".mypy_cache", ".ruff_cache", "build", "dist"}
_IGNORED_SUFFIXES = {".pyc", ".pyo"}
_ACR_PULL_ROLE = "7f951dda-4ed3-4680-a7ca-43fe172d538d"
"""Built-in Azure role ``AcrPull`` (the same id in every tenant)."""
_GCP_ZONE = re.compile(r"^(?P<region>[a-z]+-[a-z]+[0-9])-[a-z]$")


def source_files(directory: Path = MODEL_SERVICE_DIR) -> list[Path]:
    """The files that make the image: everything under ``directory`` but caches, virtualenvs and build output."""
    files = []
    for path in sorted(directory.rglob("*")):
        parts = path.relative_to(directory).parts
        if any(p in _IGNORED_DIRECTORIES or p.startswith(".venv") or p.endswith(".egg-info") for p in parts):
            continue
        if path.is_file() and path.suffix not in _IGNORED_SUFFIXES:
            files.append(path)
    return files


def source_hash(directory: Path = MODEL_SERVICE_DIR) -> str:
    """A content hash of the sample's sources: the same sources give the same tag on every machine.

    Paths are relative and sorted, contents hashed byte for byte, so that neither the checkout location nor a
    file's modification time changes it.
    """
    digest = hashlib.sha256()
    for path in source_files(directory):
        digest.update(path.relative_to(directory).as_posix().encode() + b"\0")
        digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()


def image_tag(directory: Path = MODEL_SERVICE_DIR) -> str:
    """The tag of a built image: 12 hex digits of the source hash, never ``latest``."""
    return source_hash(directory)[:12]


@dataclass(frozen=True, kw_only=True)
class RegistryCredentials:
    """Credentials of a registry, for pushing the image and for the pods' pull secret."""

    server: pulumi.Input[str]
    """Registry host (and port), as Docker keys credentials: ``registry.example.com``."""
    username: pulumi.Input[str]
    """User name."""
    password: pulumi.Input[str]
    """Password or token; pass a secret Output."""


@dataclass(frozen=True, kw_only=True)
class ModelImageArgs:
    """Where the image comes from; see the module's docstring for the rule per cluster kind."""

    cluster: Cluster
    """The cluster that runs the image: its kind picks the strategy, its provider objects the registry."""
    image: str | None = None
    """A ready image reference (pinned by tag or digest) to deploy instead of building one."""
    registry_address: str | None = None
    """For ``existing`` clusters: ``host[:port]/path`` the built image is pushed under."""
    registry_credentials: RegistryCredentials | None = None
    """For ``existing`` clusters: credentials of ``registry_address``, for the push and the pods' pull secret."""
    platform: str = "linux/amd64"
    """Platform of images pushed to a registry (the nodes' architecture); kind builds for the local engine."""

    @classmethod
    def from_config(cls, config: ModelConfig, *, cluster: Cluster) -> ModelImageArgs:
        """The image a stack's ``model`` section asks for, on ``cluster``."""
        registry = config.registry
        credentials = None
        if registry is not None and registry.username is not None and registry.password is not None:
            credentials = RegistryCredentials(
                server=registry.host,
                username=registry.username,
                password=pulumi.Output.secret(registry.password.get_secret_value()),
            )
        return cls(
            cluster=cluster,
            image=config.image,
            registry_address=registry.address if registry is not None else None,
            registry_credentials=credentials,
            platform=config.build.platform,
        )


class ModelImage(pulumi.ComponentResource):
    """The sample's image for one cluster: built and loaded (kind), built and pushed (a registry), or given.

    Children, by case: a ``command:local:Command`` running ``docker build`` and ``kind load docker-image``; a
    registry (``aws:ecr/repository:Repository``, ``azure-native:containerregistry:Registry`` with an ``AcrPull``
    role assignment for the kubelet identity, ``gcp:artifactregistry/repository:Repository``) and a
    ``docker-build:index:Image`` with ``push=True``; or none when ``image`` is given.
    """

    TYPE = "mlobs:model:ModelImage"

    ref: pulumi.Output[str]
    """The reference pods run: ``repository:tag@digest`` when pushed, the tag when loaded into kind, or the
    given image. It resolves only once the image is where the cluster can pull it."""
    tag: str | None
    """The content-hash tag of a built image, ``None`` when the image is given."""
    pull_credentials: RegistryCredentials | None
    """Credentials the pods need to pull the image (only for a registry the cluster has no access to)."""

    def __init__(self, name: str, args: ModelImageArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__(self.TYPE, name, None, opts)
        self._name = name
        self.pull_credentials = None
        if args.image is not None:
            self.tag = None
            self.ref = pulumi.Output.from_input(args.image)
        else:
            self.tag = image_tag()
            self.ref = self._build(args, self.tag)
        self.register_outputs({"ref": self.ref, "tag": self.tag})

    def _build(self, args: ModelImageArgs, tag: str) -> pulumi.Output[str]:
        cluster = args.cluster
        if cluster.kind == "kind":
            return self._load_into_kind(cluster, tag)
        if cluster.kind == "existing":
            if args.registry_address is None:  # the config's validation rules this out before any resource
                raise pulumi.RunError("an existing cluster needs model.image or model.registry")
            self.pull_credentials = args.registry_credentials
            registry = args.registry_credentials
            return self._push(
                pulumi.Output.from_input(f"{args.registry_address}/{IMAGE_REPOSITORY}"),
                tag,
                args.platform,
                [_registry_args(registry)] if registry is not None else [],
            )
        if cluster.kind == "eks":
            return self._push_to_ecr(cluster, tag, args.platform)
        if cluster.kind == "aks":
            return self._push_to_acr(cluster, tag, args.platform)
        if cluster.kind == "gke":
            return self._push_to_artifact_registry(cluster, tag, args.platform)
        raise pulumi.RunError(f"no image strategy for cluster kind {cluster.kind!r}")

    def _load_into_kind(self, cluster: Cluster, tag: str) -> pulumi.Output[str]:
        """Build with the local engine and copy into the kind nodes: no registry, and no pull ever happens."""
        reference = f"{IMAGE_REPOSITORY}:{tag}"
        create = cluster.cluster_name.apply(
            lambda cluster_name: (
                f"docker build --tag {shlex.quote(reference)} {shlex.quote(MODEL_SERVICE_CONTEXT)} 1>&2"
                f" && kind load docker-image --name {shlex.quote(cluster_name)} {shlex.quote(reference)} 1>&2"
            )
        )
        # A new kind cluster (whose kubeconfig then changes) has none of the images loaded into the old one. The
        # kubeconfig is secret; a hash of it reveals nothing, and kept plain it shows in the preview's diff.
        cluster_identity = pulumi.Output.unsecret(
            cluster.kubeconfig.apply(lambda kubeconfig: hashlib.sha256(kubeconfig.encode()).hexdigest())
        )
        load = command.local.Command(
            f"{self._name}-kind-load",
            create=create,
            triggers=[tag, cluster.cluster_name, cluster_identity],
            logging=command.local.Logging.STDERR,
            opts=pulumi.ResourceOptions(parent=self),
        )
        loaded: pulumi.Output[str] = load.stdout.apply(lambda _stdout: reference)
        return loaded

    def _push(
        self,
        repository: pulumi.Output[str],
        tag: str,
        platform: str,
        registries: list[docker_build.RegistryArgs],
    ) -> pulumi.Output[str]:
        """Build and push with BuildKit; previews never build (``build_on_preview=False``)."""
        image = docker_build.Image(
            f"{self._name}-image",
            tags=[repository.apply(lambda repo: f"{repo}:{tag}")],
            context=docker_build.BuildContextArgs(location=MODEL_SERVICE_CONTEXT),
            platforms=[docker_build.Platform(platform)],
            push=True,
            build_on_preview=False,
            registries=registries,
            opts=pulumi.ResourceOptions(parent=self),
        )
        return image.ref

    def _push_to_ecr(self, cluster: Cluster, tag: str, platform: str) -> pulumi.Output[str]:
        """ECR in the cluster's account and region; the nodes' role holds ``AmazonEC2ContainerRegistryReadOnly``."""
        import pulumi_aws as aws

        from components.clusters.eks import EksCluster

        assert isinstance(cluster, EksCluster)
        on_aws = pulumi.ResourceOptions(parent=self, provider=cluster.aws_provider)
        repository = aws.ecr.Repository(
            f"{self._name}-ecr",
            name=f"mlobs-{pulumi.get_stack().lower()}/{IMAGE_REPOSITORY}",
            # Tags are source hashes, but builds are not bit-reproducible: a rebuild of the same sources must
            # be able to move its tag.
            image_tag_mutability="MUTABLE",
            image_scanning_configuration={"scan_on_push": True},
            force_delete=True,  # the registry belongs to the stack: `pulumi destroy` removes it with its images
            opts=on_aws,
        )
        token = aws.ecr.get_authorization_token_output(
            registry_id=repository.registry_id,
            opts=pulumi.InvokeOutputOptions(parent=self, provider=cluster.aws_provider),
        )
        registry = docker_build.RegistryArgs(
            address=repository.repository_url.apply(lambda url: url.split("/", 1)[0]),
            username=token.user_name,
            password=pulumi.Output.secret(token.password),
        )
        return self._push(repository.repository_url, tag, platform, [registry])

    def _push_to_acr(self, cluster: Cluster, tag: str, platform: str) -> pulumi.Output[str]:
        """ACR beside the cluster, pushed with its admin credentials, pulled by the kubelet identity (``AcrPull``)."""
        import pulumi_azure_native as azure
        import pulumi_random as random

        from components.clusters.aks import AksCluster

        assert isinstance(cluster, AksCluster)
        on_azure = pulumi.ResourceOptions(parent=self, provider=cluster.azure_provider)
        invoke = pulumi.InvokeOutputOptions(parent=self, provider=cluster.azure_provider)
        # Registry names are global, 5 to 50 letters and digits: a stable random suffix keeps them unique.
        suffix = random.RandomString(
            f"{self._name}-acr-suffix", length=8, special=False, upper=False, opts=pulumi.ResourceOptions(parent=self)
        )
        stack = re.sub(r"[^a-z0-9]", "", pulumi.get_stack().lower())[:30]
        registry = azure.containerregistry.Registry(
            f"{self._name}-acr",
            registry_name=suffix.result.apply(lambda s: f"mlobs{stack}{s}"),
            resource_group_name=cluster.resource_group_name,
            location=cluster.location,
            sku={"name": "Basic"},
            # The stack pushes with the admin credentials; the nodes pull with their own identity (below).
            admin_user_enabled=True,
            opts=on_azure,
        )
        client = azure.authorization.get_client_config_output(opts=invoke)
        pull = azure.authorization.RoleAssignment(
            f"{self._name}-acr-pull",
            principal_id=cluster.kubelet_identity_object_id,
            principal_type="ServicePrincipal",
            role_definition_id=client.subscription_id.apply(
                lambda subscription: (
                    f"/subscriptions/{subscription}/providers/Microsoft.Authorization/roleDefinitions/{_ACR_PULL_ROLE}"
                )
            ),
            scope=registry.id,
            opts=on_azure,
        )
        credentials = azure.containerregistry.list_registry_credentials_output(
            resource_group_name=cluster.resource_group_name, registry_name=registry.name, opts=invoke
        )
        login = docker_build.RegistryArgs(
            address=registry.login_server,
            username=credentials.username.apply(lambda user: user or ""),
            password=pulumi.Output.secret(credentials.passwords.apply(_first_password)),
        )
        reference = self._push(
            registry.login_server.apply(lambda server: f"{server}/{IMAGE_REPOSITORY}"), tag, platform, [login]
        )
        # Pods must not try to pull before the kubelet identity may: the reference resolves after the grant.
        return pulumi.Output.all(reference, pull.id).apply(lambda values: str(values[0]))

    def _push_to_artifact_registry(self, cluster: Cluster, tag: str, platform: str) -> pulumi.Output[str]:
        """Artifact Registry in the cluster's region; the nodes' service account is ``artifactregistry.reader``."""
        import pulumi_gcp as gcp

        from components.clusters.gke import GkeCluster

        assert isinstance(cluster, GkeCluster)
        region = gcp_region(cluster.location)
        repository = gcp.artifactregistry.Repository(
            f"{self._name}-registry",
            repository_id=f"mlobs-{pulumi.get_stack().lower()}",
            format="DOCKER",
            location=region,
            project=cluster.project,
            opts=pulumi.ResourceOptions(parent=self, provider=cluster.gcp_provider),
        )
        token = gcp.organizations.get_client_config_output(
            opts=pulumi.InvokeOutputOptions(parent=self, provider=cluster.gcp_provider)
        ).access_token
        host = f"{region}-docker.pkg.dev"
        login = docker_build.RegistryArgs(
            address=host, username="oauth2accesstoken", password=pulumi.Output.secret(token)
        )
        path = pulumi.Output.all(cluster.project, repository.repository_id).apply(
            lambda values: f"{host}/{values[0]}/{values[1]}/{IMAGE_REPOSITORY}"
        )
        return self._push(path, tag, platform, [login])


def gcp_region(location: str) -> str:
    """Artifact Registry is regional: ``europe-west1-b`` (a zone) → ``europe-west1``; a region stays as it is."""
    match = _GCP_ZONE.match(location)
    return match.group("region") if match else location


def _registry_args(credentials: RegistryCredentials) -> docker_build.RegistryArgs:
    return docker_build.RegistryArgs(
        address=credentials.server,
        username=credentials.username,
        password=pulumi.Output.secret(credentials.password),
    )


def _first_password(passwords: Any) -> str:
    """The first of ACR's two admin passwords (either works; two exist so that one can be rotated)."""
    first = passwords[0]
    value = first.get("value") if isinstance(first, dict) else first.value
    return str(value)
