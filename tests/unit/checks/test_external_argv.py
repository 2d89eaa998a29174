"""The command line of external checks: split like a shell, never run by one."""

from __future__ import annotations

import pytest

from healthd.checks.external import argv
from healthd.checks.spec import CheckSpec, CheckType
from healthd.vocab import ServiceProtocol

ARGS = ("192.168.1.10", "80", "[2001:db8::2]", "8080")


def spec(command: str, kind: CheckType = CheckType.EXTERNAL) -> CheckSpec:
    return CheckSpec(type=kind, service="none", protocol=ServiceProtocol.TCP,
                     family=4, address="10.0.0.2", port=0,
                     command=command, command_args=ARGS)


def test_arguments_follow_the_command_as_given() -> None:
    assert argv(spec("/usr/local/bin/check")) == ["/usr/local/bin/check", *ARGS]


def test_words_in_checkcommand_are_split_without_a_shell() -> None:
    assert argv(spec("/bin/check --quick 'two words' ;rm")) == \
        ["/bin/check", "--quick", "two words", ";rm", *ARGS]


def test_external_perl_runs_perl() -> None:
    assert argv(spec("/etc/ha.d/check.pl", CheckType.EXTERNAL_PERL)) == ["perl", "/etc/ha.d/check.pl", *ARGS]


@pytest.mark.parametrize("command", ["", "   ", "'unbalanced"])
def test_unusable_command(command: str) -> None:
    with pytest.raises(ValueError):
        argv(spec(command))
