"""The node's certificates, made with ``openssl`` at start: one CA signs every serving and client certificate.

A kubeadm cluster has the same shape: the API server serves a certificate for its Service IP, its address and
the ``kubernetes.default.svc`` names, pods trust it through the ``kube-root-ca.crt`` ConfigMap (the controller
manager publishes the CA given as ``--root-ca-file``), and the API server authenticates to the kubelet with a
client certificate the kubelet's ``clientCAFile`` trusts. Keys never leave the test's work folder.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class KeyPair:
    certificate: Path
    key: Path


def _openssl(*args: str | Path) -> None:
    subprocess.run(["openssl", *map(str, args)], check=True, capture_output=True, timeout=60)


@dataclass(frozen=True)
class CertificateAuthority:
    folder: Path
    ca: KeyPair

    @classmethod
    def create(cls, folder: Path, name: str = "ml-observability-node-ca") -> CertificateAuthority:
        folder.mkdir(parents=True, exist_ok=True)
        ca = KeyPair(folder / "ca.crt", folder / "ca.key")
        _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", ca.key, "-out", ca.certificate,
                 "-days", "2", "-subj", f"/CN={name}", "-addext", "basicConstraints=critical,CA:TRUE",
                 "-addext", "keyUsage=critical,keyCertSign,cRLSign")
        return cls(folder=folder, ca=ca)

    def issue(self, name: str, common_name: str, *, organization: str | None = None,
              dns_names: tuple[str, ...] = (), ip_addresses: tuple[str, ...] = ()) -> KeyPair:
        """A certificate for serving (when it has names) and client authentication, signed by this CA."""
        pair = KeyPair(self.folder / f"{name}.crt", self.folder / f"{name}.key")
        request = self.folder / f"{name}.csr"
        subject = f"/CN={common_name}" + (f"/O={organization}" if organization else "")
        _openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", pair.key, "-out", request, "-subj", subject)
        names = [f"DNS:{n}" for n in dns_names] + [f"IP:{ip}" for ip in ip_addresses]
        extensions = self.folder / f"{name}.ext"
        lines = ["basicConstraints=CA:FALSE", "keyUsage=critical,digitalSignature,keyEncipherment",
                 "extendedKeyUsage=serverAuth,clientAuth"]
        if names:
            lines.append("subjectAltName=" + ",".join(names))
        extensions.write_text("\n".join(lines) + "\n")
        _openssl("x509", "-req", "-in", request, "-CA", self.ca.certificate, "-CAkey", self.ca.key,
                 "-CAcreateserial", "-out", pair.certificate, "-days", "2", "-extfile", extensions)
        return pair

    def service_account_key(self) -> Path:
        key = self.folder / "service-account.key"
        _openssl("genrsa", "-out", key, "2048")
        return key
