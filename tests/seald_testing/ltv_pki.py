"""A live test PKI on loopback for B-T/B-LT/B-LTA: certomancer's CA, TSA, OCSP and CRL
responders (its Animator WSGI app), served by wsgiref in a thread on 127.0.0.1.

The seal's key stays on the SoftHSM token: certomancer issues a certificate for the
token's PUBLIC key (a public-only key in its key set) with OCSP and CRL URLs pointing
at the responders, and the test signs with that certificate and the token's key.
"""

from __future__ import annotations

import socketserver
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

import pkcs11
from certomancer.integrations.animator import Animator, AnimatorArchStore
from certomancer.registry import CertLabel, CertomancerConfig
from cryptography import x509 as cx509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.serialization import Encoding
from fixture_layout import SealFixtures
from pkcs11 import Attribute, CertificateType, ObjectClass

ARCH = "seal-ltv"
VALIDITY = {"valid-from": "2020-01-01T00:00:00+0000", "valid-to": "2100-01-01T00:00:00+0000"}
# Issue 16: a second TSA whose certificate ends this many days after the PKI starts, so
# an archive timestamp from it is due for renewal (relative to the real date: tests pass
# on any date).
SHORT_TSA_DAYS = 200


@dataclass(frozen=True)
class LivePki:
    base_url: str
    tsa_url: str
    root_pem: bytes
    seal_cert_der: bytes
    revoked_seal_cert_der: bytes
    # Issue 16: a TSA whose certificate ends SHORT_TSA_DAYS from now (same root, same
    # revocation services), and that certificate's end.
    short_tsa_url: str = ""
    short_tsa_not_after: datetime | None = None
    # Services answering 503 while named here ("tsa", "ocsp", "crls": the first path
    # segment after the architecture), so a test can take one responder down.
    outage: set[str] = field(default_factory=set)


class _ThreadingWSGIServer(socketserver.ThreadingMixIn, WSGIServer):
    daemon_threads = True


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


def _write_key(path: Path) -> None:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )


def _key_usage(*usages: str) -> dict[str, Any]:
    return {
        "id": "key_usage",
        "critical": True,
        "smart-value": {"schema": "key-usage", "params": list(usages)},
    }


def _config(seal_cert_pem: bytes, keydir: Path, short_tsa_until: datetime) -> dict[str, Any]:
    for name in ("root", "tsa", "ocsp"):
        _write_key(keydir / f"{name}.key.pem")
    public = cx509.load_pem_x509_certificate(seal_cert_pem).public_key()
    (keydir / "seal.pub.pem").write_bytes(
        public.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    revocable = [
        {
            "id": "crl_distribution_points",
            "smart-value": {"schema": "crl-dist-url", "params": {"crl-repo-names": ["root"]}},
        },
        {
            "id": "authority_information_access",
            "smart-value": {"schema": "aia-urls", "params": {"ocsp-responder-names": ["root"]}},
        },
    ]
    seal_cert = {
        "subject": "seal",
        "subject-key": "seal",
        "issuer": "root",
        "validity": VALIDITY,
        "extensions": [_key_usage("digital_signature", "non_repudiation"), *revocable],
    }
    return {
        "keysets": {
            ARCH: {
                "path-prefix": str(keydir),
                "keys": {
                    "root": {"path": "root.key.pem"},
                    "tsa": {"path": "tsa.key.pem"},
                    "ocsp": {"path": "ocsp.key.pem"},
                    "seal": {"path": "seal.pub.pem", "public-only": True},
                },
            }
        },
        "pki-architectures": {
            ARCH: {
                "keyset": ARCH,
                "entity-defaults": {"country-name": "CN", "organization-name": "测试信任服务"},
                "entities": {
                    "root": {"common-name": "测试根CA"},
                    "tsa": {"common-name": "测试时间戳服务"},
                    "tsa-short": {"common-name": "测试时间戳服务 短期证书"},
                    "ocsp": {"common-name": "测试OCSP"},
                    "seal": {
                        "organization-name": "华夏示例科技有限公司",
                        "common-name": "华夏示例科技有限公司 合同专用章",
                    },
                },
                "certs": {
                    "root": {
                        "subject": "root",
                        "subject-key": "root",
                        "issuer": "root",
                        "authority-key": "root",
                        "validity": VALIDITY,
                        "extensions": [
                            {"id": "basic_constraints", "critical": True, "value": {"ca": True}},
                            _key_usage("digital_signature", "key_cert_sign", "crl_sign"),
                        ],
                    },
                    "ocsp": {
                        "issuer": "root",
                        "validity": VALIDITY,
                        "extensions": [
                            _key_usage("digital_signature"),
                            {
                                "id": "extended_key_usage",
                                "critical": True,
                                "value": ["ocsp_signing"],
                            },
                            {"id": "ocsp_no_check"},
                        ],
                    },
                    "tsa": {
                        "issuer": "root",
                        "validity": VALIDITY,
                        "extensions": [
                            _key_usage("digital_signature"),
                            {
                                "id": "extended_key_usage",
                                "critical": True,
                                "value": ["time_stamping"],
                            },
                            *revocable,
                        ],
                    },
                    "tsa-short": {
                        "subject": "tsa-short",
                        "subject-key": "tsa",
                        "issuer": "root",
                        "validity": {
                            "valid-from": VALIDITY["valid-from"],
                            "valid-to": short_tsa_until.strftime("%Y-%m-%dT%H:%M:%S+0000"),
                        },
                        "extensions": [
                            _key_usage("digital_signature"),
                            {
                                "id": "extended_key_usage",
                                "critical": True,
                                "value": ["time_stamping"],
                            },
                            *revocable,
                        ],
                    },
                    "seal": seal_cert,
                    "seal-revoked": {
                        "template": "seal",
                        "subject": "seal",
                        "revocation": {
                            "revoked-since": "2021-01-01T00:00:00+0000",
                            "reason": "key_compromise",
                        },
                    },
                },
                "services": {
                    "ocsp": {
                        "root": {
                            "for-issuer": "root",
                            "responder-cert": "ocsp",
                            "signing-key": "ocsp",
                        }
                    },
                    "crl-repo": {
                        "root": {
                            "for-issuer": "root",
                            "signing-key": "root",
                            "simulated-update-schedule": "P7D",
                        }
                    },
                    "time-stamping": {
                        "tsa": {"signing-key": "tsa", "signing-cert": "tsa"},
                        "tsa-short": {"signing-key": "tsa", "signing-cert": "tsa-short"},
                    },
                },
            }
        },
    }


@contextmanager
def live_pki(seal_cert_pem: bytes, workdir: Path) -> Iterator[LivePki]:
    """Start the responders; yield their URLs and the certificates; stop them."""
    workdir.mkdir(parents=True, exist_ok=True)
    server = make_server(
        "127.0.0.1",
        0,
        lambda environ, start: [],
        server_class=_ThreadingWSGIServer,
        handler_class=_QuietHandler,
    )
    base_url = f"http://127.0.0.1:{server.server_port}"
    short_until = (datetime.now(UTC) + timedelta(days=SHORT_TSA_DAYS)).replace(microsecond=0)
    config = CertomancerConfig(
        _config(seal_cert_pem, workdir, short_until),
        key_search_dir=str(workdir),
        external_url_prefix=base_url,
    )
    arch = config.get_pki_arch(ARCH)
    live = LivePki(
        base_url=base_url,
        tsa_url=f"{base_url}/{ARCH}/tsa/tsa",
        root_pem=_pem(arch.get_cert(CertLabel("root")).dump()),
        seal_cert_der=arch.get_cert(CertLabel("seal")).dump(),
        revoked_seal_cert_der=arch.get_cert(CertLabel("seal-revoked")).dump(),
        short_tsa_url=f"{base_url}/{ARCH}/tsa/tsa-short",
        short_tsa_not_after=short_until,
    )
    animator = Animator(AnimatorArchStore(config.pki_archs), with_web_ui=False)

    def app(environ: dict[str, Any], start: Any) -> Any:
        parts = environ.get("PATH_INFO", "").strip("/").split("/")
        if len(parts) > 1 and parts[1] in live.outage:
            start("503 Service Unavailable", [("Content-Type", "text/plain")])
            return [b"down for the test"]
        return animator(environ, start)

    server.set_app(app)
    thread = threading.Thread(target=server.serve_forever, name="certomancer", daemon=True)
    thread.start()
    try:
        yield live
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def _pem(der: bytes) -> bytes:
    cert = cx509.load_der_x509_certificate(der)
    return cert.public_bytes(serialization.Encoding.PEM)


def install_seal_certificate(fx: SealFixtures, cert_der: bytes) -> None:
    """certomancer's certificate for the token's own key replaces the fixture's one, on
    the token and in the config (the registered certificate must be the token's)."""
    seal = fx.seals["contract"]
    cert = cx509.load_der_x509_certificate(cert_der)
    token = pkcs11.lib(str(fx.module)).get_token(token_label=seal.token_label)
    with token.open(rw=True, user_pin=seal.user_pin) as session:
        for old in session.get_objects({Attribute.CLASS: ObjectClass.CERTIFICATE}):
            old.destroy()
        session.create_object(
            {
                Attribute.CLASS: ObjectClass.CERTIFICATE,
                Attribute.CERTIFICATE_TYPE: CertificateType.X_509,
                Attribute.TOKEN: True,
                Attribute.PRIVATE: False,
                Attribute.LABEL: seal.key_label,
                Attribute.ID: bytes.fromhex(seal.key_id_hex),
                Attribute.SUBJECT: cert.subject.public_bytes(),
                Attribute.ISSUER: cert.issuer.public_bytes(),
                Attribute.VALUE: cert_der,
            }
        )
    seal.certificate.write_bytes(cert.public_bytes(Encoding.PEM))
