"""seald's test harness, shipped to the tests as a pytest plugin (like pyHanko's test fixtures).

tests/conftest.py registers `seald_testing.plugin`; pyproject's pytest `pythonpath` puts
tests/ (this package), tests/assets/ and softhsm-fixtures/ on sys.path, so no test edits it.

- plugin: the fixtures (SoftHSM fixture tree, `daemon`, `daemon_factory`,
  `module_daemon_factory`, live PKI, token session, seal image);
- daemon: `SealDaemon`, one real seald process on loopback, and small client helpers;
- config: `DaemonConfig`, the typed builder for the daemon's TOML;
- clients, custody, certs, seals, hotplug, images, terminal, tokens, webauthn,
  soft_authenticator: helpers shared by test files;
- web: a real seald + sealweb driven by headless Chromium; webhook_receiver: a real HTTPS
  receiver on loopback (both also used by bench/);
- state_checks, ltv_pki, large_flow: state invariants, certomancer PKI, the large-document
  flow (also used by bench/).
"""
