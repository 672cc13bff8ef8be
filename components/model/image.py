"""The sample model's container image, made available to the cluster of each environment.

Where the image goes depends on the cluster, and on nothing else in the program (``KindFacts.image_delivery``):

- kind: the local Docker engine builds ``model-service/`` and ``kind load`` copies the image into the nodes (no
  registry involved); the build reruns only when the sample's sources change, because the tag is a hash of
  them and the command's trigger;
- EKS, AKS, GKE: the stack creates a registry (ECR, ACR, Artifact Registry), pushes the image there with
  pulumi-docker-build, and grants the nodes pull access where they lack it;
- existing: the image is pushed to the registry that ``cluster.registry`` names (an existing cluster has none of
  the stack's), with its credentials, which then also become the pods' pull secret.

Each cluster kind's module declares its registry (and imports its cloud SDK); a model that names its own image
needs none of this.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import pulumi
import pulumi_docker_build as docker_build

from components.clusters import Cluster
from components.clusters.args import RegistryCredentials

ROOT = Path(__file__).resolve().parents[2]
MODEL_SERVICE_DIR = ROOT / "model-service"
"""The sample's sources; also the image's build context."""
MODEL_SERVICE_CONTEXT = "model-service"
"""The build context as the build tools get it: relative to the project, where Pulumi runs the program, so
that the state does not depend on where the project is checked out."""
IMAGE_REPOSITORY = "ml-model-service"
"""Repository name of the image, locally and in every registry."""

_IGNORED_DIRECTORIES = {"__pycache__", ".git", ".pytest_cache", ".mypy_cache", ".ruff_cache", "build", "dist"}
_IGNORED_SUFFIXES = {".pyc", ".pyo"}


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
class ModelImageArgs:
    """The cluster the image is for; see the module's docstring for where it goes on each kind."""

    cluster: Cluster
    """The cluster that runs the image: it says where images go (``Cluster.image_repository`` or
    ``Cluster.load_image``)."""
    context: str = MODEL_SERVICE_CONTEXT
    """Build context, relative to the project (where Pulumi runs the program)."""
    repository: str = IMAGE_REPOSITORY
    """Repository name of the image, locally and in every registry."""


class ModelImage(pulumi.ComponentResource):
    """The sample's image for one cluster: built and loaded into the nodes (kind) or built and pushed to the
    cluster's registry; one per stack, whichever models run it.

    Children, by case: what ``KindCluster.load_image`` declares (a ``command:local:Command`` running ``docker
    build`` and ``kind load docker-image``), or the registry repository the cluster declares (ECR, ACR with an
    ``AcrPull`` grant, Artifact Registry; none for an existing cluster's registry) and a ``docker-build:index:Image``
    with ``push=True``.
    """

    TYPE = "mlobs:model:ModelImage"

    ref: pulumi.Output[str]
    """The reference pods run: ``repository:tag@digest`` when pushed, ``repository:tag`` when loaded into kind. It
    resolves only once the image is where the cluster can pull it."""
    tag: str
    """The content-hash tag of the build."""
    pull_credentials: RegistryCredentials | None
    """Credentials the pods need to pull the image (only for a registry the cluster has no access to)."""

    def __init__(self, name: str, args: ModelImageArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__(self.TYPE, name, None, opts)
        cluster = args.cluster
        self.tag = image_tag()
        self.pull_credentials = None
        if cluster.facts.image_delivery == "load":
            self.ref = cluster.load_image(name, repository=args.repository, tag=self.tag, context=args.context,
                                          parent=self)
        else:
            target = cluster.image_repository(name, args.repository, parent=self)
            self.pull_credentials = target.pull_credentials
            image = docker_build.Image(
                f"{name}-image",
                tags=[pulumi.Output.from_input(target.repository).apply(lambda repo: f"{repo}:{self.tag}")],
                context=docker_build.BuildContextArgs(location=args.context),
                platforms=[docker_build.Platform(target.platform)],
                push=True,
                build_on_preview=False,  # previews never build
                registries=[
                    docker_build.RegistryArgs(address=login.server, username=login.username,
                                              password=pulumi.Output.secret(login.password))
                    for login in target.push_credentials
                ],
                opts=pulumi.ResourceOptions(parent=self),
            )
            # Pods must not try to pull before the nodes may (an AcrPull grant, say).
            self.ref = pulumi.Output.all(image.ref, *[r.id for r in target.pullable_after]).apply(
                lambda values: str(values[0])
            )
        self.register_outputs({"ref": self.ref, "tag": self.tag})
