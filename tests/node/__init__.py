"""The product on a real Kubernetes node on this machine: ``pulumi up`` of the program onto a kubelet, containerd
and kube-proxy that run inside namespaces of their own, with images built here from source (marker ``node``)."""
