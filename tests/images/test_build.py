"""How the images were built: cleanly, and with nothing of this machine inside.

The build takes its wheels from this machine, downloaded with this machine's pip settings
(index, mirrors, certificates); none of that may reach an image, its configuration or its
history. An image built on the stand-in base says so in a label.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys

import pytest

from tests.support.podman import restricted

pytestmark = pytest.mark.images

NAMES = ["pman", "pman-publisher"]
# Where pip could have been pointed at this machine's wheels or settings during a build.
BUILD_INPUTS = ["/wheels", "/etc/pip.conf", "/etc/xdg/pip", "/root/.config/pip", "/root/.pip"]
SETTING_NAMES = re.compile(r"PIP_(INDEX|EXTRA_INDEX|FIND_LINKS|CERT|TRUSTED)|PROXY|CA_BUNDLE|CERT")


@pytest.mark.parametrize("name", NAMES)
def test_the_build_prints_no_error_or_warning(images, name):
    with open(images.report["images"][name]["log"]) as handle:
        log = handle.read()
    complaints = [line for line in log.splitlines() if re.search(r"\b(ERROR|WARNING)\b", line)]
    assert complaints == []


@pytest.mark.parametrize("name", NAMES)
def test_no_build_input_is_left_in_the_image(images, name):
    image = images.report["images"][name]["name"]
    check = "import os, sys; print([p for p in sys.argv[1:] if os.path.lexists(p)])"
    done = images.podman.run(
        image,
        *restricted(images.uid),
        "--network=none",
        "--entrypoint=python",
        args=("-c", check, *BUILD_INPUTS),
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


@pytest.mark.parametrize("name", NAMES)
def test_no_setting_of_this_machine_is_in_the_image(images, name):
    image = images.report["images"][name]["name"]
    inspected = images.podman.inspect(image)
    names = [entry.partition("=")[0] for entry in inspected["Config"].get("Env") or []]
    assert [n for n in names if SETTING_NAMES.search(n)] == []
    history = images.podman.call("history", "--no-trunc", "--format=json", image)
    assert history.returncode == 0, history.stderr
    recorded = json.dumps(inspected) + history.stdout
    for value in pip_settings_here():
        assert value not in recorded


def pip_settings_here() -> list[str]:
    """The values of this machine's pip configuration (index URLs, paths, certificates)."""
    done = subprocess.run(
        [sys.executable, "-m", "pip", "config", "list"],
        capture_output=True,
        text=True,
        check=False,
    )
    values = []
    for line in done.stdout.splitlines():
        _, _, value = line.partition("=")
        values += [v for v in value.strip("'\"").split() if len(v) > 3]
    return values


@pytest.mark.parametrize("name", NAMES)
def test_an_image_on_the_stand_in_base_says_so(images, name):
    labels = images.podman.inspect(images.report["images"][name]["name"])["Config"]["Labels"]
    stand_in = images.report["base"]["kind"] == "debian-packages"
    assert (labels or {}).get("org.chrisproject.pman.base") == (
        "debian-packages" if stand_in else None
    )
