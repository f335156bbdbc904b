"""Job services: started before the algorithms initialize, ended after the job, in
reverse order, whether the job succeeds or fails."""

from __future__ import annotations

import pytest

from sonic_exatrkx.framework import (
    Algorithm,
    AlgorithmError,
    ConfigurationError,
    Sequencer,
    Service,
)
from tests.framework.toy_algorithms import CountingReader, RaiseAt, Square


class Recording(Service):
    def __init__(self, log: list[str], name: str, fail_start: bool = False) -> None:
        super().__init__(name=name)
        self.log, self.fail_start = log, fail_start

    def start_job(self) -> None:
        if self.fail_start:
            raise RuntimeError(f"{self.name} cannot start")
        self.log.append(f"start {self.name}")

    def end_job(self) -> None:
        self.log.append(f"end {self.name}")


class SeesServices(Algorithm):
    """Records, at initialize, which services had started (a client reads a URL there)."""

    def __init__(self, log: list[str], fail_initialize: bool = False) -> None:
        super().__init__(name="Sees")
        self.log, self.fail_initialize = log, fail_initialize

    def initialize(self) -> None:
        self.log.append("initialize")
        if self.fail_initialize:
            raise ConfigurationError("no server answers")

    def execute(self, ctx):
        return None


def job(log: list[str], *, services=("a", "b"), fail_initialize=False, fail_event=None,
        fail_start=None) -> Sequencer:
    seq = Sequencer(progress=False, num_threads=1)
    for name in services:
        seq.add_service(Recording(log, name, fail_start=name == fail_start))
    seq.add_reader(CountingReader(0, 3))
    seq.add_algorithm(Square())
    seq.add_algorithm(SeesServices(log, fail_initialize))
    if fail_event is not None:
        seq.add_algorithm(RaiseAt({fail_event}))
    return seq


def test_services_wrap_the_job_in_order():
    log: list[str] = []
    job(log).run()
    assert log == ["start a", "start b", "initialize", "end b", "end a"]


def test_services_end_when_an_algorithm_fails_to_initialize():
    log: list[str] = []
    with pytest.raises(ConfigurationError, match="no server answers"):
        job(log, fail_initialize=True).run()
    assert log == ["start a", "start b", "initialize", "end b", "end a"]


def test_services_end_when_an_event_fails():
    log: list[str] = []
    with pytest.raises(AlgorithmError):
        job(log, fail_event=1).run()
    assert log[-2:] == ["end b", "end a"]


def test_only_started_services_end_when_one_fails_to_start():
    log: list[str] = []
    with pytest.raises(RuntimeError, match="b cannot start"):
        job(log, services=("a", "b", "c"), fail_start="b").run()
    assert log == ["start a", "end a"]


def test_add_service_refuses_non_services_and_twins():
    seq = Sequencer(progress=False)
    with pytest.raises(ConfigurationError, match="is not a Service"):
        seq.add_service(object())  # type: ignore[arg-type]
    seq.add_service(Service(name="triton"))
    with pytest.raises(ConfigurationError, match="already added"):
        seq.add_service(Service(name="triton"))
