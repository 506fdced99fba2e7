"""The API's conventions through the official client: discovery, errors as Status objects,
server-set fields, selectors, paging, patches, Secrets."""

from __future__ import annotations

import base64
import json

import kubernetes
import pytest
import urllib3
from kubernetes.client.exceptions import ApiException

from tests.support.kube import container, job_manifest, status_body
from tests.support.names import unique_name


def _suspended(name: str, **labels: str) -> dict:
    manifest = job_manifest(name, [container("main", "true")], suspend=True)
    manifest["metadata"]["labels"] = labels
    return manifest


def test_version_and_discovery(api):
    assert kubernetes.client.VersionApi(api).get_code().git_version.startswith("v1.")
    core = kubernetes.client.CoreV1Api(api).get_api_resources()
    names = {r.name: r for r in core.resources}
    assert {"pods", "pods/log", "secrets", "configmaps"} <= set(names)
    assert "watch" in names["pods"].verbs
    batch = kubernetes.client.BatchV1Api(api).get_api_resources()
    jobs = next(r for r in batch.resources if r.name == "jobs")
    assert jobs.kind == "Job"
    assert jobs.namespaced
    groups = kubernetes.client.ApisApi(api).get_api_versions()
    assert "batch" in [g.name for g in groups.groups]


def test_created_job_has_server_fields_and_defaults(jobs):
    name = unique_name("defaults")
    job = jobs(_suspended(name, team="a"))
    meta = job.metadata
    assert meta.uid
    assert meta.resource_version
    assert meta.creation_timestamp
    assert meta.generation == 1
    uid = meta.uid
    assert job.spec.selector.match_labels == {"batch.kubernetes.io/controller-uid": uid}
    labels = job.spec.template.metadata.labels
    assert labels["batch.kubernetes.io/job-name"] == name
    assert labels["job-name"] == name
    assert labels["controller-uid"] == uid
    assert job.spec.backoff_limit == 0
    assert job.spec.parallelism == 1
    assert job.spec.completions == 1
    assert job.spec.template.spec.containers[0].termination_message_path == "/dev/termination-log"


def test_same_job_twice_is_409(jobs, batch, namespace):
    name = unique_name("twice")
    jobs(_suspended(name))
    with pytest.raises(ApiException) as raised:
        batch.create_namespaced_job(namespace, _suspended(name))
    assert raised.value.status == 409
    body = status_body(raised.value)
    assert body["reason"] == "AlreadyExists"
    assert body["message"] == f'jobs.batch "{name}" already exists'
    assert body["details"] == {"name": name, "group": "batch", "kind": "jobs"}


def test_bad_name_is_422(batch, namespace):
    with pytest.raises(ApiException) as raised:
        batch.create_namespaced_job(namespace, _suspended("Bad_Name"))
    assert raised.value.status == 422
    body = status_body(raised.value)
    assert body["reason"] == "Invalid"
    assert body["message"].startswith(
        'Job.batch "Bad_Name" is invalid: metadata.name: Invalid value'
    )
    assert [c["field"] for c in body["details"]["causes"]] == ["metadata.name"]


def _set(path: str, value):
    """A change of the manifest at ``path`` (dotted; ``[0]`` indexes a list) to ``value``."""

    def change(manifest):
        *parents, last = path.split(".")
        node = manifest
        for part in parents:
            key, _, index = part.partition("[")
            node = node.setdefault(key, {})
            if index:
                node = node[int(index.rstrip("]"))]
        node[last] = value(node.get(last)) if callable(value) else value

    return change


# A trailing newline: Python's "$" matches before it, Kubernetes' names never end with one.
NEWLINE_CASES = [
    (_set("metadata.name", lambda name: name + "\n"), "metadata.name"),
    (_set("metadata.labels", {"team": "a\n"}), "metadata.labels"),
    (_set("metadata.labels", {"team\n": "a"}), "metadata.labels"),
    (_set("metadata.annotations", {"note\n": "a"}), "metadata.annotations"),
    (_set("spec.template.metadata", {"labels": {"k": "v\n"}}), "spec.template.metadata.labels"),
    (_set("spec.template.spec.containers[0].name", "main\n"),
     "spec.template.spec.containers[0].name"),
    (_set("spec.template.spec.containers[0].env", [{"name": "A\n", "value": "1"}]),
     "spec.template.spec.containers[0].env[0].name"),
    (_set("spec.template.spec.containers[0].env",
          [{"name": "A", "valueFrom": {"fieldRef": {"fieldPath": "metadata.labels['a']\n"}}}]),
     "spec.template.spec.containers[0].env[0].valueFrom.fieldRef.fieldPath"),
]  # fmt: skip


@pytest.mark.parametrize(("breaks", "field"), NEWLINE_CASES)
def test_a_trailing_newline_makes_a_name_invalid(batch, namespace, breaks, field):
    manifest = _suspended(unique_name("newline"))
    breaks(manifest)
    with pytest.raises(ApiException) as raised:
        batch.create_namespaced_job(namespace, manifest)
    assert raised.value.status == 422, raised.value.body
    assert field in [c["field"] for c in status_body(raised.value)["details"]["causes"]]


@pytest.mark.parametrize(("suffix", "data"), [("\n", {}), ("", {"key\n": ""})], ids=["name", "key"])
def test_a_trailing_newline_makes_a_secret_invalid(core, namespace, suffix, data):
    body = {"metadata": {"name": unique_name("creds") + suffix}, "data": data}
    with pytest.raises(ApiException) as raised:
        core.create_namespaced_secret(namespace, body)
    assert raised.value.status == 422, raised.value.body


def _without_containers(m):
    m["spec"]["template"]["spec"]["containers"] = []


def _without_image(m):
    del m["spec"]["template"]["spec"]["containers"][0]["image"]


def _restart_always(m):
    m["spec"]["template"]["spec"]["restartPolicy"] = "Always"


def _duplicate_names(m):
    m["spec"]["template"]["spec"]["containers"].append(container("main", "true"))


def _init_name_clash(m):
    m["spec"]["template"]["spec"]["initContainers"] = [container("main", "true")]


def _unknown_volume(m):
    m["spec"]["template"]["spec"]["containers"][0]["volumeMounts"] = [
        {"name": "nowhere", "mountPath": "/x"}
    ]


@pytest.mark.parametrize(
    ("breaks", "field"),
    [
        (_without_containers, "spec.template.spec.containers"),
        (_without_image, "spec.template.spec.containers[0].image"),
        (_restart_always, "spec.template.spec.restartPolicy"),
        (_duplicate_names, "spec.template.spec.containers[1].name"),
        (_init_name_clash, "spec.template.spec.containers[0].name"),
        (_unknown_volume, "spec.template.spec.containers[0].volumeMounts[0].name"),
    ],
)
def test_invalid_pod_template_is_422(batch, namespace, breaks, field):
    manifest = _suspended(unique_name("invalid"))
    breaks(manifest)
    with pytest.raises(ApiException) as raised:
        batch.create_namespaced_job(namespace, manifest)
    assert raised.value.status == 422
    causes = status_body(raised.value)["details"]["causes"]
    assert field in [c["field"] for c in causes]


def test_missing_job_is_404(batch, namespace):
    with pytest.raises(ApiException) as raised:
        batch.read_namespaced_job("no-such-job", namespace)
    assert raised.value.status == 404
    body = status_body(raised.value)
    assert body["reason"] == "NotFound"
    assert body["message"] == 'jobs.batch "no-such-job" not found'
    with pytest.raises(ApiException) as raised:
        batch.delete_namespaced_job("no-such-job", namespace)
    assert raised.value.status == 404


def test_label_and_field_selectors(jobs, batch, namespace):
    tag = unique_name("sel")
    one, two = unique_name("a"), unique_name("b")
    jobs(_suspended(one, set=tag, tier="x"))
    jobs(_suspended(two, set=tag, tier="y"))

    def names(**kw):
        return sorted(j.metadata.name for j in batch.list_namespaced_job(namespace, **kw).items)

    assert names(label_selector=f"set={tag}") == sorted([one, two])
    assert names(label_selector=f"set={tag},tier in (y, z)") == [two]
    assert names(label_selector=f"set={tag},tier!=y") == [one]
    assert names(label_selector=f"set={tag},!tier") == []
    assert names(field_selector=f"metadata.name={one}") == [one]


def test_bad_selectors_are_400(batch, namespace):
    for kwargs in ({"label_selector": "a in (b"}, {"field_selector": "spec.nope=1"}):
        with pytest.raises(ApiException) as raised:
            batch.list_namespaced_job(namespace, **kwargs)
        assert raised.value.status == 400
        assert status_body(raised.value)["reason"] == "BadRequest"


def test_list_pages_with_limit_and_continue(jobs, batch, namespace):
    tag = unique_name("page")
    created = sorted(jobs(_suspended(unique_name("p"), page=tag)).metadata.name for _ in range(3))
    first = batch.list_namespaced_job(namespace, label_selector=f"page={tag}", limit=2)
    assert len(first.items) == 2
    assert first.metadata._continue
    rest = batch.list_namespaced_job(
        namespace, label_selector=f"page={tag}", limit=2, _continue=first.metadata._continue
    )
    assert sorted(j.metadata.name for j in [*first.items, *rest.items]) == created
    assert not rest.metadata._continue


def test_patch_labels_and_read_status(jobs, batch, namespace):
    name = unique_name("patch")
    job = jobs(_suspended(name))
    patched = batch.patch_namespaced_job(name, namespace, {"metadata": {"labels": {"seen": "yes"}}})
    assert patched.metadata.labels["seen"] == "yes"
    assert int(patched.metadata.resource_version) > int(job.metadata.resource_version)
    assert patched.metadata.generation == 1
    status = batch.read_namespaced_job_status(name, namespace)
    assert status.metadata.name == name


def test_changing_the_template_is_refused(jobs, batch, namespace):
    name = unique_name("immutable")
    jobs(_suspended(name))
    change = {"spec": {"template": {"spec": {"containers": [container("main", "false")]}}}}
    with pytest.raises(ApiException) as raised:
        batch.patch_namespaced_job(name, namespace, change)
    assert raised.value.status == 422


def test_secrets_create_get_delete(core, namespace):
    name = unique_name("secret")
    body = {
        "metadata": {"name": name},
        "stringData": {"swift-credentials.cfg": "[AUTHORIZATION]\nosAuthUrl = x\n"},
    }
    created = core.create_namespaced_secret(namespace, body)
    assert created.type == "Opaque"
    read = core.read_namespaced_secret(name, namespace)
    assert base64.b64decode(read.data["swift-credentials.cfg"]).startswith(b"[AUTHORIZATION]")
    with pytest.raises(ApiException) as raised:
        core.create_namespaced_secret(namespace, body)
    assert raised.value.status == 409
    core.delete_namespaced_secret(name, namespace)
    with pytest.raises(ApiException) as raised:
        core.read_namespaced_secret(name, namespace)
    assert raised.value.status == 404


def test_secret_with_bad_base64_is_400(core, namespace):
    body = {"metadata": {"name": unique_name("secret")}, "data": {"k": "not base64!"}}
    with pytest.raises(ApiException) as raised:
        core.create_namespaced_secret(namespace, body)
    assert raised.value.status == 400


def test_root_ca_configmap_exists(core, namespace, kube_cluster):
    config_map = core.read_namespaced_config_map("kube-root-ca.crt", namespace)
    assert "BEGIN CERTIFICATE" in config_map.data["ca.crt"]
    if kube_cluster.local is not None:
        assert config_map.data["ca.crt"] == kube_cluster.local.ca_path.read_text()


def test_requests_without_token_are_401(local):
    pool = urllib3.PoolManager(ca_certs=str(local.ca_path))
    response = pool.request("GET", f"{local.url}/api/v1/namespaces/default/pods")
    assert response.status == 401
    assert json.loads(response.data)["reason"] == "Unauthorized"
    response = pool.request(
        "GET",
        f"{local.url}/api/v1/namespaces/default/pods",
        headers={"Authorization": "Bearer forged.token.here"},
    )
    assert response.status == 401
    assert pool.request("GET", f"{local.url}/version").status == 200


def test_unknown_path_is_404_status(api):
    response = api.call_api(
        *api.param_serialize("GET", "/apis/nothing/v1/things", auth_settings=["BearerToken"])
    )
    response.read()
    assert response.status == 404
    assert json.loads(response.data)["kind"] == "Status"
