"""A bounded, deterministic schemathesis run against the OpenAPI document pman serves.

pman runs on the test cluster with a Swift Secret that does not exist, so the Jobs
that valid generated requests create keep their pods waiting and no generated command
ever runs; they carry a label of this run and are deleted with it afterwards.
"""

from __future__ import annotations

import uuid

import kubernetes
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode

from pman.openapi import openapi_document
from tests.fixtures.cluster import unique_name
from tests.pman.cluster_helpers import running_pman

RUN_LABEL = "pman-test-run"
EXAMPLES = 25


@pytest.fixture(scope="module")
def fuzzed_pman(kube_cluster):
    run = uuid.uuid4().hex[:12]
    with running_pman(
        kube_cluster,
        swift_secret_name=unique_name("absent"),
        job_labels={RUN_LABEL: run},
        max_body_bytes=64 * 1024,
    ) as handle:
        yield handle
        with kube_cluster.api_client() as api:
            kubernetes.client.BatchV1Api(api).delete_collection_namespaced_job(
                kube_cluster.namespace,
                label_selector=f"{RUN_LABEL}={run}",
                propagation_policy="Background",
            )


@pytest.fixture(scope="module")
def served_schema(fuzzed_pman):
    """The OpenAPI document as pman serves it."""
    config = schemathesis.Config()
    config.projects.default.generation.update(deterministic=True)
    return schemathesis.openapi.from_url(f"{fuzzed_pman.url}/openapi.json", config=config)


def cases() -> list:
    """Every operation with valid inputs; the job request also with invalid ones (the
    other operations take no input that could be invalid: a path jid is any string)."""
    document = openapi_document()
    labels = [
        f"{method.upper()} {path}"
        for path, item in document["paths"].items()
        for method in item
        if method != "parameters"
    ]
    chosen = [(label, GenerationMode.POSITIVE) for label in labels]
    chosen.append(("POST /api/v1/", GenerationMode.NEGATIVE))
    return [pytest.param(label, mode, id=f"{label}-{mode.value}") for label, mode in chosen]


@pytest.mark.parametrize(("label", "mode"), cases())
def test_no_input_breaks_the_api(served_schema, fuzzed_pman, label, mode):
    operation = next(
        result.ok() for result in served_schema.get_all_operations() if result.ok().label == label
    )

    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(
        max_examples=EXAMPLES,
        derandomize=True,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    def check(case):
        response = case.call_and_validate(base_url=fuzzed_pman.url, timeout=30)
        codes.append(response.status_code)

    codes: list[int] = []
    check()
    if label == "POST /api/v1/" and mode is GenerationMode.POSITIVE:
        assert 201 in codes, "no generated job request was accepted"
