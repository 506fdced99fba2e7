"""The template processor follows OpenShift's rules, and every template processes with its
defaults and with every parameter set; bad parameters fail as they do with ``oc``."""

from __future__ import annotations

import random
import re

import pytest

from tests.support.openshift import template
from tests.support.openshift.templates import (
    ALL_SET,
    REQUIRED,
    TEMPLATES,
    VARIANTS,
    find,
    load,
    process,
)


def small(objects, parameters, **extra):
    return {
        "apiVersion": "template.openshift.io/v1",
        "kind": "Template",
        "metadata": {"name": "t"},
        "objects": objects,
        "parameters": parameters,
        **extra,
    }


def config_map(data, **metadata):
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "c", **metadata},
        "data": data,
    }


def items(tpl, values=None, **options):
    return template.process(tpl, values, **options)["items"]


# -- the rules, one by one


def test_the_result_is_a_list_of_the_objects():
    result = template.process(small([config_map({"a": "b"})], []))
    assert (result["kind"], result["apiVersion"]) == ("List", "v1")
    assert result["items"] == [config_map({"a": "b"})]


def test_a_caller_value_replaces_the_default():
    tpl = small([config_map({"x": "${P}"})], [{"name": "P", "value": "default"}])
    assert items(tpl)[0]["data"] == {"x": "default"}
    assert items(tpl, {"P": "given"})[0]["data"] == {"x": "given"}


def test_an_empty_parameter_is_generated_from_its_expression():
    tpl = small(
        [config_map({"x": "${P}"})],
        [{"name": "P", "generate": "expression", "from": "user[a-f0-9]{12}"}],
    )
    first, second = (items(tpl)[0]["data"]["x"] for _ in range(2))
    assert re.fullmatch(r"user[a-f0-9]{12}", first)
    assert first != second


def test_a_caller_value_turns_the_generator_off_even_when_empty():
    parameter = {"name": "P", "generate": "expression", "from": "[a-z]{8}", "required": True}
    tpl = small([config_map({"x": "${P}"})], [parameter])
    assert items(tpl, {"P": "mine"})[0]["data"] == {"x": "mine"}
    with pytest.raises(template.TemplateError, match="P is required"):
        items(tpl, {"P": ""})


def test_a_required_parameter_left_empty_is_an_error_naming_every_one():
    tpl = small(
        [config_map({})],
        [{"name": "A", "required": True}, {"name": "B", "required": True, "value": ""}],
    )
    with pytest.raises(template.TemplateError) as caught:
        items(tpl)
    assert caught.value.problems == [
        "parameter A is required and must be specified",
        "parameter B is required and must be specified",
    ]


def test_an_unknown_caller_parameter_is_an_error_unless_ignored():
    tpl = small([config_map({"x": "${P}"})], [{"name": "P", "value": "v"}])
    with pytest.raises(template.TemplateError, match="unknown parameter name 'TYPO'"):
        items(tpl, {"TYPO": "1"})
    assert items(tpl, {"TYPO": "1"}, ignore_unknown=True)[0]["data"] == {"x": "v"}


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("3", 3),
        ("true", True),
        ('{"a": [1, 2]}', {"a": [1, 2]}),
        ("not json", "not json"),
        ("NaN", "NaN"),
        ("", ""),
    ],
)
def test_a_whole_double_brace_reference_becomes_the_decoded_value(value, expected):
    tpl = small([config_map({"x": "${{P}}", "y": "a${{P}}"})], [{"name": "P"}])
    data = items(tpl, {"P": value})[0]["data"]
    assert data["x"] == expected
    assert data["y"] == "a${{P}}"  # only a whole string is replaced this way


def test_single_brace_references_are_replaced_inside_strings_and_map_keys():
    tpl = small(
        [config_map({"${K}-key": "http://${HOST}:${PORT}/${HOST}", "list": ["${PORT}"]})],
        [{"name": "K", "value": "k"}, {"name": "HOST", "value": "h"}, {"name": "PORT"}],
    )
    data = items(tpl, {"PORT": "80"})[0]["data"]
    assert data == {"k-key": "http://h:80/h", "list": ["80"]}


def test_a_reference_to_an_undeclared_parameter_stays_as_written():
    tpl = small([config_map({"x": "${NOPE} ${{NOPE}}", "y": "${{NOPE}}"})], [])
    assert items(tpl)[0]["data"] == {"x": "${NOPE} ${{NOPE}}", "y": "${{NOPE}}"}


def test_a_hard_coded_namespace_is_removed_and_a_parameterised_one_kept():
    tpl = small(
        [config_map({}, namespace="fixed"), config_map({}, namespace="ns-${NS}")],
        [{"name": "NS", "value": "a"}],
    )
    fixed, parameterised = items(tpl)
    assert "namespace" not in fixed["metadata"]
    assert parameterised["metadata"]["namespace"] == "ns-a"


def test_template_labels_are_substituted_and_merged_into_every_object():
    tpl = small(
        [config_map({}, labels={"own": "1", "app": "mine"}), config_map({})],
        [{"name": "APP", "value": "pman"}],
        labels={"app": "${APP}", "template": "t"},
    )
    first, second = items(tpl)
    assert first["metadata"]["labels"] == {"own": "1", "app": "pman", "template": "t"}
    assert second["metadata"]["labels"] == {"app": "pman", "template": "t"}


def test_the_message_shows_the_resolved_values():
    tpl = small([], [{"name": "P", "generate": "expression", "from": "[0-9]{4}"}])
    tpl["message"] = "token ${P}"
    resolved = template.resolve(tpl)
    assert template.message(tpl, resolved) == f"token {resolved['P']}"
    assert re.fullmatch(r"token \d{4}", template.message(tpl, resolved))


@pytest.mark.parametrize(
    ("expression", "pattern"),
    [
        ("test[0-9]{1}x", r"test[0-9]x"),
        ("0x[A-F0-9]{4}", r"0x[A-F0-9]{4}"),
        ("[\\w]{30}", r"\w{30}"),
        ("[\\d]{30}", r"\d{30}"),
        ("[\\a]{30}", r"[a-zA-Z0-9]{30}"),
        ("[a-z]{3}-[0-9]{2}", r"[a-z]{3}-[0-9]{2}"),
    ],
)
def test_expressions_generate_what_they_describe(expression, pattern):
    assert re.fullmatch(pattern, template.generate(expression, random.Random(7)))


def test_symbols_come_from_openshifts_symbol_set():
    value = template.generate("[\\A]{200}", random.Random(3))
    assert len(value) == 200
    assert set(value) <= set(template.SYMBOLS)


def test_a_range_stops_before_its_last_character_as_in_openshift():
    # OpenShift's generator slices [from, to): "[a-c]" only ever yields "a" and "b".
    assert set(template.generate("[a-c]{200}", random.Random(5))) == {"a", "b"}


@pytest.mark.parametrize(
    ("expression", "error"),
    [("[a-z]{0}", "within [1-255]"), ("[a-z]{256}", "within [1-255]"), ("[z-a]{3}", "range")],
)
def test_bad_expressions_are_errors(expression, error):
    tpl = small([], [{"name": "P", "generate": "expression", "from": expression}])
    with pytest.raises(template.TemplateError, match=re.escape(error)):
        items(tpl)


def test_an_unknown_generator_is_an_error():
    tpl = small([], [{"name": "P", "generate": "random", "from": "x"}])
    with pytest.raises(template.TemplateError, match="unknown generator"):
        items(tpl)


def test_a_value_that_is_not_a_string_is_an_error():
    with pytest.raises(template.TemplateError, match=r"parameters\[0\].value of N is not a string"):
        items(small([], [{"name": "N", "value": 3}]))


def test_invalid_or_duplicate_parameter_names_are_errors():
    with pytest.raises(template.TemplateError, match="invalid parameter name"):
        items(small([], [{"name": "BAD-NAME"}]))
    with pytest.raises(template.TemplateError, match="duplicate parameter name"):
        items(small([], [{"name": "P"}, {"name": "P"}]))


# -- the project's templates


@pytest.mark.parametrize("name", TEMPLATES)
def test_every_template_has_documented_parameters_with_defaults(name):
    for parameter in load(name)["parameters"]:
        assert parameter.get("description"), f"{parameter['name']} has no description"
        has_default = "value" in parameter or parameter.get("generate")
        assert has_default or parameter["name"] in REQUIRED[name], parameter["name"]


@pytest.mark.parametrize("name", TEMPLATES)
def test_the_test_values_name_every_parameter(name):
    declared = {parameter["name"] for parameter in load(name)["parameters"]}
    assert set(ALL_SET[name]) == declared
    assert set(REQUIRED[name]) <= declared


def test_every_template_processes_with_its_defaults_and_with_every_parameter_set(processed):
    _, _, objects = processed
    assert objects
    for obj in objects:
        assert not re.search(r"\$\{", repr(obj)), f"unsubstituted reference in {obj['kind']}"


@pytest.mark.parametrize("name", TEMPLATES)
def test_each_parameter_set_shows_up_in_the_objects(name):
    text = repr(process(name, "all-set"))
    for parameter, value in ALL_SET[name].items():
        assert value in text or parameter == "REPLICAS", parameter
    deployments = [o for o in process(name, "all-set") if o["kind"] == "Deployment"]
    for deployment in deployments:
        assert deployment["spec"]["replicas"] == 3  # ${{REPLICAS}} is a number, not "3"


@pytest.mark.parametrize("name", TEMPLATES)
def test_a_missing_required_parameter_fails_as_with_oc(name):
    with pytest.raises(template.TemplateError, match="NAMESPACE is required"):
        template.process(load(name), {})


@pytest.mark.parametrize("name", TEMPLATES)
def test_an_unknown_parameter_fails_as_with_oc(name):
    with pytest.raises(template.TemplateError, match="unknown parameter name 'NAMESAPCE'"):
        template.process(load(name), {**REQUIRED[name], "NAMESAPCE": "chris"})


def test_every_object_lands_in_the_namespace_given(processed):
    name, variant, objects = processed
    expected = VARIANTS[variant][name]["NAMESPACE"]
    assert {o["metadata"].get("namespace") for o in objects} == {expected}


def test_the_api_token_is_generated_when_not_given_and_kept_when_given():
    first = find(process("pman.yaml"), "Secret", "pman-api-token")["stringData"]["token"]
    second = find(process("pman.yaml"), "Secret", "pman-api-token")["stringData"]["token"]
    assert re.fullmatch(r"[a-zA-Z0-9]{40}", first)
    assert first != second
    given = find(process("pman.yaml", "all-set"), "Secret", "pman-api-token")
    assert given["stringData"]["token"] == ALL_SET["pman.yaml"]["PMAN_API_TOKEN"]
