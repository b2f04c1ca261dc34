"""Throw-away certificates for TLS tests, made with the ``openssl`` command line (installed with the OS).

One CA signs each leaf; a leaf is valid for 127.0.0.1 and localhost as a server and as a client, so the
same files serve a broker's keystore, a Redis ``tls-port`` and a client certificate for mTLS.
"""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

LEAF_EXTENSIONS = """\
subjectAltName=IP:127.0.0.1,DNS:localhost
extendedKeyUsage=serverAuth,clientAuth
basicConstraints=CA:FALSE
keyUsage=critical,digitalSignature,keyEncipherment
subjectKeyIdentifier=hash
authorityKeyIdentifier=keyid
"""


@dataclass(frozen=True)
class Leaf:
    cert: Path
    key: Path  # unencrypted PKCS#8 (what Kafka's PEM keystore reads)

    def bundle(self, path: Path) -> Path:
        """Key and certificate in one PEM file (Kafka's ``ssl.keystore.location`` with type PEM)."""
        path.write_text(self.key.read_text() + self.cert.read_text())
        return path


def _openssl(*args: str) -> None:
    binary = shutil.which("openssl")
    assert binary, "openssl is needed to make test certificates (Debian: openssl)"
    done = subprocess.run([binary, *args], capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, f"openssl {args[0]} failed: {done.stderr[-500:]}"


def make_ca(directory: Path, name: str = "ca") -> Path:
    """A self-signed CA; returns its certificate (its key is ``<name>.key`` beside it)."""
    directory.mkdir(parents=True, exist_ok=True)
    cert, key = directory / f"{name}.pem", directory / f"{name}.key"
    _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(cert), "-days", "2",
             "-subj", f"/CN=retention-monitor test {name}", "-addext", "basicConstraints=critical,CA:TRUE",
             "-addext", "keyUsage=critical,keyCertSign,cRLSign")
    return cert


def issue(ca: Path, name: str) -> Leaf:
    """A leaf certificate for 127.0.0.1/localhost signed by ``ca`` (made by :func:`make_ca`)."""
    directory = ca.parent
    key, csr, cert = directory / f"{name}.key", directory / f"{name}.csr", directory / f"{name}.pem"
    ext = directory / f"{name}.ext"
    ext.write_text(LEAF_EXTENSIONS)
    _openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(csr), "-subj", f"/CN={name}")
    _openssl("x509", "-req", "-in", str(csr), "-CA", str(ca), "-CAkey", str(ca.with_suffix(".key")),
             "-CAcreateserial", "-out", str(cert), "-days", "2", "-extfile", str(ext))
    return Leaf(cert, key)
