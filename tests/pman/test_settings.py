"""Settings from environment variables: upstream's names and formats, clear errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from pman.errors import SettingsError
from pman.settings import ContainerUser, Settings


def test_defaults_without_any_variable():
    settings = Settings.from_env({})
    assert settings == Settings()
    assert (settings.job_namespace, settings.job_logs_tail, settings.job_ttl_seconds) == (
        "default",
        1000,
        86400,
    )
    assert settings.remove_jobs is True
    assert settings.api_token is None


def test_every_variable_is_read():
    settings = Settings.from_env(
        {
            "CONTAINER_ENV": "openshift",
            "JOB_NAMESPACE": "chris-jobs",
            "JOB_LOGS_TAIL": "50",
            "REMOVE_JOBS": "no",
            "JOB_LABELS": "team=radiology, example.org/tier=gold",
            "NODE_SELECTOR": "gpu=yes",
            "IMAGE_PULL_SECRETS": "a,b",
            "CONTAINER_USER": "1000000000-1000009999:0",
            "SHM_SIZE": "256",
            "IGNORE_LIMITS": "yes",
            "ENABLE_HOME_WORKAROUND": "true",
            "PUBLISHER_IMAGE": "quay.io/x/publisher:2",
            "SWIFT_SECRET_NAME": "swift",
            "PUBLISHER_SERVICE_ACCOUNT": "robot",
            "JOB_DEADLINE_SECONDS": "7200",
            "JOB_TTL_SECONDS": "0",
            "JOB_GRACE_SECONDS": "90",
            "PMAN_API_TOKEN": "s3cret",
            "PMAN_MAX_BODY_SIZE": "4096",
            "PMAN_STATUS_CACHE": "off",
            "KUBECONFIG": "/etc/kube/config",
        }
    )
    assert settings == Settings(
        container_env="openshift",
        job_namespace="chris-jobs",
        job_logs_tail=50,
        remove_jobs=False,
        job_labels={"team": "radiology", "example.org/tier": "gold"},
        node_selector={"gpu": "yes"},
        image_pull_secrets=("a", "b"),
        container_user=ContainerUser(uid=(1000000000, 1000009999), gid=0),
        shm_size_mib=256,
        ignore_limits=True,
        enable_home_workaround=True,
        publisher_image="quay.io/x/publisher:2",
        swift_secret_name="swift",
        publisher_service_account="robot",
        job_deadline_seconds=7200,
        job_ttl_seconds=0,
        job_grace_seconds=90,
        api_token="s3cret",
        max_body_bytes=4096,
        status_cache=False,
        kubeconfig="/etc/kube/config",
    )


@pytest.mark.parametrize(
    ("raw", "user"),
    [
        ("1001:0", ContainerUser(1001, 0)),
        (":5", ContainerUser(None, 5)),
        ("7:", ContainerUser(7, None)),
    ],
)
def test_container_user_forms(raw, user):
    assert Settings.from_env({"CONTAINER_USER": raw}).container_user == user


def test_empty_values_mean_the_default():
    assert Settings.from_env({"PMAN_API_TOKEN": "", "JOB_NAMESPACE": " "}) == Settings()


@pytest.mark.parametrize(
    ("variable", "value", "words"),
    [
        ("CONTAINER_ENV", "swarm", "expected one of kubernetes, openshift"),
        ("JOB_NAMESPACE", "Bad_NS", "not a valid namespace name"),
        ("JOB_LOGS_TAIL", "many", "whole number"),
        ("JOB_LOGS_TAIL", "0", "at least 1"),
        ("REMOVE_JOBS", "maybe", "expected yes or no"),
        ("JOB_LABELS", "team", "not key=value"),
        ("JOB_LABELS", "bad key=x", "not a valid label key"),
        ("NODE_SELECTOR", "a=not valid", "not a valid label value"),
        ("IMAGE_PULL_SECRETS", "Bad_Name", "not a valid Secret name"),
        ("CONTAINER_USER", "1000", "expected UID:GID"),
        ("CONTAINER_USER", "x:0", "not a non-negative number"),
        ("CONTAINER_USER", "5-1:0", "not a non-negative number or low-high range"),
        ("SHM_SIZE", "1Gi", "whole number"),
        ("JOB_DEADLINE_SECONDS", "0", "at least 1"),
        ("JOB_GRACE_SECONDS", "-1", "at least 0"),
        ("PMAN_MAX_BODY_SIZE", "10", "at least 1024"),
        ("SWIFT_SECRET_NAME", "UPPER", "not a valid Secret name"),
    ],
)
def test_bad_values_are_named_with_the_reason(variable, value, words):
    with pytest.raises(SettingsError) as caught:
        Settings.from_env({variable: value})
    assert f"{variable}={value!r}: " in str(caught.value)
    assert words in str(caught.value)


def test_every_bad_variable_is_reported_at_once():
    with pytest.raises(SettingsError) as caught:
        Settings.from_env({"JOB_LOGS_TAIL": "x", "REMOVE_JOBS": "x", "SHM_SIZE": "x"})
    assert all(name in str(caught.value) for name in ("JOB_LOGS_TAIL", "REMOVE_JOBS", "SHM_SIZE"))


# -- the storage mode ----------------------------------------------------------------------


def test_swift_is_the_storage_unless_told_otherwise():
    settings = Settings.from_env({})
    assert (settings.storage_type, settings.volume_name, settings.storebase) == (
        "swift",
        None,
        None,
    )
    assert settings.volume_storage is False


@pytest.mark.parametrize(
    ("environ", "expected"),
    [
        (
            {"STORAGE_TYPE": "kubernetes_pvc", "VOLUME_NAME": "storebase"},
            {"storage_type": "kubernetes_pvc", "volume_name": "storebase"},
        ),
        (
            {"STORAGE_TYPE": "host", "STOREBASE": "/var/local/storeBase/"},
            {"storage_type": "host", "storebase": Path("/var/local/storeBase")},
        ),
        ({"STORAGE_TYPE": "swift"}, {"storage_type": "swift"}),
    ],
)
def test_each_storage_mode_with_its_setting(environ, expected):
    settings = Settings.from_env(environ)
    assert settings == Settings(**expected)
    assert settings.volume_storage is (expected["storage_type"] != "swift")


@pytest.mark.parametrize(
    ("environ", "words"),
    [
        ({"STORAGE_TYPE": "kubernetes_pvc"}, "STORAGE_TYPE=kubernetes_pvc needs VOLUME_NAME"),
        ({"STORAGE_TYPE": "host"}, "STORAGE_TYPE=host needs STOREBASE"),
        ({"VOLUME_NAME": "storebase"}, "VOLUME_NAME is set but STORAGE_TYPE=swift"),
        ({"STOREBASE": "/data"}, "STOREBASE is set but STORAGE_TYPE=swift"),
        (
            {"STORAGE_TYPE": "host", "STOREBASE": "/data", "VOLUME_NAME": "storebase"},
            "VOLUME_NAME is set but STORAGE_TYPE=host",
        ),
        (
            {"STORAGE_TYPE": "kubernetes_pvc", "VOLUME_NAME": "c", "STOREBASE": "/data"},
            "STOREBASE is set but STORAGE_TYPE=kubernetes_pvc",
        ),
        (
            {"STORAGE_TYPE": "pvc"},
            "STORAGE_TYPE='pvc': expected one of swift, kubernetes_pvc, host",
        ),
        ({"STORAGE_TYPE": "docker_local_volume"}, "names a Docker volume"),
        ({"STORAGE_TYPE": "nfs"}, "use kubernetes_pvc"),
        (
            {"STORAGE_TYPE": "host", "STOREBASE": "data"},
            "STOREBASE='data': must be an absolute path",
        ),
        ({"STORAGE_TYPE": "host", "STOREBASE": "/a/../b"}, "must not contain '..'"),
        (
            {"STORAGE_TYPE": "kubernetes_pvc", "VOLUME_NAME": "Store_Base"},
            "not a valid PersistentVolumeClaim name",
        ),
    ],
)
def test_bad_storage_combinations_are_refused_at_start_naming_them(environ, words):
    with pytest.raises(SettingsError) as caught:
        Settings.from_env(environ)
    assert words in str(caught.value)


def test_a_storage_type_that_does_not_parse_is_reported_alone():
    with pytest.raises(SettingsError) as caught:
        Settings.from_env({"STORAGE_TYPE": "pvc", "VOLUME_NAME": "storebase"})
    assert "STORAGE_TYPE='pvc'" in str(caught.value)
    assert "VOLUME_NAME is set" not in str(caught.value)


def test_settings_made_in_code_are_checked_the_same_way():
    with pytest.raises(SettingsError, match="needs VOLUME_NAME"):
        Settings(storage_type="kubernetes_pvc")
    with pytest.raises(SettingsError, match="STOREBASE is set"):
        Settings().replace(storebase=Path("/data"))


def test_in_the_volume_modes_swift_credentials_are_not_read(tmp_path):
    # The OpenShift template mounts the (optional) Swift Secret in every mode.
    missing = tmp_path / "absent" / "swift-credentials.cfg"
    environ = {
        "STORAGE_TYPE": "host",
        "STOREBASE": str(tmp_path),
        "SWIFT_CREDENTIALS_FILE": str(missing),
        "ST_AUTH": "http://127.0.0.1:1/auth/v1.0",
    }
    assert Settings.from_env(environ).swift_credentials is None
    with pytest.raises(SettingsError, match="does not exist"):
        Settings.from_env({**environ, "STORAGE_TYPE": "swift", "STOREBASE": ""})
