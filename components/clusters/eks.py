"""Amazon EKS through pulumi-eks: managed nodes, the EBS CSI driver, a gp3 StorageClass, and ECR for images.

Prometheus keeps its data on a PersistentVolume; on EKS that needs the EBS CSI driver (an add-on with an IAM
role for its service account) and a StorageClass that provisions gp3 volumes. The class is created here, and
its name exported, so that the monitoring stack's volumes use it.
"""

from __future__ import annotations

import json
from typing import Any

import pulumi
import pulumi_aws as aws
import pulumi_eks as eks
import pulumi_kubernetes as k8s

from components.clusters import Cluster, ImageRepository
from components.clusters.args import EksClusterArgs, RegistryCredentials
from components.contracts import stack_resource_name

_NODE_POLICIES = (
    "arn:aws:iam::aws:policy/AmazonEKSWorkerNodePolicy",
    "arn:aws:iam::aws:policy/AmazonEKS_CNI_Policy",
    "arn:aws:iam::aws:policy/AmazonEC2ContainerRegistryReadOnly",
)
_EBS_CSI_POLICY = "arn:aws:iam::aws:policy/service-role/AmazonEBSCSIDriverPolicy"
_EBS_CSI_SERVICE_ACCOUNT = "system:serviceaccount:kube-system:ebs-csi-controller-sa"
GP3_STORAGE_CLASS = "gp3"


class EksCluster(Cluster):
    """An EKS cluster in ``cluster.region`` with a managed node group and a ``gp3`` StorageClass.

    Creates an AWS provider for the region, the node role, ``eks:index:Cluster`` (API authentication, an OIDC
    provider for service-account roles), ``eks:index:ManagedNodeGroup``, the ``aws-ebs-csi-driver`` add-on with
    its role, and the StorageClass. The kubeconfig runs ``aws eks get-token``: the AWS CLI must be on PATH.
    """

    TYPE = "mlobs:cluster:EksCluster"

    aws_provider: aws.Provider
    """The AWS provider of the cluster's region, for resources beside the cluster (the image registry)."""
    region: str
    """The cluster's AWS region."""
    oidc_provider_arn: pulumi.Output[str]
    """ARN of the cluster's IAM OIDC provider, which roles for service accounts (IRSA) trust."""
    oidc_issuer: pulumi.Output[str]
    """The cluster's OIDC issuer without ``https://``: the prefix of IRSA's trust conditions (``<issuer>:sub``)."""
    image_platform: str
    """Platform of the images pushed for the nodes."""

    def __init__(self, name: str, args: EksClusterArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__(self.TYPE, name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        aws_provider = aws.Provider(f"{name}-aws", region=args.region, opts=child)
        on_aws = pulumi.ResourceOptions(parent=self, provider=aws_provider)
        protected = pulumi.ResourceOptions(parent=self, provider=aws_provider, protect=args.protect)

        node_role = aws.iam.Role(
            f"{name}-node-role",
            assume_role_policy=json.dumps(_assume_role({"Service": "ec2.amazonaws.com"})),
            opts=on_aws,
        )
        node_policies = [
            aws.iam.RolePolicyAttachment(
                f"{name}-node-{policy.rsplit('/', 1)[-1].lower()}", role=node_role.name, policy_arn=policy, opts=on_aws
            )
            for policy in _NODE_POLICIES
        ]

        eks_name = stack_resource_name()
        cluster = eks.Cluster(
            f"{name}-eks",
            name=eks_name,
            version=args.kubernetes_version,
            authentication_mode=eks.AuthenticationMode.API,
            skip_default_node_group=True,
            create_oidc_provider=True,
            vpc_id=args.vpc_id,
            subnet_ids=list(args.subnet_ids) or None,
            opts=pulumi.ResourceOptions(parent=self, providers={"aws": aws_provider}, protect=args.protect),
        )
        node_group = eks.ManagedNodeGroup(
            f"{name}-nodes",
            cluster=cluster,
            node_role=node_role,
            instance_types=[args.instance_type],
            scaling_config={
                "desired_size": args.node_count,
                "min_size": args.min_nodes,
                "max_size": args.max_nodes,
            },
            opts=pulumi.ResourceOptions.merge(protected, pulumi.ResourceOptions(depends_on=node_policies)),
        )

        ebs_role = aws.iam.Role(
            f"{name}-ebs-csi-role",
            assume_role_policy=service_account_trust(
                cluster.oidc_provider_arn, cluster.oidc_issuer, _EBS_CSI_SERVICE_ACCOUNT
            ),
            opts=on_aws,
        )
        ebs_policy = aws.iam.RolePolicyAttachment(
            f"{name}-ebs-csi-policy", role=ebs_role.name, policy_arn=_EBS_CSI_POLICY, opts=on_aws
        )
        ebs_addon = aws.eks.Addon(
            f"{name}-ebs-csi",
            cluster_name=eks_name,
            addon_name="aws-ebs-csi-driver",
            service_account_role_arn=ebs_role.arn,
            opts=pulumi.ResourceOptions.merge(
                on_aws, pulumi.ResourceOptions(depends_on=[cluster, node_group, ebs_policy])
            ),
        )

        self.kind = "eks"
        self.aws_provider = aws_provider
        self.region = args.region
        self.oidc_provider_arn = cluster.oidc_provider_arn
        self.oidc_issuer = cluster.oidc_issuer
        self.cluster_name = pulumi.Output.from_input(eks_name)
        self.kubeconfig = pulumi.Output.secret(cluster.kubeconfig_json)
        self.kubernetes_version = args.kubernetes_version
        self.control_plane_metrics = bool(self.facts.control_plane_metrics)
        self.image_platform = args.image_platform
        # Workloads wait for the nodes and the storage driver: a release started before them would wait for
        # volumes and nodes, or time out.
        self.provider = k8s.Provider(
            f"{name}-k8s",
            kubeconfig=self.kubeconfig,
            opts=pulumi.ResourceOptions(parent=self, depends_on=[node_group, ebs_addon]),
        )
        gp3 = k8s.storage.v1.StorageClass(
            f"{name}-gp3",
            metadata={"name": GP3_STORAGE_CLASS},
            provisioner="ebs.csi.aws.com",
            parameters={"type": "gp3", "fsType": "ext4", "encrypted": "true"},
            volume_binding_mode="WaitForFirstConsumer",
            allow_volume_expansion=True,
            reclaim_policy="Delete",
            opts=pulumi.ResourceOptions(parent=self, provider=self.provider),
        )
        self.default_storage_class = gp3.metadata.apply(lambda metadata: str(metadata.name))
        self._register()

    def image_repository(self, name: str, image: str, *, parent: pulumi.Resource) -> ImageRepository:
        """An ECR repository in the cluster's account and region; the nodes' role may pull
        (``AmazonEC2ContainerRegistryReadOnly``)."""
        repository = aws.ecr.Repository(
            f"{name}-ecr",
            name=f"{stack_resource_name().lower()}/{image}",
            # Tags are source hashes, but builds are not bit-reproducible: a rebuild of the same sources must
            # be able to move its tag.
            image_tag_mutability="MUTABLE",
            image_scanning_configuration={"scan_on_push": True},
            force_delete=True,  # the registry belongs to the stack: `pulumi destroy` removes it with its images
            opts=pulumi.ResourceOptions(parent=parent, provider=self.aws_provider),
        )
        token = aws.ecr.get_authorization_token_output(
            registry_id=repository.registry_id,
            opts=pulumi.InvokeOutputOptions(parent=parent, provider=self.aws_provider),
        )
        login = RegistryCredentials(
            server=repository.repository_url.apply(lambda url: url.split("/", 1)[0]),
            username=token.user_name,
            password=pulumi.Output.secret(token.password),
        )
        return ImageRepository(
            repository=repository.repository_url, push_credentials=[login], platform=self.image_platform
        )


def service_account_trust(
    provider_arn: pulumi.Input[str], issuer: pulumi.Input[str], service_account: str
) -> pulumi.Output[str]:
    """The trust policy of a role for one Kubernetes service account (IRSA): assumed with the account's web
    identity token, for the STS audience, by ``system:serviceaccount:<namespace>:<name>`` only."""
    return pulumi.Output.all(provider_arn, issuer).apply(
        lambda values: json.dumps(
            _assume_role(
                {"Federated": values[0]},
                action="sts:AssumeRoleWithWebIdentity",
                condition={"StringEquals": {f"{values[1]}:sub": service_account,
                                            f"{values[1]}:aud": "sts.amazonaws.com"}},
            )
        )
    )


def _assume_role(
    principal: dict[str, str], action: str = "sts:AssumeRole", condition: dict[str, Any] | None = None
) -> dict[str, Any]:
    statement: dict[str, Any] = {"Effect": "Allow", "Principal": principal, "Action": action}
    if condition:
        statement["Condition"] = condition
    return {"Version": "2012-10-17", "Statement": [statement]}
