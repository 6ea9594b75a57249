"""A real seald + a real sealweb over TLS on loopback, driven by Debian's headless Chromium
with Chromium's virtual authenticator holding the approvers' keys (issue 18).

Chromium refuses WebAuthn on a page with a certificate error, so the test CA is added to
an NSS database in a private HOME (``certutil``, Debian ``libnss3-tools``): sealweb's
certificate then verifies like a real one.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from fixture_layout import SealFixtures
from selenium import webdriver
from selenium.common.exceptions import (
    NoSuchElementException,
    StaleElementReferenceException,
    WebDriverException,
)
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.common.virtual_authenticator import VirtualAuthenticatorOptions
from selenium.webdriver.support.ui import WebDriverWait

from sealapi.v1 import webauthn_pb2
from seald_testing.daemon import SealDaemon, free_port
from seald_testing.webauthn import ExtraClient, client_for, config_edit, issue_clients

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
REPO = Path(__file__).resolve().parents[2]
ARTIFACTS = Path(os.environ.get("SEAL_TEST_ARTIFACTS", REPO / "test-artifacts")) / "web"


def _tool(path: str, package: str) -> str:
    assert Path(path).exists() or shutil.which(path), f"{path} missing: apt-get install {package}"
    return path


def issue_server_cert(fixtures: SealFixtures, directory: Path) -> tuple[Path, Path]:
    ca_cert = x509.load_pem_x509_certificate(fixtures.tls_ca.read_bytes())
    ca_key = serialization.load_pem_private_key(fixtures.tls_ca_key.read_bytes(), None)
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=2))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), critical=False)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .sign(ca_key, hashes.SHA256())  # type: ignore[arg-type]
    )
    cert_path, key_path = directory / "sealweb-https.pem", directory / "sealweb-https.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    key_path.chmod(0o600)
    return cert_path, key_path


class WebStack:
    """seald + sealweb processes and one Chromium with a virtual authenticator."""

    def __init__(self, fixtures: SealFixtures, work: Path) -> None:
        self.fixtures = fixtures
        self.work = work
        self.web_port = free_port()
        self.origin = f"https://localhost:{self.web_port}"
        self.extra: dict[str, ExtraClient] = issue_clients(fixtures)
        self.daemon = SealDaemon(fixtures, config_edit(self.extra, self.origin))
        self.web_proc: subprocess.Popen[bytes] | None = None
        self.web_log = work / "sealweb.log"
        self.driver: Any = None
        self.authenticator_id = ""

    def start(self) -> None:
        self.daemon.start()
        cert, key = issue_server_cert(self.fixtures, self.work)
        relay = self.extra["sealweb"]
        config = self.work / "sealweb.toml"
        config.write_text(
            "\n".join(
                [
                    "[web]",
                    f'listen = "127.0.0.1:{self.web_port}"',
                    f'tls_cert = "{cert}"',
                    f'tls_key = "{key}"',
                    f'origin = "{self.origin}"',
                    "idle_minutes = 10",
                    "signin_per_minute = 30",
                    "[seald]",
                    f'target = "{self.daemon.target}"',
                    f'ca = "{self.fixtures.tls_ca}"',
                    f'client_cert = "{relay.cert}"',
                    f'client_key = "{relay.key}"',
                    'server_name = "localhost"',
                    "",
                ]
            ),
            encoding="utf-8",
        )
        sealweb = shutil.which("sealweb", path=str(Path(sys.executable).parent))
        assert sealweb is not None, "sealweb is not installed next to this python"
        log = self.web_log.open("ab")
        self.web_proc = subprocess.Popen(
            [sealweb, "--config", str(config)], stdout=log, stderr=subprocess.STDOUT
        )
        log.close()
        deadline = time.monotonic() + 30
        while b"sealweb.started" not in self.web_log.read_bytes():
            if self.web_proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("sealweb did not start:\n" + self.web_log.read_text(errors="replace"))
            time.sleep(0.05)
        self._browser()

    def _browser(self) -> None:
        home = self.work / "browser-home"
        nssdb = home / ".pki" / "nssdb"
        nssdb.mkdir(parents=True, exist_ok=True)
        certutil = _tool("certutil", "libnss3-tools")
        subprocess.run(
            [certutil, "-d", f"sql:{nssdb}", "-N", "--empty-password"], check=True, capture_output=True
        )
        subprocess.run(
            [
                certutil,
                "-d",
                f"sql:{nssdb}",
                "-A",
                "-t",
                "C,,",
                "-n",
                "seal-test-ca",
                "-i",
                str(self.fixtures.tls_ca),
            ],
            check=True,
            capture_output=True,
        )
        options = webdriver.ChromeOptions()
        options.binary_location = _tool(CHROMIUM, "chromium")
        for argument in (
            "--headless=new",
            "--no-sandbox",
            "--disable-dev-shm-usage",
            "--window-size=430,1400",  # a phone-sized window: the pages must work there
            f"--user-data-dir={home / 'profile'}",
            "--lang=zh-CN",
        ):
            options.add_argument(argument)
        options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
        service = Service(_tool(CHROMEDRIVER, "chromium-driver"), env={**os.environ, "HOME": str(home)})
        self.driver = webdriver.Chrome(options=options, service=service)
        self.driver.set_page_load_timeout(60)
        self.driver.add_virtual_authenticator(
            VirtualAuthenticatorOptions(
                protocol="ctap2",
                transport="usb",
                has_resident_key=True,
                has_user_verification=True,
                is_user_verified=True,
            )
        )

    def stop(self) -> None:
        if self.driver is not None:
            self.driver.quit()
        if self.web_proc is not None:
            self.web_proc.terminate()
            self.web_proc.wait(timeout=20)
        if self.daemon.proc is not None:
            self.daemon.stop()

    # -- flows -----------------------------------------------------------------------------
    def enrol_in_browser(self, owner: str) -> str:
        """Admin chen.jie starts, the approver registers in the browser, sun.li approves."""
        with self.daemon.client("chen.jie") as admin:
            started = admin.start_enrolment(owner)
        self.open("/enrol")
        self.screenshot("01-enrol")
        self.driver.find_element(By.ID, "enrolment_id").send_keys(started.enrolment_id)
        self.driver.find_element(By.ID, "code").send_keys(started.code)
        self.driver.find_element(By.ID, "key_name").send_keys("虚拟密钥")
        self.driver.find_element(By.ID, "register").click()
        status = self.status_is("已登记")
        assert "已登记" in status, status + self.log_tail()
        self.screenshot("02-enrolled")
        with self.daemon.client("chen.jie") as admin:
            (credential,) = [c for c in admin.list_credentials(owner) if c.name == "虚拟密钥"]
        assert credential.status == webauthn_pb2.CREDENTIAL_STATUS_PENDING
        with client_for(self.daemon.target, self.fixtures, self.extra["sun.li"]) as admin2:
            admin2.approve_credential(credential.credential_id)
        return str(credential.credential_id)

    def sign_in(self) -> None:
        self.open("/signin")
        self.screenshot("03-signin")
        self.driver.find_element(By.ID, "signin").click()
        self.wait(lambda d: d.current_url.rstrip("/") == self.origin, 30)

    # -- browser helpers -------------------------------------------------------------------
    def open(self, path: str) -> None:
        self.driver.get(self.origin + path)

    def wait(self, condition: Any, timeout: float = 30) -> Any:
        # While a form post navigates, a lookup can hit the old document: Chromium answers
        # "Node with given id does not belong to the document" (a WebDriverException, not a
        # StaleElementReferenceException): keep polling rather than fail on the race.
        return WebDriverWait(
            self.driver,
            timeout,
            ignored_exceptions=(NoSuchElementException, StaleElementReferenceException, WebDriverException),
        ).until(condition)

    def text(self, css: str) -> str:
        return str(self.driver.find_element(By.CSS_SELECTOR, css).text)

    def status_is(self, wanted: str, timeout: float = 30) -> str:
        """The status line once it says ``wanted`` or anything but "please use your key"."""
        waiting = ("请按提示使用安全密钥", "Use your security key")

        def settled(d: Any) -> str:
            text = str(d.find_element(By.ID, "status").text)
            return text if text and (wanted in text or not text.startswith(waiting)) else ""

        try:
            return str(self.wait(settled, timeout))
        except Exception as ex:
            console = self.driver.get_log("browser")
            raise AssertionError(
                f"status stayed {self.text('#status')!r}; console {console}; sealweb log: {self.log_tail()}"
            ) from ex

    def screenshot(self, name: str) -> Path:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        path = ARTIFACTS / f"{name}.png"
        # The whole page, not only the viewport (previews run long on a phone).
        height = self.driver.execute_script("return document.documentElement.scrollHeight")
        self.driver.set_window_size(430, min(max(int(height) + 120, 800), 6000))
        self.driver.save_screenshot(str(path))
        self.driver.set_window_size(430, 1400)
        return path

    def fetch_bytes(self, path: str) -> bytes:
        """GET through the browser (its cookie), as bytes."""
        b64 = self.driver.execute_async_script(
            """
            const done = arguments[arguments.length - 1];
            fetch(arguments[0], {credentials: 'same-origin'}).then(r => r.arrayBuffer()).then(buf => {
              let s = ''; new Uint8Array(buf).forEach(b => { s += String.fromCharCode(b); }); done(btoa(s));
            }).catch(e => done('ERR ' + e));
            """,
            path,
        )
        assert not str(b64).startswith("ERR"), b64
        import base64  # noqa: PLC0415

        return base64.b64decode(b64)

    def post_from_page(self, path: str, body: str, headers: dict[str, str]) -> tuple[int, str]:
        reply = self.driver.execute_async_script(
            """
            const done = arguments[arguments.length - 1];
            const init = {method: 'POST', credentials: 'same-origin',
                          headers: arguments[2], body: arguments[1]};
            fetch(arguments[0], init)
              .then(async r => done([r.status, await r.text()]))
              .catch(e => done([0, String(e)]));
            """,
            path,
            body,
            headers,
        )
        return int(reply[0]), str(reply[1])

    def cookies(self) -> dict[str, str]:
        return {c["name"]: c["value"] for c in self.driver.get_cookies()}

    def log_tail(self) -> str:
        return json.dumps(self.web_log.read_text(errors="replace")[-4000:])
