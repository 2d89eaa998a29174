"""ftp checks against vsftpd serving an anonymous root on loopback."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from healthd.checks import ftp
from healthd.checks.context import CheckContext
from tests.integration.services import servers
from tests.integration.services.conftest import spec_for
from tests.integration.services.hanging import assert_hang_bounded

pytestmark = pytest.mark.root  # vsftpd must start as root


@pytest.fixture(scope="module")
def vsftpd() -> Iterator[servers.Daemon]:
    with servers.workdir("vsftpd") as wd:
        daemon = servers.start_vsftpd(wd)
        yield daemon
        daemon.stop()


def ftp_spec(port: int, request: str = f"/{servers.FTP_FILE}", receive: str = "content OK", **kw: object):
    return spec_for("ftp", port, request=request, receive=receive, receive_re=receive or None, **kw)


@pytest.mark.parametrize("receive", ["content OK", "", r"^healthd ftp"])
async def test_anonymous_fetch_matches_up(vsftpd: servers.Daemon, ctx: CheckContext, receive: str) -> None:
    out = await ftp.check(ftp_spec(vsftpd.ports["ftp"], receive=receive), ctx)
    assert out.ok, out
    assert f"({len(servers.FTP_CONTENT)} bytes)" in out.detail


async def test_relative_request_fetched_from_the_root_as_ldirectord(vsftpd: servers.Daemon,
                                                                  ctx: CheckContext) -> None:
    # ldirectord prepends "/" to request="health.txt" and fetches /health.txt; vsftpd's log shows the path
    out = await ftp.check(ftp_spec(vsftpd.ports["ftp"], request=servers.FTP_FILE), ctx)
    assert out.ok, out
    assert f"FTP /{servers.FTP_FILE} fetched" in out.detail, out
    log = (vsftpd.workdir / "vsftpd.log").read_text(errors="replace")
    assert f'"RETR /{servers.FTP_FILE}"' in log, log[-2000:]
    assert f'"RETR {servers.FTP_FILE}"' not in log, log[-2000:]


async def test_explicit_anonymous_login_up(vsftpd: servers.Daemon, ctx: CheckContext) -> None:
    out = await ftp.check(ftp_spec(vsftpd.ports["ftp"], login="anonymous", passwd="ops@example"), ctx)
    assert out.ok, out


async def test_wrong_receive_down(vsftpd: servers.Daemon, ctx: CheckContext) -> None:
    out = await ftp.check(ftp_spec(vsftpd.ports["ftp"], receive="maintenance"), ctx)
    assert not out.ok, out
    assert "does not match" in out.detail


async def test_missing_file_down(vsftpd: servers.Daemon, ctx: CheckContext) -> None:
    out = await ftp.check(ftp_spec(vsftpd.ports["ftp"], request="/no-such-file", receive=""), ctx)
    assert not out.ok, out
    assert "550" in out.detail


async def test_wrong_credentials_down(vsftpd: servers.Daemon, ctx: CheckContext) -> None:
    spec = ftp_spec(vsftpd.ports["ftp"], login=servers.FTP_USER, passwd="wrong")
    out = await ftp.check(spec, ctx)
    assert not out.ok, out
    assert "login" in out.detail and "refused" in out.detail
    assert "wrong" not in out.detail


async def test_hanging_server_fails_at_deadline(vsftpd: servers.Daemon, silent_tcp_port: int,
                                                ctx: CheckContext) -> None:
    silent = ftp_spec(silent_tcp_port, negotiatetimeout=1.5)
    await assert_hang_bounded(ftp.check, silent, ftp_spec(vsftpd.ports["ftp"]), ctx)


async def test_stopped_server_down(vsftpd: servers.Daemon, ctx: CheckContext) -> None:
    vsftpd.stop()
    out = await ftp.check(ftp_spec(vsftpd.ports["ftp"], receive=""), ctx)
    assert not out.ok, out
    assert out.detail == "connection refused"
