"""Shared data for pman's tests: pfcon's real request, in the forms pfcon sends it."""

from __future__ import annotations

import copy
from typing import Any

import pytest

PFCON_REQUEST: dict[str, Any] = {
    "args": ["--saveinputmeta", "--saveoutputmeta", "--dir", "cube/uploads"],
    "args_path_flags": ["--dir"],
    "auid": "cube",
    "number_of_workers": 1,
    "cpu_limit": 1000,
    "memory_limit": 200,
    "gpu_limit": 0,
    "image": "fnndsc/pl-simplefsapp",
    "entrypoint": ["python3", "/usr/local/bin/simplefsapp"],
    "type": "fs",
    "env": ["CHRIS_JID=chris-jid-42"],
    "input_dir": "key-chris-jid-42/incoming",
    "output_dir": "key-chris-jid-42/outgoing",
    "jid": "chris-jid-42",
}


def pfcon_request(**changes: Any) -> dict[str, Any]:
    """pfcon's request with some fields changed (None removes a field)."""
    body = copy.deepcopy(PFCON_REQUEST)
    for key, value in changes.items():
        if value is None:
            body.pop(key, None)
        else:
            body[key] = value
    return body


@pytest.fixture
def pfcon_body() -> dict[str, Any]:
    return pfcon_request()
