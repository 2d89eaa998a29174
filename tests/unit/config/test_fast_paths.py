"""The config loader's shortcuts (for 10,000-real files) answer exactly as the long way does."""

from __future__ import annotations

import ipaddress

import pytest
from hypothesis import given
from hypothesis import strategies as st

from healthd.config.lexer import strip_comment
from healthd.config.lookup import literal_ip

from .conftest import cfg, problems


def long_way(host: str, family: int) -> str | None:
    try:
        addr = ipaddress.ip_address(host)
    except ValueError:
        return None
    return addr.compressed if addr.version == family else None


@pytest.mark.parametrize("host", [
    "10.0.0.1", "0.0.0.0", "255.255.255.255", "256.0.0.1", "10.0.0.01", "010.0.0.1", "1.2.3", "1.2.3.4.5",
    "1..2.3", "1.2.3.4\n", " 1.2.3.4", "1.2.3.\u0664", "\u0661.2.3.4", "1.2.3.-4", "+1.2.3.4", "1.2.3.4a",
    "199.249.200.249", "2001:db8::1", "::ffff:10.0.0.1", "localhost", "",
])
@pytest.mark.parametrize("family", [4, 6])
def test_literal_ip_is_ipaddress(host: str, family: int) -> None:
    assert literal_ip(host, family) == long_way(host, family)


@given(st.from_regex(r"[0-9]{1,4}(\.[0-9]{1,4}){2,4}", fullmatch=True))
def test_literal_ip_on_dotted_numbers(host: str) -> None:
    assert literal_ip(host, 4) == long_way(host, 4)


def char_by_char(text: str) -> str:
    quoted = False
    for i, ch in enumerate(text):
        if ch == '"':
            quoted = not quoted
        elif ch == "#" and not quoted:
            return text[:i]
    return text


@pytest.mark.parametrize("text", [
    "real=10.0.0.2:80 gate # web", 'receive="#ok" # note', 'request="a"#b', '"#', "#", "", "no comment",
    'a="b#c" d="e" #f', 'a=x"#y', 'a=x # "y"',
])
def test_strip_comment_cases(text: str) -> None:
    assert strip_comment(text) == char_by_char(text)


@given(st.text(alphabet='ab"# =\t', max_size=40))
def test_strip_comment_is_the_character_loop(text: str) -> None:
    assert strip_comment(text) == char_by_char(text)


def test_a_bad_receive_is_refused_on_every_line_that_has_it() -> None:
    # the regex translation is memoised; a refusal must not be (each line gets its error)
    text = ("virtual=10.0.0.1:80\n\treal=10.0.0.2:80 gate\n\tservice=http\n\treceive=\"a(?{ 1 })\"\n"
            "virtual=10.0.0.9:80\n\treal=10.0.0.2:80 gate\n\tservice=http\n\treceive=\"a(?{ 1 })\"\n")
    assert [p.split(":")[0] for p in problems(text)] == ["4", "8"]


def test_the_https_checks_read_lwps_ca_variables_at_each_load(monkeypatch: pytest.MonkeyPatch) -> None:
    # the loader reads the environment once per load (a copy), not once per real: still each load's
    text = "virtual=10.0.0.1:443\n\treal=10.0.0.2:443 gate\n\treal=10.0.0.3:443 gate\n\tservice=https\n"
    monkeypatch.delenv("PERL_LWP_SSL_CA_FILE", raising=False)
    monkeypatch.delenv("HTTPS_CA_FILE", raising=False)
    assert {r.check.tls.cafile for r in cfg(text).virtuals[0].reals} == {None}
    monkeypatch.setenv("HTTPS_CA_FILE", "/etc/ssl/certs/ca-certificates.crt")
    assert {r.check.tls.cafile for r in cfg(text).virtuals[0].reals} == {"/etc/ssl/certs/ca-certificates.crt"}
