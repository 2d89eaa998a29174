"""healthd's extension directives: global, overridden per virtual, agent:PORT on a real= line, bad values."""

from __future__ import annotations

import pytest

from .conftest import cfg, one_virtual, problems


def test_defaults_are_off() -> None:
    config = one_virtual("real=10.0.0.2:80 gate")
    v = config.virtuals[0]
    c = v.reals[0].check
    assert (v.slowstart, v.drain, v.depoolthreshold) == (0.0, 0.0, 0.0)
    assert (c.successcount, c.fastinterval, c.agentport) == (1, 0.0, 0)


def test_global_values_reach_every_virtual_and_check() -> None:
    config = cfg("successcount=3\nfastinterval=0.5\nslowstart=20\ndrain=30\ndepoolthreshold=0.5\n"
                 "agentport=7777\nvirtual=10.0.0.1:80\n\treal=10.0.0.2:80 gate\n")
    v = config.virtuals[0]
    c = v.reals[0].check
    assert (v.slowstart, v.drain, v.depoolthreshold) == (20.0, 30.0, 0.5)
    assert (c.successcount, c.fastinterval, c.agentport) == (3, 0.5, 7777)
    assert config.settings.depoolthreshold == 0.5


def test_a_virtual_overrides_and_a_real_names_its_own_agent_port() -> None:
    config = one_virtual(
        "real=10.0.0.2:80 gate 5 agent:9001\nreal=10.0.0.3:80 gate 5 l:1 u:9 agent:9002\n"
        "real=10.0.0.4:80 gate\nsuccesscount=2\ndrain=0\ndepoolthreshold=25%\nagentport=9000",
        globals_="successcount=5\ndrain=10\n",
    )
    v = config.virtuals[0]
    assert [r.check.agentport for r in v.reals] == [9001, 9002, 9000]
    assert v.reals[1].lower == 1 and v.reals[1].upper == 9
    assert v.reals[0].check.successcount == 2 and v.drain == 0.0 and v.depoolthreshold == 0.25


@pytest.mark.parametrize(("line", "message"), [
    ("successcount=0", "expected a positive whole number"),
    ("fastinterval=0", "expected a positive number of seconds"),
    ("slowstart=-1", "seconds between 0 and 86400"),
    ("drain=soon", "seconds between 0 and 86400"),
    ("depoolthreshold=1.5", "between 0 and 1"),
    ("depoolthreshold=150%", "between 0 and 1"),
    ("agentport=70000", "port number between 1 and 65535"),
])
def test_bad_values_name_the_line(line: str, message: str) -> None:
    [problem] = problems(f"{line}\nvirtual=10.0.0.1:80\n\treal=10.0.0.2:80 gate\n")
    assert problem.startswith("1: ") and message in problem


def test_bad_agent_port_on_a_real_line() -> None:
    [problem] = problems("virtual=10.0.0.1:80\n\treal=10.0.0.2:80 gate agent:0\n")
    assert problem.startswith("2: ") and "port number" in problem
