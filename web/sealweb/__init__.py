"""sealweb: the approvers' web console (issue 18), a relay between browsers and seald.

It holds no authority of its own: seald verifies every WebAuthn assertion and acts for
the person signed in, with that person's permissions (docs/architecture.md).
"""
