"""`sealctl seal ...`: the seal registry and its lifecycle (R01-R03; admin actions R02).

    sealctl seal list | show SEAL
    sealctl seal create-key SEAL [-o CSR.pem]        key made ON the token, CSR out
    sealctl seal import-cert SEAL CERT               PEM or DER, checked against the key
    sealctl seal change SEAL [--name NAME] [--certificate CERT] [--comment TEXT]
    sealctl seal suspend|report-lost SEAL [--comment TEXT]
    sealctl seal resume|destroy SEAL --proposal ID [--comment TEXT]   (two admins)
"""

from __future__ import annotations

import argparse
import hashlib
import sys
from pathlib import Path
from typing import Any, Protocol

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from sealapi.v1 import common_pb2, seals_pb2
from sealclient.client import SealClient
from sealclient.errors import LocalInputError
from sealclient.exitcodes import ExitCode
from sealclient.output import enum_label, escaped, seals_table

MAX_CERTIFICATE_FILE = 64 * 1024


class _Output(Protocol):
    as_json: bool

    def emit(self, human: str, data: Any) -> None: ...


def add_seal_parser(commands: Any) -> Any:
    """`sealctl seal ACTION`; returns the action group so other modules add actions (image)."""
    seal = commands.add_parser("seal", help="seal registry and lifecycle (admin)")
    actions = seal.add_subparsers(dest="seal_command", required=True, metavar="ACTION")

    actions.add_parser("list", help="the seals you have a role on").set_defaults(handler=cmd_seal_list)
    show = actions.add_parser("show", help="one seal: status, certificate, scope")
    show.add_argument("seal_id", metavar="SEAL")
    show.set_defaults(handler=cmd_seal_show)

    create = actions.add_parser(
        "create-key", help="create the seal key ON the token (custodian unlocked it) and get its CSR"
    )
    create.add_argument("seal_id", metavar="SEAL")
    create.add_argument("--output", "-o", type=Path, metavar="FILE", help="write the CSR (PEM) here")
    create.set_defaults(handler=cmd_seal_create_key)

    imp = actions.add_parser("import-cert", help="import the certificate the CA issued for the CSR")
    imp.add_argument("seal_id", metavar="SEAL")
    imp.add_argument("certificate", type=Path, metavar="CERT", help="PEM or DER file")
    imp.set_defaults(handler=cmd_seal_import_cert)

    change = actions.add_parser("change", help="new display name and/or renewed certificate (same key)")
    change.add_argument("seal_id", metavar="SEAL")
    change.add_argument("--name", default="", help="new display name")
    change.add_argument("--certificate", type=Path, metavar="CERT", help="renewed certificate, PEM or DER")
    change.add_argument("--comment", default="", help="why (recorded)")
    change.set_defaults(handler=cmd_seal_change)

    for action, help_text, two_admins in (
        ("suspend", "suspend at once (停用); pending approvals become void", False),
        ("report-lost", "report the token lost (挂失); final until destroyed", False),
        ("resume", "resume a suspended seal (two admins: propose, then confirm)", True),
        ("destroy", "delete the key on the token (销毁; two admins; irreversible)", True),
    ):
        parser = actions.add_parser(action, help=help_text)
        parser.add_argument("seal_id", metavar="SEAL")
        parser.add_argument("--comment", default="", help="why (recorded)")
        if two_admins:
            parser.add_argument(
                "--proposal",
                required=True,
                metavar="ID",
                help="8-64 letters/digits/-/_; the first admin proposes with it, a second confirms",
            )
        parser.set_defaults(handler=cmd_seal_lifecycle, seal_action=action)
    return actions


def read_certificate(path: Path) -> bytes:
    """A certificate file as DER (PEM accepted); local problems exit 6 before any call."""
    try:
        data = path.read_bytes()[: MAX_CERTIFICATE_FILE + 1]
    except OSError as ex:
        raise LocalInputError("unreadable_file", f"cannot read {path}: {ex.strerror}") from ex
    try:
        if b"-----BEGIN" in data:
            return x509.load_pem_x509_certificate(data).public_bytes(serialization.Encoding.DER)
        return x509.load_der_x509_certificate(data).public_bytes(serialization.Encoding.DER)
    except ValueError as ex:
        raise LocalInputError(
            "bad_certificate", f"{path} is not an X.509 certificate (PEM or DER)"
        ) from ex


def seal_text(seal: seals_pb2.Seal) -> str:
    seal = escaped(seal)  # whatever the server sent (issue 14)
    lines = [
        f"seal:         {seal.seal_id} ({enum_label(common_pb2.SealType.Name(seal.type), 'SEAL_TYPE_')})",
        f"name:         {seal.organisation} {seal.display_name}",
        f"status:       {enum_label(common_pb2.SealStatus.Name(seal.status), 'SEAL_STATUS_')}",
    ]
    if seal.status_reason:
        lines.append(f"              {seal.status_reason}")
    lines += [
        f"token:        {seal.token_label} (serial {seal.token_serial}), key {seal.key_label}",
        f"custodian:    {seal.custodian or '(none)'}",
        f"categories:   {', '.join(seal.categories)}",
        f"approvals:    {seal.required_approvals} from {', '.join(seal.approver_groups) or 'approvers'}",
    ]
    if seal.certificate_der:
        cert = x509.load_der_x509_certificate(seal.certificate_der)
        lines += [
            f"certificate:  {cert.subject.rfc4514_string()}",
            f"              sha256 {seal.certificate_sha256}",
            f"              valid {cert.not_valid_before_utc:%Y-%m-%d} "
            f"to {cert.not_valid_after_utc:%Y-%m-%d}",
        ]
    else:
        lines.append("certificate:  none yet (sealctl seal create-key, then import-cert)")
    return "\n".join(lines)


def cmd_seal_list(args: argparse.Namespace, client: SealClient, out: _Output) -> int:
    response = client.seals()
    out.emit(seals_table(response.seals), response)
    return ExitCode.OK


def cmd_seal_show(args: argparse.Namespace, client: SealClient, out: _Output) -> int:
    seal = client.get_seal(args.seal_id)
    out.emit(seal_text(seal), seal)
    return ExitCode.OK


def cmd_seal_create_key(args: argparse.Namespace, client: SealClient, out: _Output) -> int:
    response = client.create_seal_key(args.seal_id)
    pem = x509.load_der_x509_csr(response.csr_der).public_bytes(serialization.Encoding.PEM).decode()
    data = {
        "seal_id": response.seal_id,
        "csr_sha256": hashlib.sha256(response.csr_der).hexdigest(),
        "csr_pem": pem,
    }
    if args.output is not None:
        try:
            args.output.write_text(pem, encoding="ascii")
        except OSError as ex:
            raise LocalInputError("unwritable_file", f"cannot write {args.output}: {ex.strerror}") from ex
        data["csr_file"] = str(args.output)
        human = f"CSR for seal {response.seal_id} written to {args.output}; have the seal CA sign it"
    elif out.as_json:
        human = ""
    else:
        human = pem.rstrip("\n")
    out.emit(human, data)
    if args.output is None and not out.as_json:
        print("have the seal CA sign this CSR, then: sealctl seal import-cert", file=sys.stderr)
    return ExitCode.OK


def cmd_seal_import_cert(args: argparse.Namespace, client: SealClient, out: _Output) -> int:
    seal = client.import_seal_certificate(args.seal_id, read_certificate(args.certificate))
    out.emit(seal_text(seal), seal)
    return ExitCode.OK


def cmd_seal_change(args: argparse.Namespace, client: SealClient, out: _Output) -> int:
    if not args.name and args.certificate is None:
        raise LocalInputError("nothing_to_change", "give --name and/or --certificate")
    der = read_certificate(args.certificate) if args.certificate is not None else b""
    seal = client.change_seal(args.seal_id, display_name=args.name, certificate_der=der, comment=args.comment)
    out.emit(seal_text(seal), seal)
    return ExitCode.OK


def cmd_seal_lifecycle(args: argparse.Namespace, client: SealClient, out: _Output) -> int:
    seal = client.seal_lifecycle(
        args.seal_action, args.seal_id, comment=args.comment, proposal_id=getattr(args, "proposal", "")
    )
    out.emit(seal_text(seal), seal)
    return ExitCode.OK
