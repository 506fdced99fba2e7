"""The design's import rules (pyproject.toml's ``[tool.importlinter]`` contracts) hold, and
the check fails when one is broken; no test module imports another."""

from __future__ import annotations

import ast
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
LINT_IMPORTS = Path(sys.executable).parent / "lint-imports"


def lint_imports(cwd: Path, *, pythonpath: Path | None = None) -> subprocess.CompletedProcess:
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(pythonpath or ""), "COLUMNS": "200"}
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache", "--config", str(cwd / "pyproject.toml")],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_the_import_rules_hold():
    run = lint_imports(REPO)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "0 broken" in run.stdout


@pytest.mark.parametrize(
    ("module", "line", "contract"),
    [
        ("pman/service.py", "import publisher.upload", "never import each other"),
        ("publisher/cli.py", "from pman import jobspec", "never import each other"),
        ("localcluster/cluster.py", "import pman.pod", "the local cluster and the development"),
        ("devstack/up.py", "from publisher import cli", "the local cluster and the development"),
        ("localcluster/cluster.py", "import devstack.up", "does not import the development stack"),
        ("localcluster/apiserver.py", "import localcluster.node", "the API server imports neither"),
        ("pman/status.py", "import kubernetes", "only pman.kube talks to Kubernetes"),
        ("publisher/upload.py", "import swiftclient", "only publisher.swift talks to Swift"),
    ],
)
def test_a_broken_rule_fails_the_check(tmp_path, module, line, contract):
    """Packages named like the project's, whose boundary modules make the imports the rules
    allow, and in which one module breaks one rule."""
    config = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["importlinter"]
    modules: dict[str, list[str]] = {"publisher.upload": [], "pman.jobspec": [], "pman.pod": []}
    for rule in config["contracts"]:
        for layer in rule.get("layers", []):
            for name in layer.split("|"):
                modules.setdefault(name.strip(), [])
        for allowed in rule.get("ignore_imports", []):
            importer, imported = (part.strip() for part in allowed.split("->"))
            modules.setdefault(importer, []).append(f"import {imported}")
            modules.setdefault(imported, [])
    for package in config["root_packages"]:
        modules.setdefault(package, [])
    modules.setdefault(module.removesuffix(".py").replace("/", "."), []).append(line)
    for name, lines in modules.items():
        path = tmp_path.joinpath(*name.split("."))
        if "." in name:
            path.parent.mkdir(exist_ok=True)
            (path.parent / "__init__.py").touch()
            path.with_suffix(".py").write_text("".join(f"{text}\n" for text in lines))
        else:
            path.mkdir(exist_ok=True)
            (path / "__init__.py").write_text("".join(f"{text}\n" for text in lines))
    (tmp_path / "pyproject.toml").write_text((REPO / "pyproject.toml").read_text())
    run = lint_imports(tmp_path, pythonpath=tmp_path)
    assert run.returncode == 1, run.stdout + run.stderr
    _, _, broken = run.stdout.partition("Broken contracts")
    assert contract in broken, run.stdout
    assert "1 broken" in run.stdout


def test_no_test_module_imports_another():
    """Shared helpers live in tests/support; a test module or conftest is never imported."""
    offenders = []
    for path in sorted((REPO / "tests").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.ImportFrom):
                names = [node.module or ""] + [f"{node.module}.{a.name}" for a in node.names]
            elif isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            else:
                continue
            for name in names:
                last = name.rsplit(".", 1)[-1]
                if last.startswith("test_") or last == "conftest":
                    offenders.append(f"{path.relative_to(REPO)}: {name}")
    assert offenders == []
