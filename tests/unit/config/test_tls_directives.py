"""tls* directives: ldirectord's verification when unset, global then per-virtual values, checked at load."""

from __future__ import annotations

import ssl
import subprocess
from pathlib import Path

import pytest
import trustme

from healthd.checks import failures, tls
from healthd.checks.tls import TlsPolicy, TlsVerify
from healthd.config import render

from .conftest import cfg, problems


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A CA file, a client certificate with its key (separate and combined), and files that are not PEM."""
    d = tmp_path_factory.mktemp("pki")
    ca = trustme.CA()
    client = ca.issue_cert("client.healthd.test")
    other = trustme.CA().issue_cert("other.healthd.test")
    files = {name: d / f"{name}.pem" for name in ("ca", "cert", "key", "both", "otherkey", "junk")}
    ca.cert_pem.write_to_path(str(files["ca"]))
    client.cert_chain_pems[0].write_to_path(str(files["cert"]))
    client.private_key_pem.write_to_path(str(files["key"]))
    client.private_key_and_cert_chain_pem.write_to_path(str(files["both"]))
    other.private_key_pem.write_to_path(str(files["otherkey"]))
    files["junk"].write_text("not a certificate\n")
    return files


def section(service: str, extra: str = "", port: int = 443) -> str:
    return f"virtual=10.0.0.1:{port}\n\treal=10.0.0.2:{port} masq\n\tservice={service}\n{extra}"


@pytest.mark.parametrize(("service", "port", "verify", "name", "sni"), [
    ("https", 443, TlsVerify.CHAIN, None, None),  # LWP with verify_hostname => 0
    ("pops", 995, TlsVerify.FULL, "10.0.0.2", "www.test"),  # IO::Socket::SSL: the address it connected to
    ("imaps", 993, TlsVerify.FULL, "10.0.0.2", "www.test"),
    ("ldaps", 636, TlsVerify.NONE, None, "www.test"),  # Net::LDAP without verify
])
def test_unset_means_what_debian_ldirectord_verifies(service: str, port: int, verify: TlsVerify,
                                                     name: str | None, sni: str | None) -> None:
    vhost = "" if service == "https" else "\tvirtualhost=www.test\n"
    policy = cfg(section(service, vhost, port)).virtuals[0].reals[0].check.tls
    assert policy is not None
    assert (policy.verify, policy.name, policy.cafile, policy.certfile) == (verify, name, None, None)
    assert policy.sni == sni
    # full sends its name (an address: no SNI); the others send virtualhost
    assert policy.server_hostname == (name if verify is TlsVerify.FULL else sni)


@pytest.mark.parametrize("service", ["http", "smtp", "pop", "imap", "ldap", "ftp"])
def test_services_without_tls_get_no_policy(service: str) -> None:
    assert cfg(section(service, "\ttlsverify=full\n", 80)).virtuals[0].reals[0].check.tls is None


def test_tls_directive_on_a_service_without_tls_warns() -> None:
    config = cfg(section("smtp", "\ttlsverify=full\n", 25))
    assert [(w.line, w.message) for w in config.warnings] == [
        (4, "tlsverify has no effect: service=smtp speaks no TLS (healthd checks TLS for https, pops, imaps "
            "and ldaps)")]
    assert not cfg(section("http", "\ttlsverify=full\n", 80)).warnings


def test_https_url_on_an_http_virtual_is_verified() -> None:
    text = 'virtual=10.0.0.1:80\n\treal=10.0.0.2:80 masq "https://www.test/ok", "ok"\n\tservice=http\n'
    policy = cfg(text).virtuals[0].reals[0].check.tls
    assert policy is not None and policy.verify is TlsVerify.CHAIN and policy.sni == "www.test"


def test_global_value_with_per_virtual_override(pki: dict[str, Path]) -> None:
    text = (f"tlsverify=full\ntlscafile={pki['ca']}\n"
            + section("https", "\tvirtualhost=www.test\n")
            + "virtual=10.0.0.1:995\n\treal=10.0.0.3:995 masq\n\tservice=pops\n\ttlsverify=chain\n"
            + "virtual=10.0.0.1:636\n\treal=10.0.0.4:636 masq\n\tservice=ldaps\n\ttlsname=ldap.test\n")
    https, pops, ldaps = (v.reals[0].check.tls for v in cfg(text).virtuals)
    assert https == TlsPolicy(TlsVerify.FULL, name="www.test", sni="www.test", cafile=str(pki["ca"]))
    assert pops == TlsPolicy(TlsVerify.CHAIN, sni=None, cafile=str(pki["ca"]))
    assert ldaps == TlsPolicy(TlsVerify.FULL, name="ldap.test", sni="ldap.test", cafile=str(pki["ca"]))


def test_full_without_virtualhost_checks_the_real_address() -> None:
    policy = cfg(section("https", "\ttlsverify=full\n")).virtuals[0].reals[0].check.tls
    assert policy is not None and policy.name == "10.0.0.2" and policy.server_hostname == "10.0.0.2"


@pytest.mark.parametrize("key", ["key", None])
def test_client_certificate(pki: dict[str, Path], key: str | None) -> None:
    extra = f"\ttlscert={pki['cert' if key else 'both']}\n" + (f"\ttlskey={pki['key']}\n" if key else "")
    policy = cfg(section("https", extra)).virtuals[0].reals[0].check.tls
    assert policy is not None and policy.certfile and (policy.keyfile is not None) == bool(key)
    tls.build_context(policy)  # loads


def test_check_config_shows_the_policy(pki: dict[str, Path]) -> None:
    config = cfg(section("https", f"\ttlsverify=full\n\ttlsname=www.test\n\ttlscafile={pki['ca']}\n"))
    shown = render.check_dict(config.virtuals[0].reals[0].check)["tls"]
    assert shown == f"full: www.test ({pki['ca']})"
    assert "TLS verify chain (system store)" in render.to_text(cfg(section("https")))


def test_bad_values_name_their_line(pki: dict[str, Path]) -> None:
    errors = problems(
        "tlsverify=maybe\n"  # 1
        + section("https",
                  "\ttlscafile=relative/ca.pem\n"  # 5
                  "\ttlscert=/nonexistent/client.pem\n")  # 6
        + "virtual=10.0.0.1:995\n\treal=10.0.0.3:995 masq\n\tservice=pops\n"
        + f"\ttlscafile={pki['junk']}\n"  # 10
        + "virtual=10.0.0.1:993\n\treal=10.0.0.4:993 masq\n\tservice=imaps\n"
        + f"\ttlscert={pki['cert']}\n\ttlskey={pki['otherkey']}\n"  # 14, 15
        + "virtual=10.0.0.1:636\n\treal=10.0.0.5:636 masq\n\tservice=ldaps\n"
        + f"\ttlskey={pki['key']}\n"  # 19
    )
    text = "\n".join(errors)
    assert any(e.startswith("1:") and "expected none" in e for e in errors), text
    assert any(e.startswith("5:") and "absolute path" in e for e in errors), text
    assert any(e.startswith("6:") and "/nonexistent/client.pem does not exist" in e for e in errors), text
    assert any(e.startswith("10:") and "no CA certificate could be read" in e for e in errors), text
    assert any(e.startswith("14:") and "not a usable client certificate and key" in e for e in errors), text
    assert any(e.startswith("19:") and "tlskey needs tlscert" in e for e in errors), text


def test_lwp_environment_gives_the_https_ca(pki: dict[str, Path]) -> None:
    env = {"PERL_LWP_SSL_CA_FILE": str(pki["ca"]), "HTTPS_CA_DIR": "/etc/ssl/certs"}
    https = tls.resolve("https", "10.0.0.2", None, environ=env)
    assert (https.cafile, https.capath) == (str(pki["ca"]), "/etc/ssl/certs")
    assert tls.resolve("https", "10.0.0.2", None, cafile="/x.pem", environ=env).cafile == "/x.pem"
    assert tls.resolve("pops", "10.0.0.2", None, environ=env).cafile is None  # IO::Socket::SSL ignores LWP's


def test_failure_sentences_say_which() -> None:
    def verify_error(code: int, message: str) -> ssl.SSLCertVerificationError:
        exc = ssl.SSLCertVerificationError(1, "[SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed")
        exc.verify_code, exc.verify_message = code, message
        return exc

    assert failures.tls_failed(verify_error(10, "certificate has expired")) == "TLS certificate expired"
    assert failures.tls_failed(verify_error(18, "self-signed certificate")) == \
        "TLS certificate untrusted: self-signed"
    assert failures.tls_failed(verify_error(20, "unable to get local issuer certificate")) == \
        "TLS certificate untrusted: issuer not trusted"
    mismatch = verify_error(62, "Hostname mismatch, certificate is not valid for 'a.test'.")
    assert failures.tls_failed(mismatch) == "TLS certificate wrong name: not valid for name a.test"
    assert failures.tls_failed(verify_error(64, "IP address mismatch, certificate is not valid for "
                                               "'10.0.0.2'.")) == \
        "TLS certificate wrong name: not valid for address 10.0.0.2"


def _handshake(client: ssl.SSLContext, server: ssl.SSLContext, name: str | None = None) -> str | None:
    """A TLS handshake in memory; None when it completes, else the client's failure sentence."""
    c_in, c_out, s_in, s_out = (ssl.MemoryBIO() for _ in range(4))
    c = client.wrap_bio(c_in, c_out, server_hostname=name)
    srv = server.wrap_bio(s_in, s_out, server_side=True)
    for _ in range(20):
        for side in (c, srv):
            try:
                side.do_handshake()
            except ssl.SSLWantReadError:
                pass
            except ssl.SSLError as exc:
                if side is c:
                    return failures.tls_failed(exc)
        s_in.write(c_out.read())
        c_in.write(s_out.read())
    return None


def test_system_store_and_ca_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    system_ca, private_ca = trustme.CA(), trustme.CA()
    store = tmp_path / "certs"  # a system store of one CA, as OpenSSL's hashed directory
    store.mkdir()
    system_ca.cert_pem.write_to_path(str(store / "system-ca.pem"))
    subprocess.run(["openssl", "rehash", str(store)], check=True, capture_output=True)
    monkeypatch.setenv("SSL_CERT_DIR", str(store))
    monkeypatch.delenv("SSL_CERT_FILE", raising=False)
    private_file = tmp_path / "private-ca.pem"
    private_ca.cert_pem.write_to_path(str(private_file))

    def server(ca: trustme.CA) -> ssl.SSLContext:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ca.issue_cert("www.example.org").configure_cert(ctx)
        return ctx

    system = tls.build_context(TlsPolicy(TlsVerify.CHAIN))
    private = tls.build_context(TlsPolicy(TlsVerify.CHAIN, cafile=str(private_file)))
    assert _handshake(system, server(system_ca)) is None
    assert _handshake(system, server(private_ca)) == "TLS certificate untrusted: issuer not trusted"
    assert _handshake(private, server(private_ca)) is None
    # tlscafile replaces the system store, as LWP's SSL_ca_file does
    assert _handshake(private, server(system_ca)) == "TLS certificate untrusted: issuer not trusted"
    full = tls.build_context(TlsPolicy(TlsVerify.FULL, name="shop.example.org", cafile=str(private_file)))
    assert _handshake(full, server(private_ca), "www.example.org") is None
    assert _handshake(full, server(private_ca), "shop.example.org") == \
        "TLS certificate wrong name: not valid for name shop.example.org"
    assert _handshake(tls.build_context(TlsPolicy(TlsVerify.NONE)), server(private_ca)) is None
