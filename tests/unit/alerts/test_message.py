"""The alert mail's text: ldirectord's subjects and body fields, the headers, recipients, masking."""

from __future__ import annotations

import email
import email.policy

from healthd.alerts import message
from healthd.config import parse_text

CONFIG = """\
emailalert="ops@example.com, Second <second@example.com>"
emailalertfrom="LB Alerts" <lb@example.com>
fallback=127.0.0.1 gate

virtual=192.0.2.1:80
\treal=192.0.2.11:80 masq 3
\tservice=http
\tservicename=shop
\tcomment=front web
virtual=99
\treal=192.0.2.21 gate
\tservice=http
\tcheckport=80
\tprotocol=fwm
virtual6=[2001:db8::1]:80
\treal6=[2001:db8::11]:8080 masq
\tservice=http
"""


def config():
    return parse_text(CONFIG, "alerts.cf")


def test_subjects_use_ldirectords_words() -> None:
    web, mark, six = config().virtuals
    real = web.reals[0]
    assert message.real_removed(web, real, quiescent=False) == (
        "Deleted real server: 192.0.2.11:80 (192.0.2.1:80)")
    assert message.real_removed(web, real, quiescent=True) == (
        "Quiescent real server: 192.0.2.11:80 (192.0.2.1:80) (Weight set to 0)")
    assert message.real_added(web, real, restored=False) == (
        "Added real server: 192.0.2.11:80 (192.0.2.1:80) (Weight set to 3)")
    assert message.real_added(web, real, restored=True) == (
        "Restored real server: 192.0.2.11:80 (192.0.2.1:80) (Weight set to 3)")
    assert message.inaccessible(web, real) == "Inaccessible real server: 192.0.2.11:80 (192.0.2.1:80)"
    assert message.purged(web, real.label, "stop") == (
        "Purged real server (stop): 192.0.2.11:80 (192.0.2.1:80)")
    # a firewall-mark virtual is named by its bare mark, as ldirectord's get_virtual does
    assert message.real_removed(mark, mark.reals[0], False) == "Deleted real server: 192.0.2.21:0 (99)"
    assert message.real_removed(six, six.reals[0], False) == (
        "Deleted real server: [2001:db8::11]:8080 ([2001:db8::1]:80)")


def test_fallback_subjects_take_the_virtuals_port() -> None:
    cfg = config()
    web = cfg.virtuals[0]
    assert cfg.settings.fallback is not None
    assert message.fallback_changed(web, cfg.settings.fallback, True) == (
        "Added fallback server: 127.0.0.1:80 (192.0.2.1:80) (Weight set to 1)")
    assert message.fallback_changed(web, cfg.settings.fallback, False) == (
        "Deleted fallback server: 127.0.0.1:80 (192.0.2.1:80)")


def test_recipients_are_split_on_commas() -> None:
    assert message.recipients("ops@example.com, Second <second@example.com>") == (
        "ops@example.com", "second@example.com")
    assert message.recipients("one@example.com") == ("one@example.com",)


def test_the_mail_carries_ldirectords_body_and_headers() -> None:
    cfg = config()
    web = cfg.virtuals[0]
    subject = message.real_removed(web, web.reals[0], False)
    mail = message.compose(web, subject, "running", emailalert=web.emailalert or "",
                           emailalertfrom=cfg.settings.emailalertfrom, hostname="director1")
    parsed = email.message_from_bytes(mail.message, policy=email.policy.default)
    assert parsed["Subject"] == "[shop] Deleted real server: 192.0.2.11:80 (192.0.2.1:80)"
    (sender,) = parsed["From"].addresses
    assert (sender.display_name, sender.addr_spec) == ("LB Alerts", "lb@example.com")
    assert parsed["To"] == "ops@example.com, Second <second@example.com>"
    assert parsed["Date"] and parsed["Message-ID"]
    assert parsed.get_content() == (
        "ldirectord host: director1\n"
        "Log-Message: [shop] Deleted real server: 192.0.2.11:80 (192.0.2.1:80)\n"
        "Daemon-Status: running\n"
        "\n"
        "Service name: shop\n"
        "Comment: front web\n"
        "\n"
    )
    assert mail.sender == "lb@example.com"
    assert mail.recipients == ("ops@example.com", "second@example.com")


def test_without_emailalertfrom_the_sender_is_the_user_at_the_host() -> None:
    mark = config().virtuals[1]
    mail = message.compose(mark, "Deleted real server: x", "starting", emailalert="ops@example.com",
                           emailalertfrom=None, hostname="director1")
    parsed = email.message_from_bytes(mail.message, policy=email.policy.default)
    assert mail.sender.endswith("@director1")
    assert parsed["From"] == mail.sender
    assert parsed.get_content() == (
        "ldirectord host: director1\nLog-Message: Deleted real server: x\nDaemon-Status: starting\n")


def test_the_mask_removes_secrets_from_everything_it_sends() -> None:
    web = config().virtuals[0]
    mail = message.compose(web, "Deleted real server: hunter2", "running", emailalert="ops@example.com",
                           emailalertfrom="hunter2 <lb@example.com>", hostname="director1",
                           mask=lambda text: text.replace("hunter2", "****"))
    assert b"hunter2" not in mail.message
    assert "hunter2" not in mail.subject
