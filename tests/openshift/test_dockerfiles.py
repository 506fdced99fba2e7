"""Both images' Dockerfiles: pinned base image, non-root numeric USER, no secrets baked in,
an entrypoint that exists; and each check refuses the defect it is for."""

from __future__ import annotations

import tomllib

import dockerfile
import pytest

from tests.support.openshift import dockerfiles
from tests.support.openshift.templates import REPO_ROOT

IMAGES = ["Dockerfile", "Dockerfile.publisher"]


def scripts() -> dict[str, str]:
    with open(REPO_ROOT / "pyproject.toml", "rb") as handle:
        return tomllib.load(handle)["project"]["scripts"]


def parsed(name: str) -> list[dockerfile.Command]:
    path = REPO_ROOT / name
    if not path.exists():
        pytest.fail(f"{name} does not exist")
    return list(dockerfile.parse_file(str(path)))


def problems(commands: list[dockerfile.Command]) -> list[str]:
    return (
        dockerfiles.base_images(commands)
        + dockerfiles.user(commands)
        + dockerfiles.secrets(commands, context=REPO_ROOT)
        + dockerfiles.entrypoint(commands, scripts())
        + dockerfiles.copied_code(commands, scripts(), context=REPO_ROOT)
    )


@pytest.mark.parametrize("name", IMAGES)
def test_the_image_passes_every_check(name):
    assert problems(parsed(name)) == []


def test_the_pman_image_runs_gunicorn_and_the_publisher_image_the_publisher():
    def program(name: str) -> str:
        final = dockerfiles.stages(parsed(name))[-1]
        chosen = [c for c in final if c.cmd == "ENTRYPOINT"] or [c for c in final if c.cmd == "CMD"]
        return chosen[-1].value[0]

    assert program("Dockerfile") == "gunicorn"
    assert program("Dockerfile.publisher") == "publisher"


GOOD = """\
FROM python:3.11-slim-bookworm AS build
RUN pip install ".[server]"
FROM python:3.11-slim-bookworm
COPY --from=build /usr/local /usr/local
COPY publisher swiftcreds ./
RUN pip install .
USER 1001:0
ENTRYPOINT ["publisher"]
"""


def parse(text: str) -> list[dockerfile.Command]:
    return list(dockerfile.parse_string(text))


def test_a_good_dockerfile_passes():
    assert problems(parse(GOOD)) == []


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (("FROM python:3.11-slim-bookworm\n", "FROM python\n"), "not pinned by a tag"),
        (("FROM python:3.11-slim-bookworm\n", "FROM python:latest\n"), "moving tag latest"),
        (
            ("FROM python:3.11-slim-bookworm AS", "FROM registry.example:5000/py AS"),
            "not pinned by a tag",
        ),
        (("FROM python:3.11-slim-bookworm AS", "FROM python:${V} AS"), "build argument"),
        (("USER 1001:0\n", ""), "sets no USER"),
        (("USER 1001:0\n", "USER root\n"), "not a numeric UID"),
        (("USER 1001:0\n", "USER 0:0\n"), "is root"),
        (("USER 1001:0\n", "USER 1001\nUSER 0\n"), "is root"),
        (("USER 1001:0\n", "USER 1001\n"), "not in group 0"),
        (("USER 1001:0\n", "USER 1001:1001\n"), "not in group 0"),
        (("RUN pip install .\n", "RUN pip install .\nENV ST_KEY=testing\n"), "ENV ST_KEY"),
        (("RUN pip install .\n", "RUN pip install .\nENV OS_PASSWORD x\n"), "ENV OS_PASSWORD"),
        (("RUN pip install .\n", "RUN pip install .\nARG API_TOKEN=abc\n"), "ARG API_TOKEN"),
        (
            ("RUN pip install .\n", "RUN pip install .\nCOPY swift-credentials.cfg /etc/swift/\n"),
            "COPY brings in swift-credentials.cfg",
        ),
        (("RUN pip install .\n", "RUN pip install .\nADD tls.key /k\n"), "ADD brings in tls.key"),
        (('ENTRYPOINT ["publisher"]', "ENTRYPOINT publisher"), "shell form"),
        (('ENTRYPOINT ["publisher"]', 'ENTRYPOINT ["pubisher"]'), "not a console script"),
        (('ENTRYPOINT ["publisher"]', ""), "no ENTRYPOINT or CMD"),
        (("RUN pip install .\n", ""), "nothing installs the publisher script"),
        (("COPY publisher swiftcreds", "COPY publisher"), "needs the package swiftcreds"),
        (
            ('ENTRYPOINT ["publisher"]', 'CMD ["gunicorn", "--config", "python:pman.nope"]'),
            "pman.nope does not import",
        ),
        (
            ('ENTRYPOINT ["publisher"]', 'CMD ["gunicorn", "pman.app:create_app()"]'),
            "without the project's config",
        ),
    ],
)
def test_each_defect_is_refused_with_a_message(change, message):
    old, new = change
    assert old in GOOD
    found = problems(parse(GOOD.replace(old, new, 1)))
    assert any(message in problem for problem in found), found


def test_an_arg_without_a_default_is_not_a_baked_in_secret():
    assert problems(parse(GOOD.replace("USER", "ARG API_TOKEN\nUSER"))) == []


def test_a_copied_directory_holding_a_credentials_file_is_refused(tmp_path):
    import subprocess

    (tmp_path / "conf").mkdir()
    (tmp_path / "conf" / "swift-credentials.cfg").write_text("[AUTHORIZATION]\n")
    (tmp_path / "conf" / "settings.py").write_text("")
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    subprocess.run(["git", "-C", str(tmp_path), "add", "conf"], check=True)
    found = dockerfiles.secrets(parse("FROM a:1\nCOPY conf /conf\n"), context=tmp_path)
    assert found == ["line 2: COPY brings in conf/swift-credentials.cfg"]
