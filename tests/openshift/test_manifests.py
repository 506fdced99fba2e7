"""Every processed object is valid Kubernetes 1.30 (strict), and the objects fit together
and fit pman: probes on routes pman serves, settings pman accepts, selectors that select,
references that resolve, the Swift Secret reaching pman and only the jobs' stage-in and
publish, room on pman's /tmp for the largest upload."""

from __future__ import annotations

import copy
import dataclasses

import jsonschema
import kubernetes_validate
import pytest
from flask import Flask
from kubernetes.utils.quantity import parse_quantity

from pman.api.common import PUBLIC_ENDPOINTS
from pman.app import BLUEPRINTS
from pman.errors import SettingsError
from pman.jobspec import CREDENTIALS_FILE, build_job
from pman.models import parse_job_request
from pman.settings import Settings, parse_size
from swiftcreds import load_file
from tests.support.bodies import pfcon_request
from tests.support.openshift import template
from tests.support.openshift.route import validate_route
from tests.support.openshift.templates import (
    ALL_SET,
    OPENSHIFT,
    REQUIRED,
    deployed_objects,
    find,
    load,
    pman_container,
    pman_env,
    pman_settings,
    process,
)
from tests.support.openshift.templates import given as given_parameters

KUBERNETES = "1.30"
# Kinds kubernetes-validate has no schema for; each is checked some other way.
OPENSHIFT_KINDS = {"Route"}


def validate(obj: dict) -> None:
    if obj["kind"] == "Route":
        validate_route(obj, KUBERNETES)
    else:
        kubernetes_validate.validate(obj, KUBERNETES, strict=True)


def test_every_processed_object_validates(processed):
    _, _, objects = processed
    for obj in objects:
        validate(obj)


def test_only_the_route_is_outside_kubernetes_validate():
    kinds = {o["kind"] for name in REQUIRED for o in process(name)}
    unvalidated = set()
    for obj in (o for name in REQUIRED for o in process(name)):
        try:
            kubernetes_validate.validate(obj, KUBERNETES, strict=True)
        except kubernetes_validate.SchemaNotFoundError:
            unvalidated.add(obj["kind"])
    assert unvalidated == OPENSHIFT_KINDS
    assert kinds >= {"Deployment", "Service", "Role", "RoleBinding", "ServiceAccount", "Secret"}


@pytest.mark.parametrize(
    ("kind", "path", "value"),
    [
        ("Deployment", ["spec", "template", "spec", "containers", 0, "readinesProbe"], {}),
        ("Deployment", ["spec", "replicas"], "1"),
        ("Role", ["rules", 0, "verbs"], "get"),
        ("Route", ["spec", "tls", "termination"], "edge-only"),
        ("Route", ["spec", "port", "targetPort"], ""),
        ("Route", ["spec", "tlsConfig"], {}),
        ("Route", ["metadata", "labels"], {"a": 1}),
    ],
)
def test_validation_catches_mistakes(kind, path, value):
    obj = copy.deepcopy(next(o for o in process("pman.yaml") if o["kind"] == kind))
    target = obj
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    with pytest.raises(jsonschema.ValidationError):
        validate(obj)


# -- pman's Deployment, Service and Route


def served_routes() -> dict[str, str]:
    """Path -> endpoint of every route pman serves (no cluster needed)."""
    app = Flask("routes")
    for blueprint in BLUEPRINTS:
        app.register_blueprint(blueprint)
    return {rule.rule: rule.endpoint for rule in app.url_map.iter_rules()}


@pytest.mark.parametrize("probe", ["readinessProbe", "livenessProbe"])
def test_probes_ask_pman_health_routes_that_need_no_token(probe):
    container = pman_container(process("pman.yaml"))
    get = container[probe]["httpGet"]
    assert served_routes()[get["path"]] in PUBLIC_ENDPOINTS
    assert get["port"] in {port["name"] for port in container["ports"]}


def test_readiness_asks_kubernetes_and_liveness_does_not():
    container = pman_container(process("pman.yaml"))
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"


def test_pman_runs_under_gunicorn_with_its_config_on_the_port_it_binds():
    import pman.gunicorn_conf as conf

    container = pman_container(process("pman.yaml"))
    assert container["command"] == ["gunicorn", "--config", "python:pman.gunicorn_conf"]
    (port,) = container["ports"]
    assert conf.bind.rsplit(":", 1)[1] == str(port["containerPort"])
    assert "PMAN_BIND" not in pman_env(process("pman.yaml"))


def given(variant: str) -> dict[str, str]:
    """pman.yaml's parameters as processed: the defaults, then what the variant sets."""
    return given_parameters("pman.yaml", variant)


@pytest.mark.parametrize("variant", ["defaults", "swift-all-set"])
def test_the_deployment_environment_is_a_valid_pman_configuration(variant):
    objects, values = process("pman.yaml", variant), given(variant)
    settings = pman_settings(objects)
    assert settings.container_env == "openshift"
    assert settings.storage_type == "swift"
    assert settings.job_namespace == values["NAMESPACE"]
    assert settings.publisher_image == values["PUBLISHER_IMAGE"]
    assert settings.swift_secret_name == values["SWIFT_SECRET_NAME"]
    assert settings.job_deadline_seconds == int(values["JOB_DEADLINE_SECONDS"])
    assert settings.job_ttl_seconds == int(values["JOB_TTL_SECONDS"])
    assert settings.job_grace_seconds == int(values["JOB_GRACE_SECONDS"])
    assert settings.job_logs_tail == int(values["JOB_LOGS_TAIL"])
    assert settings.job_logs_max_bytes == parse_size(values["JOB_LOGS_MAX_BYTES"])
    assert settings.api_token == find(objects, "Secret", "pman-api-token")["stringData"]["token"]
    assert pman_env(objects)["PMAN_WORKERS"] == values["GUNICORN_WORKERS"]
    assert settings.max_data_bytes == parse_size(values["PMAN_MAX_DATA_SIZE"])
    example = load_file(OPENSHIFT / "swift-credentials.cfg.example")
    read = settings.swift_credentials
    assert read is not None
    assert read.source.endswith("/swift-credentials.cfg")
    assert dataclasses.replace(read, source=example.source) == example
    find(deployed_objects(variant), "ServiceAccount", settings.publisher_service_account)


def test_the_storage_parameters_make_pman_mount_the_claim_and_swift_serve_only_the_pfcon_api():
    objects, values = process("pman.yaml", "all-set"), given("all-set")
    settings = pman_settings(objects)
    assert (settings.storage_type, settings.volume_name) == ("kubernetes_pvc", "chris-storebase")
    assert values["VOLUME_NAME"] == "chris-storebase"
    # The Swift Secret is optional: read for the pfcon API's jobs (which always use Swift)
    # when it is there; without it pman starts with the pfcon API off.
    assert settings.swift_credentials is not None
    assert settings.pfcon_enabled
    without = pman_settings(objects, secrets={})
    assert (without.swift_credentials, without.pfcon_enabled) == (None, False)
    off = pman_settings(objects, extra={"PFCON_USER": "", "PFCON_PASSWORD": ""})
    assert off.swift_credentials is None  # not read when nothing needs it
    (volume,) = job_pod("all-set")["spec"]["volumes"]
    assert volume == {
        "name": "storebase",
        "persistentVolumeClaim": {"claimName": "chris-storebase"},
    }


def test_the_claim_is_needed_for_the_pvc_mode_and_refused_for_swift():
    pvc = {**REQUIRED["pman.yaml"], "STORAGE_TYPE": "kubernetes_pvc"}
    with pytest.raises(SettingsError, match="STORAGE_TYPE=kubernetes_pvc needs VOLUME_NAME"):
        pman_settings(template.process(load("pman.yaml"), pvc)["items"])
    swift = {**REQUIRED["pman.yaml"], "VOLUME_NAME": "chris-storebase"}
    with pytest.raises(SettingsError, match="VOLUME_NAME is set but STORAGE_TYPE=swift"):
        pman_settings(template.process(load("pman.yaml"), swift)["items"])


def test_pman_starts_without_the_swift_secret_only_in_a_volume_mode():
    # The Secret volume is optional: without the Secret, the file is not there.
    objects = process("pman.yaml", "all-set")
    assert pman_settings(objects, secrets={}).storage_type == "kubernetes_pvc"
    with pytest.raises(SettingsError, match="does not exist"):
        pman_settings(process("pman.yaml"), secrets={})


def test_the_defaults_match_pmans_own():
    settings, defaults = pman_settings(process("pman.yaml")), Settings()
    fields = (
        "job_deadline_seconds",
        "job_ttl_seconds",
        "job_grace_seconds",
        "job_logs_tail",
        "job_logs_max_bytes",
        "swift_secret_name",
        "max_data_bytes",
    )
    for field in fields:
        assert getattr(settings, field) == getattr(defaults, field), field
    assert settings.publisher_image == defaults.publisher_image


def test_selectors_select_the_pman_pods():
    objects = process("pman.yaml")
    deployment = find(objects, "Deployment", "pman")
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert deployment["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()
    assert find(objects, "Service", "pman")["spec"]["selector"].items() <= pod_labels.items()


def test_the_route_reaches_the_service_and_the_service_the_container():
    objects = process("pman.yaml", "all-set")
    route, service = find(objects, "Route", "pman"), find(objects, "Service", "pman")
    assert route["spec"]["to"] == {"kind": "Service", "name": "pman", "weight": 100}
    assert route["spec"]["host"] == ALL_SET["pman.yaml"]["ROUTE_HOST"]
    assert route["spec"]["tls"] == {
        "termination": "edge",
        "insecureEdgeTerminationPolicy": "Redirect",
    }
    (port,) = service["spec"]["ports"]
    assert route["spec"]["port"]["targetPort"] == port["name"]
    assert port["targetPort"] in {p["name"] for p in pman_container(objects)["ports"]}


def test_the_route_host_is_left_to_the_router_by_default():
    assert find(process("pman.yaml"), "Route", "pman")["spec"]["host"] == ""


def test_the_api_token_reaches_pman_only_through_its_secret():
    objects = process("pman.yaml", "all-set")
    (item,) = [e for e in pman_container(objects)["env"] if e["name"] == "PMAN_API_TOKEN"]
    assert item["valueFrom"]["secretKeyRef"] == {"name": "pman-api-token", "key": "token"}
    token = ALL_SET["pman.yaml"]["PMAN_API_TOKEN"]
    others = [o for o in objects if o["kind"] != "Secret"]
    assert token not in repr(others)


def pman_volumes(objects: list) -> dict[str, dict]:
    spec = find(objects, "Deployment", "pman")["spec"]["template"]["spec"]
    return {volume["name"]: volume for volume in spec["volumes"]}


@pytest.mark.parametrize("variant", ["defaults", "all-set"])
def test_pman_reads_the_swift_secret_the_jobs_mount_read_only(variant):
    objects, values = process("pman.yaml", variant), given(variant)
    container = pman_container(objects)
    volumes = pman_volumes(objects)
    secrets = {name: volume["secret"] for name, volume in volumes.items() if "secret" in volume}
    assert secrets == {
        "swift-credentials": {
            "secretName": values["SWIFT_SECRET_NAME"],
            "optional": True,
            "items": [{"key": "swift-credentials.cfg", "path": "swift-credentials.cfg"}],
        }
    }
    (mount,) = [m for m in container["volumeMounts"] if m["name"] == "swift-credentials"]
    assert mount["readOnly"] is True
    path = pman_env(objects)["SWIFT_CREDENTIALS_FILE"]
    assert path == f"{mount['mountPath']}/swift-credentials.cfg"
    # The jobs' stage-in and publish containers read the same Secret at the same path.
    assert path == CREDENTIALS_FILE


@pytest.mark.parametrize("variant", ["defaults", "all-set"])
def test_pmans_tmp_volume_holds_the_largest_upload_twice(variant):
    # A zip upload is kept whole on /tmp beside the files it unpacks to (pman/api/data.py).
    objects, values = process("pman.yaml", variant), given(variant)
    container = pman_container(objects)
    (mount,) = [m for m in container["volumeMounts"] if m["name"] == "tmp"]
    assert pman_env(objects)["TMPDIR"] == mount["mountPath"] == "/tmp"
    size_limit = pman_volumes(objects)["tmp"]["emptyDir"]["sizeLimit"]
    assert size_limit == values["TMP_SIZE_LIMIT"]
    assert parse_quantity(size_limit) >= 2 * pman_settings(objects).max_data_bytes


def test_the_upload_size_is_spelt_as_both_pman_and_kubernetes_read_it():
    # One spelling for both parameters, so an operator can compare them at a glance.
    for variant in ("defaults", "all-set"):
        size = given(variant)["PMAN_MAX_DATA_SIZE"]
        assert parse_size(size) == parse_quantity(size), size


def test_the_route_waits_as_long_as_a_large_upload_takes():
    for variant in ("defaults", "all-set"):
        route = find(process("pman.yaml", variant), "Route", "pman")
        timeout = route["metadata"]["annotations"]["haproxy.router.openshift.io/timeout"]
        assert timeout == given(variant)["ROUTE_TIMEOUT"]
    assert given("defaults")["ROUTE_TIMEOUT"] == "10m"


def test_resources_are_requested_and_limited():
    resources = pman_container(process("pman.yaml", "all-set"))["resources"]
    assert resources == {
        "requests": {"cpu": "250m", "memory": "300Mi"},
        "limits": {"cpu": "2", "memory": "1Gi"},
    }


# -- RBAC objects fit together


@pytest.mark.parametrize("variant", ["defaults", "all-set"])
def test_role_bindings_bind_the_templates_roles_to_its_service_accounts(variant):
    objects = deployed_objects(variant)
    namespace = ALL_SET["pman.yaml"]["NAMESPACE"] if variant == "all-set" else "chris"
    bindings = [o for o in objects if o["kind"] == "RoleBinding"]
    expected = {"pman", "pman-publisher"} if variant == "defaults" else {"pman"}
    assert {b["metadata"]["name"] for b in bindings} == expected
    for binding in bindings:
        find(objects, binding["roleRef"]["kind"], binding["roleRef"]["name"])
        for subject in binding["subjects"]:
            assert subject["namespace"] == namespace
            find(objects, subject["kind"], subject["name"])
    deployment = find(objects, "Deployment", "pman")
    assert deployment["spec"]["template"]["spec"]["serviceAccountName"] == "pman"


def test_the_publisher_service_account_mounts_no_token_by_itself():
    account = find(process("pman-publisher.yaml"), "ServiceAccount", "pman-publisher")
    assert account["automountServiceAccountToken"] is False


def test_pmans_own_template_holds_no_publisher_rights():
    # The volume storage modes run no publisher: its account and Role are the other
    # template's, applied with Swift storage only.
    names = {(o["kind"], o["metadata"]["name"]) for o in process("pman.yaml")}
    assert {name for kind, name in names if kind in ("ServiceAccount", "Role")} == {"pman"}


# -- the jobs pman builds with this configuration


def job_pod(variant: str = "defaults") -> dict:
    settings = pman_settings(process("pman.yaml", variant))
    job = build_job(parse_job_request(pfcon_request()), settings, run="run-1")
    return job["spec"]["template"]


@pytest.mark.parametrize("variant", ["defaults", "swift-all-set"])
def test_the_swift_secret_reaches_only_stage_in_and_publish(variant):
    pod = job_pod(variant)["spec"]
    (volume,) = [v for v in pod["volumes"] if "secret" in v]
    secret = (
        ALL_SET["pman.yaml"]["SWIFT_SECRET_NAME"]
        if variant == "swift-all-set"
        else "swift-credentials"
    )
    assert volume["secret"] == {"secretName": secret}  # every key, swift-credentials.cfg included
    mounted = {
        c["name"]: m
        for c in pod["initContainers"] + pod["containers"]
        for m in c["volumeMounts"]
        if m["name"] == volume["name"]
    }
    assert set(mounted) == {"stage-in", "publish"}
    for mount in mounted.values():
        assert mount["readOnly"] is True
        assert f"{mount['mountPath']}/swift-credentials.cfg" == CREDENTIALS_FILE


def test_no_secret_and_no_account_reach_the_jobs_of_the_pvc_mode():
    settings = pman_settings(process("pman.yaml", "all-set"))
    request = parse_job_request(pfcon_request(type="ds"), volume_storage=True)
    pod = build_job(request, settings, run="run-1")["spec"]["template"]["spec"]
    assert not [v for v in pod["volumes"] if "secret" in v or "projected" in v]
    assert "serviceAccountName" not in pod
    assert pod["automountServiceAccountToken"] is False
    images = {c["name"]: c["image"] for c in pod["initContainers"] + pod["containers"]}
    assert images["check-input"] == ALL_SET["pman.yaml"]["PUBLISHER_IMAGE"]


def test_jobs_run_as_the_publisher_account_with_the_publisher_image():
    objects = deployed_objects("swift-all-set")
    pod = job_pod("swift-all-set")["spec"]
    find(objects, "ServiceAccount", pod["serviceAccountName"])
    assert pod["automountServiceAccountToken"] is False
    images = {c["name"]: c["image"] for c in pod["initContainers"] + pod["containers"]}
    assert images["stage-in"] == images["publish"] == ALL_SET["pman.yaml"]["PUBLISHER_IMAGE"]


# -- network policies


def test_the_api_policy_selects_pman_pods_and_the_jobs_policy_only_job_pods():
    policies = process("pman-networkpolicy.yaml")
    pman_pod = find(process("pman.yaml"), "Deployment", "pman")["spec"]["template"]["metadata"]
    job_labels = job_pod()["metadata"]["labels"]

    def selects(policy: str, labels: dict) -> bool:
        selector = find(policies, "NetworkPolicy", policy)["spec"]["podSelector"]["matchLabels"]
        return selector.items() <= labels.items()

    assert selects("pman-api", pman_pod["labels"])
    assert not selects("pman-api", job_labels)
    assert selects("pman-jobs", job_labels)
    assert not selects("pman-jobs", pman_pod["labels"])


def test_the_api_policy_opens_only_pmans_port():
    policies = process("pman-networkpolicy.yaml", "all-set")
    (rule,) = find(policies, "NetworkPolicy", "pman-api")["spec"]["ingress"]
    container_port = pman_container(process("pman.yaml"))["ports"][0]["containerPort"]
    assert rule["ports"] == [{"protocol": "TCP", "port": container_port}]
    namespaces = [
        p["namespaceSelector"]["matchLabels"] for p in rule["from"] if "namespaceSelector" in p
    ]
    assert {"kubernetes.io/metadata.name": "pfcon"} in namespaces
    assert find(policies, "NetworkPolicy", "pman-jobs")["spec"]["ingress"] == []


def test_an_empty_token_given_explicitly_turns_authentication_off():
    objects = template.process(load("pman.yaml"), {**REQUIRED["pman.yaml"], "PMAN_API_TOKEN": ""})
    assert find(objects["items"], "Secret", "pman-api-token")["stringData"] == {"token": ""}
    assert pman_settings(objects["items"]).api_token is None
