"""The outbound address policy over every spelling of an internal address. Addresses are checked, never connected to."""

from __future__ import annotations

import datetime as dt
import ipaddress
import socket
import ssl
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from batchpress.config import Settings
from batchpress.models import WebhookEvent
from batchpress.outbound import GuardedTransport
from batchpress.outbound.guard import OutboundBlocked, OutboundPolicy, internal_kind, literal_address
from batchpress.webhooks.delivery import make_client, post, retryable
from batchpress.webhooks.signing import new_secret

PROTECTED = OutboundPolicy()

BLOCKED = [
    ("127.0.0.1", "127.0.0.1 is a loopback address"),
    ("127.255.0.9", "a loopback address"),
    ("[::1]", "[::1] is a loopback address"),
    ("::1", "a loopback address"),
    ("0.0.0.0", "an unspecified address"),
    ("::", "an unspecified address"),
    ("0.1.2.3", "'this network' address"),
    ("2130706433", "2130706433 means 127.0.0.1, a loopback address"),
    ("0177.0.0.1", "means 127.0.0.1, a loopback address"),
    ("0x7f000001", "means 127.0.0.1, a loopback address"),
    ("0x7f.1", "means 127.0.0.1, a loopback address"),
    ("127.1", "means 127.0.0.1, a loopback address"),
    ("012.0.0.1", "means 10.0.0.1, a private address"),
    ("10.0.0.1", "a private address"),
    ("172.16.5.4", "a private address"),
    ("172.31.255.255", "a private address"),
    ("192.168.1.1", "a private address"),
    ("fc00::1", "a private address"),
    ("fd12:3456::1", "a private address"),
    ("169.254.169.254", "a link-local address"),
    ("fe80::1", "a link-local address"),
    ("100.64.0.1", "a carrier-grade NAT address"),
    ("100.127.255.254", "a carrier-grade NAT address"),
    ("224.0.0.1", "a multicast address"),
    ("ff02::1", "a multicast address"),
    ("240.0.0.1", "a reserved address"),
    ("255.255.255.255", "a reserved address"),
    ("192.0.2.10", "a special-purpose (non-public) address"),
    ("::ffff:127.0.0.1", "an IPv4-mapped form of 127.0.0.1, a loopback address"),
    ("::ffff:10.0.0.1", "an IPv4-mapped form of 10.0.0.1, a private address"),
    ("::ffff:169.254.169.254", "an IPv4-mapped form of 169.254.169.254, a link-local address"),
    ("::127.0.0.1", "an IPv4-compatible form of 127.0.0.1, a loopback address"),
    ("64:ff9b::10.0.0.1", "a NAT64 form of 10.0.0.1, a private address"),
    ("64:ff9b:1::1", "a local-use NAT64 address"),
    ("2002:7f00:1::", "a 6to4 form of 127.0.0.1, a loopback address"),
    ("2001:0:4136:e378:8000:63bf:f5ff:fffe", "a Teredo form of 10.0.0.1, a private address"),
]

PUBLIC = ["93.184.216.34", "8.8.8.8", "2606:2800:220:1::1", "[2606:2800:220:1::1]", "::ffff:93.184.216.34"]


@pytest.fixture(autouse=True)
def no_dns(monkeypatch: pytest.MonkeyPatch) -> dict[str, list[str]]:
    """Names resolve from this table (or /etc/hosts for localhost), never through a DNS server."""
    fake: dict[str, list[str]] = {}
    real = socket.getaddrinfo

    def getaddrinfo(host: str, port: Any, *args: Any, **kwargs: Any) -> Any:
        if host in fake:
            return [
                (socket.AF_INET6 if ":" in ip else socket.AF_INET, socket.SOCK_STREAM, 6, "", (ip, port))
                for ip in fake[host]
            ]
        if host == "localhost" or literal_address(host) is not None:
            return real(host, port, *args, **kwargs)
        raise socket.gaierror(socket.EAI_NONAME, f"test: no DNS for {host}")

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    return fake


@pytest.mark.parametrize(("host", "message"), BLOCKED)
def test_internal_addresses_are_blocked_in_every_spelling(host: str, message: str) -> None:
    with pytest.raises(OutboundBlocked) as caught:
        PROTECTED.addresses(host, 80)
    assert message in str(caught.value)
    assert str(caught.value).startswith("blocked: ")
    assert "BATCHPRESS_ALLOW_PRIVATE_NETWORKS=true" in str(caught.value)


@pytest.mark.parametrize("host", PUBLIC)
def test_public_addresses_are_allowed(host: str) -> None:
    [address] = PROTECTED.addresses(host, 443)
    assert internal_kind(address) is None


def test_inet_aton_shorthands_are_read_as_getaddrinfo_reads_them() -> None:
    for host in ("2130706433", "0177.0.0.1", "0x7f000001", "0x7f.1", "127.1", "0x7f.0.0.1"):
        assert literal_address(host) == ipaddress.IPv4Address("127.0.0.1"), host
    for name in ("cafe.be", "deadbeef", "example.com", "999.1.1.1"):
        assert literal_address(name) is None, name


def test_a_name_is_blocked_when_any_of_its_addresses_is_internal(no_dns: dict[str, list[str]]) -> None:
    no_dns["images.example"] = ["93.184.216.34", "10.0.0.7"]
    no_dns["cdn.example"] = ["93.184.216.34", "2606:2800:220:1::1"]
    no_dns["v6.example"] = ["2606:2800:220:1::1", "::ffff:127.0.0.1"]
    with pytest.raises(OutboundBlocked, match=r"images\.example resolves to 10\.0\.0\.7, a private address"):
        PROTECTED.addresses("images.example", 443)
    with pytest.raises(OutboundBlocked, match="BATCHPRESS_OUTBOUND_ALLOW_HOSTS"):
        PROTECTED.addresses("v6.example", 443)
    assert [str(a) for a in PROTECTED.addresses("cdn.example", 443)] == ["93.184.216.34", "2606:2800:220:1::1"]


def test_localhost_by_name_is_blocked() -> None:
    with pytest.raises(OutboundBlocked, match=r"localhost resolves to .*a loopback address"):
        PROTECTED.addresses("localhost", 80)


def test_allow_private_networks_opens_everything() -> None:
    policy = OutboundPolicy(allow_private_networks=True)
    for host, _ in BLOCKED:
        assert policy.addresses(host, 80) == [literal_address(host)]
    assert ipaddress.ip_address("127.0.0.1") in policy.addresses("localhost", 80)


def test_allow_list_opens_only_the_hosts_named(no_dns: dict[str, list[str]], tmp_path: Path) -> None:
    no_dns["minio.internal"] = ["10.1.2.3"]
    policy = OutboundPolicy.from_settings(
        Settings(data_dir=tmp_path, outbound_allow_hosts=" MinIO.internal. , localhost,", allow_private_networks=False)
    )
    assert policy.allow_hosts == {"minio.internal", "localhost"}
    assert [str(a) for a in policy.addresses("minio.internal", 9000)] == ["10.1.2.3"]
    assert ipaddress.ip_address("127.0.0.1") in policy.addresses("localhost", 80)
    # The same addresses by number, or through another name, stay blocked.
    for host in ("127.0.0.1", "10.1.2.3", "2130706433"):
        with pytest.raises(OutboundBlocked):
            policy.addresses(host, 80)


@pytest.mark.parametrize("scheme", ["ftp", "file", "gopher", "dict", ""])
def test_only_http_and_https(scheme: str) -> None:
    for policy in (PROTECTED, OutboundPolicy(allow_private_networks=True)):
        with pytest.raises(OutboundBlocked, match="only http and https URLs are allowed"):
            policy.check_scheme(scheme)
    PROTECTED.check_scheme("http")
    PROTECTED.check_scheme("https")


def test_urls_are_refused_early_by_scheme_and_literal_host() -> None:
    for url in ("http://0177.0.0.1/a.jpg", "http://[::1]:8080/a.jpg", "https://2130706433/", "http://10.0.0.1:80/"):
        with pytest.raises(OutboundBlocked):
            PROTECTED.check_url(url)
    with pytest.raises(OutboundBlocked, match="not 'file'"):
        PROTECTED.check_url("file:///etc/passwd")
    # Names wait for the connection, where their addresses are checked; nothing is resolved here.
    PROTECTED.check_url("https://images.example/a.jpg")
    PROTECTED.check_url("http://93.184.216.34/a.jpg")
    OutboundPolicy(allow_private_networks=True).check_url("http://0177.0.0.1/a.jpg")


@pytest.fixture
def listener() -> Iterator[tuple[int, list[object]]]:
    """A loopback port that records every connection it accepts."""
    accepted: list[object] = []
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen()
    sock.settimeout(0.1)
    stop = threading.Event()

    def accept() -> None:
        while not stop.is_set():
            try:
                conn, peer = sock.accept()
            except TimeoutError:
                continue
            accepted.append(peer)
            conn.close()

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield sock.getsockname()[1], accepted
    stop.set()
    thread.join()
    sock.close()


def test_webhook_client_refuses_a_loopback_url_without_connecting(
    tmp_path: Path, listener: tuple[int, list[object]]
) -> None:
    port, accepted = listener
    settings = Settings(data_dir=tmp_path, webhook_secret=new_secret(), allow_private_networks=False)
    event = WebhookEvent(id="msg_test", url=f"http://127.0.0.1:{port}/hook", payload="{}")
    with make_client(settings) as client:
        answer = post(client, settings, event)
    assert answer.status_code is None
    assert answer.error is not None
    assert answer.error.startswith("blocked: 127.0.0.1 is a loopback address")
    assert answer.blocked
    assert not retryable(answer)
    assert accepted == []


def test_webhook_client_delivers_to_loopback_when_private_networks_are_allowed(
    tmp_path: Path, listener: tuple[int, list[object]]
) -> None:
    port, accepted = listener
    settings = Settings(data_dir=tmp_path, webhook_secret=new_secret(), allow_private_networks=True)
    event = WebhookEvent(id="msg_test", url=f"http://127.0.0.1:{port}/hook", payload="{}")
    with make_client(settings) as client:
        answer = post(client, settings, event)
    # The listener hangs up at once: a retryable connection failure, after a real connection.
    assert not answer.blocked
    assert retryable(answer)
    assert len(accepted) == 1


def _certificates(tmp_path: Path) -> tuple[bytes, Path]:
    """A throwaway CA (PEM) and a key-and-certificate file it signed for the name ``localhost`` only."""
    now = dt.datetime.now(dt.UTC)

    def issue(subject: str, key: Any, issuer: Any, signer: Any, ca: bool) -> x509.Certificate:
        builder = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
            .issuer_name(issuer)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(hours=1))
            .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        )
        if not ca:
            builder = builder.add_extension(x509.SubjectAlternativeName([x509.DNSName(subject)]), critical=False)
        return builder.sign(signer, hashes.SHA256())

    ca_key, leaf_key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "batchpress test CA")])
    ca = issue("batchpress test CA", ca_key, ca_name, ca_key, ca=True)
    leaf = issue("localhost", leaf_key, ca_name, ca_key, ca=False)
    chain = tmp_path / "localhost.pem"
    chain.write_bytes(
        leaf_key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        + leaf.public_bytes(serialization.Encoding.PEM)
    )
    return ca.public_bytes(serialization.Encoding.PEM), chain


def test_https_connects_to_the_checked_address_but_verifies_the_url_host(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ca_pem, chain = _certificates(tmp_path)
    seen: dict[str, Any] = {}

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            seen["host_header"] = self.headers["Host"]
            self.send_response(200)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, *args: Any) -> None:
            pass

    server_tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_tls.load_cert_chain(chain)

    def note_sni(_sock: ssl.SSLObject, name: str, _ctx: ssl.SSLContext) -> None:
        seen["sni"] = name

    server_tls.sni_callback = note_sni
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.daemon_threads = True
    httpd.socket = server_tls.wrap_socket(httpd.socket, server_side=True)
    port = httpd.server_address[1]
    thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
    thread.start()

    connected: list[tuple[str, int]] = []
    real_connect = socket.create_connection

    def create_connection(address: tuple[str, int], *args: Any, **kwargs: Any) -> socket.socket:
        connected.append(address)
        return real_connect(address, *args, **kwargs)

    monkeypatch.setattr(socket, "create_connection", create_connection)
    trust = ssl.create_default_context(cadata=ca_pem.decode())
    try:
        policy = OutboundPolicy(allow_hosts=frozenset({"localhost"}))
        with httpx.Client(transport=GuardedTransport(policy, verify=trust), trust_env=False) as http:
            assert http.get(f"https://localhost:{port}/").text == "ok"
        # The socket went to the address the check saw, by number; TLS and HTTP still spoke the URL's name.
        assert connected[0][0] in ("127.0.0.1", "::1")
        assert seen["sni"] == "localhost"
        assert seen["host_header"] == f"localhost:{port}"

        # The certificate names localhost, not 127.0.0.1: verification follows the URL, not the pinned address.
        anywhere = OutboundPolicy(allow_private_networks=True)
        with (
            httpx.Client(transport=GuardedTransport(anywhere, verify=trust), trust_env=False) as http,
            pytest.raises(httpx.ConnectError, match="certificate verify failed"),
        ):
            http.get(f"https://127.0.0.1:{port}/")
    finally:
        httpd.shutdown()
        httpd.server_close()
