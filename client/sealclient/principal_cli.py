"""`sealctl principal ...`: approvers' WebAuthn security keys (issue 18).

    sealctl principal enrol PRINCIPAL                       (admin: one-time code, 15 minutes)
    sealctl principal credentials list [PRINCIPAL]          (admin/auditor: all; others: own)
    sealctl principal credentials approve CREDENTIAL_ID     (a second admin)
    sealctl principal credentials name CREDENTIAL_ID NAME   (admin or owner)
    sealctl principal credentials revoke CREDENTIAL_ID      (admin or owner)

A credential id is base64url and may begin with "-": put it after ``--``
(``sealctl principal credentials revoke -- -AbC...``).

The approver registers the key in the web console with the enrolment id and code; the
key counts only after an admin other than the one who started the enrolment approved it.
"""

from __future__ import annotations

import argparse
from typing import Any, Protocol

from google.protobuf.timestamp_pb2 import Timestamp

from sealapi.v1 import webauthn_pb2
from sealclient.client import SealClient
from sealclient.exitcodes import ExitCode
from sealclient.output import enum_label


class _Output(Protocol):
    as_json: bool

    def emit(self, human: str, data: Any) -> None: ...


def add_principal_parser(commands: Any) -> None:
    principal = commands.add_parser("principal", help="approvers' WebAuthn security keys (issue 18)")
    actions = principal.add_subparsers(dest="principal_command", required=True, metavar="ACTION")

    enrol = actions.add_parser("enrol", help="start a security-key enrolment for an approver (admin)")
    enrol.add_argument("principal", metavar="PRINCIPAL")
    enrol.set_defaults(handler=cmd_enrol)

    credentials = actions.add_parser("credentials", help="list, approve, name or revoke security keys")
    cred_actions = credentials.add_subparsers(dest="credentials_command", required=True, metavar="ACTION")
    listing = cred_actions.add_parser("list", help="security keys (admin/auditor: all; others: own)")
    listing.add_argument("principal", metavar="PRINCIPAL", nargs="?", default="")
    listing.set_defaults(handler=cmd_list)
    approve = cred_actions.add_parser("approve", help="approve a registered key (a second admin)")
    approve.add_argument("credential_id", metavar="CREDENTIAL_ID")
    approve.set_defaults(handler=cmd_approve)
    name = cred_actions.add_parser("name", help="rename a key (admin or owner)")
    name.add_argument("credential_id", metavar="CREDENTIAL_ID")
    name.add_argument("name", metavar="NAME")
    name.set_defaults(handler=cmd_name)
    revoke = cred_actions.add_parser("revoke", help="revoke a key for good (admin or owner)")
    revoke.add_argument("credential_id", metavar="CREDENTIAL_ID")
    revoke.set_defaults(handler=cmd_revoke)


def _utc(ts: Timestamp) -> str:
    return ts.ToDatetime().isoformat(timespec="seconds") + "Z"


def credential_text(c: webauthn_pb2.WebAuthnCredential) -> str:
    status = enum_label(webauthn_pb2.CredentialStatus.Name(c.status), "CREDENTIAL_STATUS_").lower()
    lines = [
        f"credential: {c.credential_id}",
        f"principal:  {c.principal}",
        f"name:       {c.name}",
        f"status:     {status}",
        f"key:        SHA-256 {c.public_key_sha256} ({c.attestation_format} attestation)",
        f"sign count: {c.sign_count}",
        f"enrolled:   {_utc(c.registered_at)} (enrolment started by {c.enrolled_by})",
    ]
    if c.approved_by:
        lines.append(f"approved:   by {c.approved_by}")
    elif c.status == webauthn_pb2.CREDENTIAL_STATUS_PENDING:
        lines.append(
            "approved:   not yet; an admin other than "
            f"{c.enrolled_by} runs `sealctl principal credentials approve {c.credential_id}`"
        )
    if c.revoked_by:
        lines.append(f"revoked:    by {c.revoked_by}")
    return "\n".join(lines)


def cmd_enrol(args: argparse.Namespace, client: SealClient, out: _Output) -> int:
    started = client.start_enrolment(args.principal)
    out.emit(
        "\n".join(
            [
                f"enrolment:  {started.enrolment_id}",
                f"code:       {started.code}",
                f"expires:    {_utc(started.expires_at)}",
                f"Give both to {args.principal} in person; they register the key in the web console. "
                "The code works once and is not shown again.",
            ]
        ),
        started,
    )
    return ExitCode.OK


def cmd_list(args: argparse.Namespace, client: SealClient, out: _Output) -> int:
    found = client.list_credentials(args.principal)
    text = "\n\n".join(credential_text(c) for c in found) or "no security keys"
    out.emit(text, webauthn_pb2.ListCredentialsResponse(credentials=found))
    return ExitCode.OK


def cmd_approve(args: argparse.Namespace, client: SealClient, out: _Output) -> int:
    c = client.approve_credential(args.credential_id)
    out.emit(credential_text(c), c)
    return ExitCode.OK


def cmd_name(args: argparse.Namespace, client: SealClient, out: _Output) -> int:
    c = client.name_credential(args.credential_id, args.name)
    out.emit(credential_text(c), c)
    return ExitCode.OK


def cmd_revoke(args: argparse.Namespace, client: SealClient, out: _Output) -> int:
    c = client.revoke_credential(args.credential_id)
    out.emit(credential_text(c), c)
    return ExitCode.OK
