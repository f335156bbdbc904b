"""The thread budget of a job that starts its own server: a pure split of the cores."""

from __future__ import annotations

import pytest

from sonic_exatrkx.framework import ConfigurationError
from sonic_exatrkx.sonic import split_cores


@pytest.mark.parametrize(
    ("cores", "option", "job_cores", "job_threads", "instances", "server_threads", "in_flight"),
    [(2, "custom", 0, 1, 2, 1, 4),  # the job only converts: every core serves
     (2, "S1", 1, 1, 1, 1, 2),  # graph + tracks built here: half the cores
     (8, "S2", 2, 2, 6, 1, 12),
     (1, "S1", 0, 1, 1, 1, 2),  # one core: the server still gets it
     (32, "S4", 0, 1, 8, 4, 16),  # instances capped, threads per instance take the rest
     (4, "S0", 4, 4, 0, 0, 4)])  # nothing served
def test_split(cores, option, job_cores, job_threads, instances, server_threads, in_flight):
    b = split_cores(cores, option)
    assert (b.job_cores, b.job_threads, b.server_instances, b.server_threads, b.in_flight) \
        == (job_cores, job_threads, instances, server_threads, in_flight)
    if instances:
        assert b.job_cores + b.server_instances * b.server_threads <= cores
    assert f"{cores} cores" in b.line()


def test_user_threads_override_the_loop_not_the_reservation():
    b = split_cores(4, "custom", job_threads=3)
    assert b.job_threads == 3 and b.server_instances == 4 and b.in_flight == 8


@pytest.mark.parametrize(("kwargs", "message"),
                         [({"cores": 0}, "cores must be"), ({"cores": 2, "service_option": "S9"},
                          "service_option must be"),
                          ({"cores": 2, "job_threads": 0}, "threads must be")])
def test_bad_budget(kwargs, message):
    with pytest.raises(ConfigurationError, match=message):
        split_cores(**kwargs)


def test_line_names_the_split():
    assert split_cores(2, "custom").line() == (
        "thread budget (custom): 2 cores -> job 0 reserved, 1 event-loop thread(s), local "
        "pool 1 x 1 torch/FAISS thread(s); server 2 instance(s) x 1 thread(s) per model; "
        "4 events in flight")
