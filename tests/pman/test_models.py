"""Job requests: what is accepted, what each bad field is told, and the processor's command."""

from __future__ import annotations

import pytest

from pman.errors import BadRequest
from pman.models import JobRequest, localize, parse_job_request
from tests.support.bodies import BAD_FIELDS, HOSTILE_FIELDS, pfcon_request


def test_pfcon_request_is_accepted_as_sent():
    request = parse_job_request(pfcon_request())
    assert request.jid == "chris-jid-42"
    assert request.env_pairs == [("CHRIS_JID", "chris-jid-42")]
    assert request.input_dir == "key-chris-jid-42/incoming"
    assert request.output_dir == "key-chris-jid-42/outgoing"


def test_numeric_strings_are_integers():
    body = pfcon_request(number_of_workers="1", cpu_limit="1000", memory_limit="200", gpu_limit="0")
    request = parse_job_request(body)
    assert (request.number_of_workers, request.cpu_limit, request.memory_limit) == (1, 1000, 200)
    assert request.gpu_limit == 0


def test_pfcon_variants_without_env_and_path_flags():
    request = parse_job_request(pfcon_request(env=None, args_path_flags=[]))
    assert request.env == []
    assert request.command[-3:] == ["--dir", "cube/uploads", "/share/outgoing"]


def test_unknown_fields_are_ignored():
    assert parse_job_request(pfcon_request(colour="blue")).jid == "chris-jid-42"


def test_leading_slash_of_jid_is_dropped():
    assert parse_job_request(pfcon_request(jid="/chris-jid-42")).jid == "chris-jid-42"


def test_older_clients_get_the_original_directories():
    request = parse_job_request(pfcon_request(input_dir=None, output_dir=None))
    assert (request.input_dir, request.output_dir) == (
        "key-chris-jid-42/incoming",
        "key-chris-jid-42/outgoing",
    )


def test_storage_paths_lose_surrounding_slashes():
    request = parse_job_request(pfcon_request(input_dir="/bucket/in/", output_dir="bucket/out//"))
    assert (request.input_dir, request.output_dir) == ("bucket/in", "bucket/out")


IN, OUT = "/share/incoming", "/share/outgoing"
LOCALIZED = ["run", "--a", "1", "--p", IN, "--b", IN]


@pytest.mark.parametrize(
    ("kind", "expected"),
    [("ds", [*LOCALIZED, IN, OUT]), ("fs", [*LOCALIZED, OUT]), ("ts", [*LOCALIZED, OUT])],
)
def test_command_of_each_type(kind, expected):
    body = pfcon_request(
        entrypoint=["run"],
        args=["--a", "1", "--p", "x,y", "--b"],
        args_path_flags=["--p", "--b"],
        type=kind,
    )
    assert parse_job_request(body).command == expected


def test_pfcon_command():
    assert parse_job_request(pfcon_request()).command == [
        "python3", "/usr/local/bin/simplefsapp", "--saveinputmeta", "--saveoutputmeta",
        "--dir", "/share/incoming", "/share/outgoing",
    ]  # fmt: skip


def test_localize_skips_only_the_value_after_a_flag():
    assert localize(["--p", "--p", "x"], {"--p"}) == ["--p", "/share/incoming", "x"]
    assert localize([], {"--p"}) == []


@pytest.mark.parametrize(("field", "value", "words"), BAD_FIELDS + HOSTILE_FIELDS)
def test_each_bad_field_is_named(field, value, words):
    body = pfcon_request(**{field: value}) if value is not None else pfcon_request(**{field: None})
    with pytest.raises(BadRequest) as caught:
        parse_job_request(body)
    assert set(caught.value.message) == {field}
    assert words in caught.value.message[field]


def test_all_bad_fields_are_reported_at_once():
    body = pfcon_request(jid="Bad", cpu_limit="x", type="zz", entrypoint=[], env=["x"])
    with pytest.raises(BadRequest) as caught:
        parse_job_request(body)
    assert set(caught.value.message) == {"jid", "cpu_limit", "type", "entrypoint", "env"}


@pytest.mark.parametrize("body", [[], "text", 3, None])
def test_body_must_be_an_object(body):
    with pytest.raises(BadRequest, match="JSON object"):
        parse_job_request(body)


def test_schema_states_the_rules_validation_applies():
    schema = JobRequest.model_json_schema()
    assert set(schema["required"]) == {
        "jid", "args", "auid", "number_of_workers", "cpu_limit", "memory_limit",
        "gpu_limit", "image", "entrypoint", "type",
    }  # fmt: skip
    assert schema["properties"]["type"]["enum"] == ["ds", "fs", "ts"]
    assert schema["properties"]["entrypoint"]["minItems"] == 1
    assert {"type": "string", "pattern": "^0*[1-9][0-9]{0,6}$"} in schema["properties"][
        "cpu_limit"
    ]["anyOf"]


# -- the directories as paths of a storeBase (the volume storage modes) ---------------------


@pytest.mark.parametrize(
    ("field", "value", "words"), [b for b in BAD_FIELDS if b[0].endswith("_dir")]
)
def test_storebase_paths_are_checked_as_swift_paths_are(field, value, words):
    with pytest.raises(BadRequest) as caught:
        parse_job_request(pfcon_request(**{field: value}), volume_storage=True)
    assert words in caught.value.message[field]


def test_storebase_paths_are_described_as_such():
    with pytest.raises(BadRequest) as caught:
        parse_job_request(pfcon_request(input_dir="/"), volume_storage=True)
    assert (
        caught.value.message["input_dir"] == "must be a path relative to the storeBase, not empty"
    )
    with pytest.raises(BadRequest) as caught:
        parse_job_request(pfcon_request(input_dir="/"))
    assert "<swift container>/<prefix>" in caught.value.message["input_dir"]


@pytest.mark.parametrize(
    ("input_dir", "output_dir", "field", "words"),
    [
        ("key-1/data", "key-1/data/", "output_dir", "must not be input_dir"),
        ("key-1", "key-1/outgoing", "output_dir", "must not be inside input_dir ('key-1')"),
        ("home/u/feed/data/in", "home/u/feed/data", "input_dir", "must not be inside output_dir"),
    ],
)
def test_in_a_storebase_the_directories_must_not_hold_one_another(
    input_dir, output_dir, field, words
):
    body = pfcon_request(input_dir=input_dir, output_dir=output_dir)
    with pytest.raises(BadRequest) as caught:
        parse_job_request(body, volume_storage=True)
    assert set(caught.value.message) == {field}
    assert words in caught.value.message[field]
    assert parse_job_request(body).output_dir == output_dir.rstrip("/")  # Swift prefixes may


def test_sibling_directories_with_a_common_prefix_are_apart():
    body = pfcon_request(input_dir="key-1/in", output_dir="key-1/income")
    assert parse_job_request(body, volume_storage=True).output_dir == "key-1/income"


def test_names_up_to_swifts_limits_are_accepted():
    for path in ("\u00e9" * 128 + "/out", "k/" + "p" * 999):  # 256 and 999 bytes
        assert parse_job_request(pfcon_request(output_dir=path)).output_dir == path
    assert parse_job_request(pfcon_request(image="i" * 520)).image == "i" * 520


def test_the_schema_says_the_program_must_not_be_empty():
    entrypoint = JobRequest.model_json_schema()["properties"]["entrypoint"]
    assert entrypoint["prefixItems"] == [
        {"type": "string", "pattern": "^[^\\x00]*$", "minLength": 1}
    ]
