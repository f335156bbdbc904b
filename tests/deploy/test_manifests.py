"""Deployment files, checked by a real validator (kubernetes-validate, the Kubernetes
OpenAPI schemas) and against what the server really serves: probes on Triton's health
endpoints, the ports it listens on, least-request balancing, the container's commands."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
CHART = DEPLOY / "helm" / "sonic-exatrkx"
CRDS = {"ServiceMonitor", "ScaledObject"}  # custom resources: not in the Kubernetes schemas


def validator():
    try:
        import kubernetes_validate
    except ImportError:  # in the dev extra: a missing one is a broken install, not a skip
        pytest.fail("kubernetes-validate is not installed: pip install -e '.[dev]'")
    return kubernetes_validate


def manifests() -> list[tuple[str, dict]]:
    return [(f.name, doc) for f in sorted((DEPLOY / "kubernetes").glob("*.yaml"))
            for doc in yaml.safe_load_all(f.read_text()) if doc]


def test_plain_manifests_validate_against_the_kubernetes_schemas():
    kv = validator()
    docs = manifests()
    kinds = {doc["kind"] for _, doc in docs}
    assert {"Deployment", "Service", "ConfigMap", "HorizontalPodAutoscaler"} <= kinds
    for name, doc in docs:
        if doc["kind"] in CRDS:
            assert doc["apiVersion"] == "monitoring.coreos.com/v1", name
            assert doc["spec"]["endpoints"][0]["port"] == "metrics", name
            continue
        kv.validate(doc, kv.latest_version(), strict=True)  # raises on any error


def test_the_validator_is_real():
    kv = validator()
    deployment = next(doc for _, doc in manifests() if doc["kind"] == "Deployment")
    broken = yaml.safe_load(yaml.safe_dump(deployment))
    broken["spec"]["replicas"] = "two"
    with pytest.raises(kv.ValidationError):
        kv.validate(broken, kv.latest_version(), strict=True)


def container(kind_component: str) -> dict:
    for _, doc in manifests():
        labels = doc["metadata"].get("labels", {})
        if doc["kind"] == "Deployment" and \
                labels.get("app.kubernetes.io/component") == kind_component:
            return doc["spec"]["template"]["spec"]["containers"][0]
    raise AssertionError(kind_component)


def test_server_probes_use_tritons_health_endpoints_and_its_ports():
    from sonic_exatrkx.server.launcher import TritonServer

    triton = container("triton")
    ports = {p["name"]: p["containerPort"] for p in triton["ports"]}
    assert ports == {"http": 8000, "grpc": 8001, "metrics": 8002}
    assert triton["readinessProbe"]["httpGet"] == {"path": "/v2/health/ready", "port": "http"}
    assert triton["startupProbe"]["httpGet"]["path"] == "/v2/health/ready"
    assert triton["livenessProbe"]["httpGet"] == {"path": "/v2/health/live", "port": "http"}
    assert "v2/health/ready" in Path(sys.modules[TritonServer.__module__].__file__).read_text()
    for _, doc in manifests():  # nothing binds a port on the node
        assert "hostPort" not in yaml.safe_dump(doc) and "hostNetwork" not in yaml.safe_dump(doc)


def test_envoy_balances_least_request_over_the_server_pods_over_http2():
    config_map = next(doc for _, doc in manifests() if doc["kind"] == "ConfigMap")
    envoy = yaml.safe_load(config_map["data"]["envoy.yaml"])
    cluster = envoy["static_resources"]["clusters"][0]
    assert cluster["lb_policy"] == "LEAST_REQUEST" and cluster["type"] == "STRICT_DNS"
    limits = cluster["circuit_breakers"]["thresholds"][0]  # not Envoy's default of 1024
    assert limits["max_requests"] >= 10_000 and limits["max_retries"] == 0
    options = cluster["typed_extension_protocol_options"]
    assert "http2_protocol_options" in yaml.safe_dump(options)
    address = cluster["load_assignment"]["endpoints"][0]["lb_endpoints"][0]["endpoint"][
        "address"]["socket_address"]
    headless = next(doc for _, doc in manifests() if doc["kind"] == "Service"
                    and doc["spec"].get("clusterIP") == "None")
    assert address == {"address": headless["metadata"]["name"], "port_value": 8001}


def template_values(text: str) -> set[str]:
    return set(re.findall(r"\.Values\.([A-Za-z0-9_.]+)", text))


def test_chart_is_complete_and_its_defaults_are_the_plain_manifests():
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    assert chart["apiVersion"] == "v2" and chart["name"] == "sonic-exatrkx" and chart["version"]
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    for template in sorted((CHART / "templates").glob("*.yaml")):
        for ref in template_values(template.read_text()):
            node = values
            for key in ref.split("."):
                assert isinstance(node, dict) and key in node, f"{template.name}: .Values.{ref}"
                node = node[key]
    text = "".join(t.read_text() for t in (CHART / "templates").glob("*.yaml"))
    assert "image: {{ .Values.server.image }}" in text  # images are parameters
    assert "image: {{ .Values.envoy.image }}" in text
    # The envoy template with the defaults is the plain envoy.yaml, line for line.
    subs = {".Release.Name": "sonic-exatrkx", ".Values.envoy.port": "8001",
            ".Values.envoy.lbPolicy": values["envoy"]["lbPolicy"],
            ".Values.server.ports.grpc": str(values["server"]["ports"]["grpc"]),
            ".Values.envoy.replicas": str(values["envoy"]["replicas"]),
            ".Values.envoy.image": values["envoy"]["image"]}
    envoy = (CHART / "templates" / "envoy.yaml").read_text()
    envoy = envoy.replace("{{- if .Values.envoy.enabled }}\n", "").replace("{{- end }}\n", "")
    rendered = re.sub(r"\{\{\s*([^}|]+?)\s*\}\}", lambda m: subs[m.group(1).strip()], envoy)
    plain = (DEPLOY / "kubernetes" / "envoy.yaml").read_text().split("\n", 1)[1]
    assert rendered == plain


def test_dockerfile_installs_the_pins_and_its_repository_command_works(tmp_path):
    text = (DEPLOY / "container" / "Dockerfile").read_text()
    assert text.startswith("#") and re.search(r"^FROM python:3\.11", text, re.M)
    assert "pip install -c constraints.txt '.[triton]'" in text
    assert re.search(r"^EXPOSE 8000 8001 8002$", text, re.M)
    assert "HEALTHCHECK" in text and "/v2/health/ready" in text
    # The build's repository-writing command, run here on the shipped models.
    run = re.search(r'RUN python -c "(.+?)"\n', text.replace("\\\n", ""), re.S)
    assert run, "no repository-writing RUN line"
    code = (run[1].replace("${INSTANCES}", "1").replace("${THREADS_PER_INSTANCE}", "1")
            .replace("/opt/repository", str(tmp_path / "repo"))
            .replace("/opt/models", str(ROOT / "data" / "models")))
    subprocess.run([sys.executable, "-c", code], check=True, timeout=300)
    assert (tmp_path / "repo" / "exatrkx" / "config.pbtxt").is_file()
    assert "MODELS_CHECKSUM" in (tmp_path / "repo" / "exatrkx" / "config.pbtxt").read_text()
