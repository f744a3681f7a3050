"""TLS files for serving, checked before gRPC sees them.

gRPC reports an unusable certificate or key only as a failure to bind the
address, which sends people looking at ports. Loading the files with the
standard library's ssl module first gives an error that names the file and says
what is wrong with it.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from pathlib import Path

import grpc

from entroq_core.errors import InvalidArgument


@dataclass(frozen=True)
class TlsFiles:
    """PEM files for serving TLS; ``client_ca`` turns on mutual TLS."""

    cert: Path
    key: Path
    client_ca: Path | None = None

    def credentials(self) -> grpc.ServerCredentials:
        """Server credentials read from the files.

        Raises:
            InvalidArgument: a file is unreadable, not PEM, or the key does not
                belong to the certificate, named by its option.
        """
        cert = _read("tls_cert", self.cert, b"-----BEGIN CERTIFICATE-----", "a PEM certificate")
        key = _read("tls_key", self.key, b"PRIVATE KEY-----", "a PEM private key")
        client_ca = None
        if self.client_ca is not None:
            client_ca = _read(
                "tls_client_ca", self.client_ca, b"-----BEGIN CERTIFICATE-----", "PEM certificates"
            )
        self._check_pair()
        return grpc.ssl_server_credentials(
            [(key, cert)],
            root_certificates=client_ca,
            require_client_auth=client_ca is not None,
        )

    def _check_pair(self) -> None:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)

        def no_password() -> bytes:
            raise InvalidArgument("tls_key", str(self.key), "is encrypted; give an unencrypted key")

        try:
            context.load_cert_chain(self.cert, self.key, password=no_password)
        except ssl.SSLError as exc:
            raise InvalidArgument(
                "tls_key",
                str(self.key),
                f"does not load with certificate {self.cert} (a key of another "
                f"certificate, or damaged PEM): {exc.reason or exc}",
            ) from None
        if self.client_ca is not None:
            try:
                context.load_verify_locations(cafile=self.client_ca)
            except ssl.SSLError as exc:
                raise InvalidArgument(
                    "tls_client_ca", str(self.client_ca), f"is not usable: {exc.reason or exc}"
                ) from None


def _read(field: str, path: Path, marker: bytes, what: str) -> bytes:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise InvalidArgument(field, str(path), f"cannot be read: {exc.strerror or exc}") from None
    if marker not in data:
        raise InvalidArgument(field, str(path), f"is not {what}")
    return data
