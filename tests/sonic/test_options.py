"""The client's settings as values: TritonOptions, RetryPolicy decisions, ServiceOption
parsing, and declared optional outputs."""

from __future__ import annotations

import numpy as np
import pytest

from sonic_exatrkx.framework import ConfigurationError
from sonic_exatrkx.sonic import (
    LocalClient,
    OutputCheckError,
    RetryPolicy,
    ServiceOption,
    TensorSpec,
    TritonOptions,
    split_cores,
)
from sonic_exatrkx.sonic.retry import Action, Why


def test_options_are_one_hashable_value():
    opts = TritonOptions(headers={"b": "2", "a": "1"}, tls_root_certificates="ca.pem")
    assert opts.headers == (("a", "1"), ("b", "2")) and opts.header_dict == {"a": "1", "b": "2"}
    assert opts.ssl and hash(opts) == hash(TritonOptions(headers={"a": "1", "b": "2"},
                                                         tls_root_certificates="ca.pem"))
    assert opts.retry == RetryPolicy() and opts.deadline_s(1000) == pytest.approx(30.5)
    assert TritonOptions(timeout_s=2.0).deadline_s(10**6) == 2.0  # given: not scaled
    assert TritonOptions(timeout_s=float("inf")).deadline_s(10) is None  # no deadline


@pytest.mark.parametrize(("make", "message"), [
    (lambda: TritonOptions(protocol="udp"), "protocol must be one of"),
    (lambda: TritonOptions(compression="zip"), "compression must be one of"),
    (lambda: TritonOptions(timeout_s=0), "timeout_s must be a number > 0"),
    (lambda: TritonOptions(http_concurrency=0), "http_concurrency must be an integer >= 1"),
    (lambda: TritonOptions(shared_memory="yes"), "shared_memory must be True or False"),
    (lambda: TritonOptions(protocol="http", tls_root_certificates="ca.pem"), "gRPC only"),
    (lambda: RetryPolicy(allowed_tries=0), "allowed_tries must be an integer >= 1"),
    (lambda: RetryPolicy(backoff_s=-1), "backoff_s must be a number >= 0"),
    (lambda: RetryPolicy(on_timeout="wait"), "on_timeout must be one of"),
    (lambda: RetryPolicy(budget_s=-1), "budget_s must be a number >= 0"),
])
def test_bad_settings_are_refused_where_they_are_made(make, message):
    with pytest.raises(ConfigurationError, match=message):
        make()


def test_retry_policy_decides_retry_then_next_server_then_fallback_or_fail():
    policy = RetryPolicy(allowed_tries=2, backoff_s=0.1)
    down = ConnectionRefusedError("connection refused")  # what HTTP gives for a dead server
    first = policy.decide(down, tries=1, servers_left=1, fallback=False)
    assert first.action is Action.RETRY and first.delay_s == pytest.approx(0.1)
    assert policy.delay_s(2) == pytest.approx(0.2)  # exponential backoff
    moved = policy.decide(down, tries=2, servers_left=1, fallback=False)
    assert moved.action is Action.NEXT_SERVER and moved.server_down
    last = policy.decide(down, tries=2, servers_left=0, fallback=True)
    assert last.action is Action.FALLBACK and last.server_down
    failed = RetryPolicy(allowed_tries=2, budget_s=0).decide(down, tries=2, servers_left=0,
                                                             fallback=False)
    assert failed.action is Action.FAIL and failed.why is Why.EXHAUSTED


def test_retry_budget_waits_with_jitter_then_fails_in_bounded_time():
    policy = RetryPolicy(allowed_tries=1, backoff_s=0.5, max_backoff_s=2.0, budget_s=10.0)
    down = ConnectionRefusedError("connection refused")
    waits = [policy.decide(down, tries=1, servers_left=0, fallback=False, rounds=r,
                           draw=d) for r, d in ((0, 0.0), (1, 0.99), (5, 0.5))]
    assert all(w.action is Action.WAIT and w.server_down for w in waits)
    assert waits[0].delay_s == pytest.approx(0.25)  # half of backoff_s at the lowest draw
    assert waits[1].delay_s == pytest.approx(0.995)  # 1 s, jittered
    assert waits[2].delay_s == pytest.approx(1.5)  # capped at max_backoff_s, jittered
    late = policy.decide(down, tries=1, servers_left=0, fallback=False, waited_s=9.5,
                         rounds=6)
    assert late.action is Action.FAIL and late.why is Why.EXHAUSTED  # the budget is spent
    assert policy.decide(down, tries=1, servers_left=0, fallback=True).action \
        is Action.FALLBACK  # a fallback never waits


def test_errors_in_the_model_are_never_retried():
    decision = RetryPolicy().decide(ValueError("bad input"), tries=1, servers_left=3,
                                    fallback=True)
    assert decision.action is Action.FAIL and decision.why is Why.NOT_RECOVERABLE


@pytest.mark.parametrize(("value", "name", "whole", "stages", "share"), [
    ("custom", "custom", "pipeline", (), 0.0),
    ("S4", "S4", "ensemble", (), 0.0),
    ("S0", "S0", None, (), 1.0),
    ("S2", "S2", None, ("embed", "graph", "filter", "gnn"), 0.25),
    (("gnn", "embed", "filter"), "S1", None, ("embed", "filter", "gnn"), 0.5),
    ("graph+embed", "embed+graph", None, ("embed", "graph"), 0.5),
])
def test_service_option_is_parsed_once(value, name, whole, stages, share):
    option = ServiceOption.parse(value)
    assert (option.name, option.whole, option.stages, option.job_share) == \
        (name, whole, stages, share)
    assert ServiceOption.parse(option) is option
    assert option.remote == (name != "S0")
    assert split_cores(4, option).service_option == name  # the budget takes the same value


def test_unknown_service_option_names_the_choices():
    with pytest.raises(ConfigurationError, match="one of S0, S1, S2, S3, S4, custom"):
        ServiceOption.parse("S9")


SPEC = {"FEATURES": TensorSpec("FEATURES", "FP32", ("N", 3))}
LABELS = {"LABELS": TensorSpec("LABELS", "INT64", ("N",))}


def test_local_client_checks_declared_optional_outputs():
    x = {"FEATURES": np.zeros((4, 3), np.float32)}
    labels = np.zeros(4, np.int64)
    ok = LocalClient(lambda t: {"LABELS": labels, "EXTRA": "info"}, name="ok", inputs=SPEC,
                     outputs=LABELS, extras={"EXTRA": str})
    assert ok.infer(x)["EXTRA"] == "info"
    undeclared = LocalClient(lambda t: {"LABELS": labels, "EXTRA": "info"}, name="u",
                             inputs=SPEC, outputs=LABELS)
    with pytest.raises(OutputCheckError, match="undeclared output 'EXTRA'"):
        undeclared.infer(x)
    wrong = LocalClient(lambda t: {"LABELS": labels, "EXTRA": 3}, name="w", inputs=SPEC,
                        outputs=LABELS, extras={"EXTRA": str})
    with pytest.raises(OutputCheckError, match="output 'EXTRA' is a int, expected str"):
        wrong.infer(x)
