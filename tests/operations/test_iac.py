"""Infrastructure as code (docs/operations/iac.md): a Dockerfile linted by hadolint and its
properties checked, Kubernetes manifests against the API schemas and a policy, Terraform
parsed and policy-checked — each on the good version, the bad one and single defects — and
a real pyinfra run on this machine: changes, then none, drift found and repaired."""

from __future__ import annotations

import os
from pathlib import Path

import kubernetes_validate
import pytest

from tests.conftest import load_snippet

docker = load_snippet("operations/iac_dockerfile")
k8s = load_snippet("operations/iac_manifests")
tf = load_snippet("operations/iac_terraform")
infra = load_snippet("operations/iac_idempotent")


# --- Dockerfile
def codes(findings: list[str]) -> set[str]:
    return {f.split()[0] for f in findings}


def test_the_multi_stage_dockerfile_is_clean_and_the_naive_one_is_not():
    assert docker.hadolint(docker.DOCKERFILE) == []
    assert docker.problems(docker.DOCKERFILE) == []
    assert {"DL3007", "DL3008", "DL3042", "DL3025"} <= codes(docker.hadolint(docker.NAIVE))
    said = " ".join(docker.problems(docker.NAIVE))
    for problem in ("not pinned", "runs as root", "secret", "COPY .", "one stage", "builds"):
        assert problem in said, problem


@pytest.mark.parametrize(
    ("change", "caught"),
    [
        (("USER 10001", "USER root"), "runs as root"),
        (("USER 10001\n", ""), "runs as root"),  # no USER at all
        (("FROM python:3.12.8-slim-bookworm\nRUN", "FROM python:3.12-slim\nRUN"), "not pinned"),
        (("EXPOSE 8080", "ENV STRIPE_API_KEY=sk_live_x\nEXPOSE 8080"), "secret"),
        (("COPY --chown=root:root app/ /app/", "COPY . /app/"), "COPY ."),
        (("USER 10001", "RUN apt-get install -y gcc\nUSER 10001"), "builds"),
    ],
)
def test_each_single_defect_in_the_good_dockerfile_is_caught(change, caught):
    old, new = change
    assert old in docker.DOCKERFILE
    broken = docker.DOCKERFILE.replace(old, new, 1)
    assert caught in " ".join(docker.problems(broken)), docker.problems(broken)


def test_garbage_is_a_finding_not_a_crash():
    assert docker.problems("this is not\na dockerfile {\n") == [
        "no FROM instruction: not a Dockerfile"
    ]
    assert codes(docker.hadolint("this is not\na dockerfile {\n")) == {"DL1000"}  # parse error


# --- Kubernetes manifests
def test_the_manifests_pass_schema_and_policy_and_each_variant_fails_where_it_should():
    results = {name: k8s.check(docs) for name, docs in k8s.variants().items()}
    assert results["as written"] == ([], [])
    errors, problems = results["a typo (pth)"]
    assert len(errors) == 1 and "'pth' was unexpected" in errors[0] and problems == []
    errors, _ = results["replicas: '2'"]
    assert len(errors) == 1 and "is not of type 'integer'" in errors[0]
    errors, problems = results["bare"]
    assert errors == [] and len(problems) == 8  # valid by the schema, fails every policy


def test_control_without_strict_the_schema_accepts_the_typo():
    """Kubernetes' schemas allow unknown fields unless checked strictly: the typo passes."""
    typo = k8s.variants()["a typo (pth)"][0]
    kubernetes_validate.validate(typo, k8s.KUBERNETES, strict=False)  # raises if invalid
    assert k8s.schema_errors(typo)  # strict: an error


def test_malformed_or_unknown_manifests_are_errors_not_crashes():
    with pytest.raises(ValueError, match="mapping with a kind"):
        k8s.load("- just\n- a list\n")
    unknown = {"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w"}}
    assert k8s.schema_errors(unknown) == ["no schema for example.com/v1/Widget"]
    with pytest.raises(Exception, match="mapping values are not allowed|could not find"):
        k8s.load("kind: Deployment\n  bad: indent: here\n")


# --- Terraform
def test_the_risky_config_has_four_findings_and_the_fixed_one_none():
    assert len(tf.check(tf.RISKY)) == 4
    assert tf.check(tf.FIXED) == []


@pytest.mark.parametrize(
    ("old", "new", "caught"),
    [
        ("[var.admin_cidr]", '["0.0.0.0/0"]', "port 22 open"),
        ("cidr_blocks = [var.admin_cidr]", 'ipv6_cidr_blocks = ["::/0"]', "port 22 open"),
        (
            'protocol    = "tcp"\n    cidr_blocks = [var.admin_cidr]',
            'protocol    = "-1"\n    cidr_blocks = ["0.0.0.0/0"]',
            "all traffic",
        ),  # ports 22..22
        ("storage_encrypted           = true", "storage_encrypted = false", "storage_encrypted"),
        ("manage_master_user_password = true", 'password = "hunter2"', "password written"),
        ("publicly_accessible         = false", "publicly_accessible = true", "publicly"),
    ],
)
def test_each_single_risk_added_to_the_fixed_config_is_caught(old, new, caught):
    assert old in tf.FIXED
    found = tf.check(tf.FIXED.replace(old, new, 1))
    assert len(found) == 1 and caught in found[0], found


def test_a_port_from_a_variable_cannot_be_checked_offline_and_is_reported():
    config = tf.FIXED.replace("from_port   = 22", "from_port   = var.low", 1)
    config = config.replace("[var.admin_cidr]", '["0.0.0.0/0"]', 1)
    found = tf.check(config)
    assert len(found) == 1 and "unknown offline" in found[0], found


def test_a_password_from_a_variable_is_not_flagged():
    config = tf.FIXED.replace("manage_master_user_password = true", "password = var.db_password")
    assert tf.check(config) == []


def test_a_syntax_error_is_reported_with_its_line():
    broken = tf.FIXED.replace("storage_encrypted           = true", "storage_encrypted =")
    assert tf.check(broken) == ["syntax error at line 16, column 22"]


# --- pyinfra, for real on this machine (in a temp dir)
def test_first_run_changes_everything_the_second_nothing(tmp_path: Path):
    assert len(infra.plan(infra.desired, tmp_path).changed) == 4  # a plan changes nothing:
    assert not (tmp_path / "app").exists()
    assert len(infra.apply(infra.desired, tmp_path).changed) == 4
    assert infra.apply(infra.desired, tmp_path).changed == []
    assert (tmp_path / "app" / "app.conf").read_text() == infra.CONFIG
    assert oct((tmp_path / "app" / "limits.conf").stat().st_mode & 0o777) == "0o600"


def test_drift_is_found_by_a_plan_and_repaired_by_the_next_run(tmp_path: Path):
    infra.apply(infra.desired, tmp_path)
    (tmp_path / "app" / "app.conf").write_text(infra.CONFIG + "workers = 16\n")
    os.chmod(tmp_path / "app" / "limits.conf", 0o666)
    assert infra.plan(infra.desired, tmp_path).changed == ["config file", "limits mode"]
    assert (tmp_path / "app" / "app.conf").read_text().endswith("16\n")  # plan only looked
    assert infra.apply(infra.desired, tmp_path).changed == ["config file", "limits mode"]
    assert infra.plan(infra.desired, tmp_path).changed == []
    assert (tmp_path / "app" / "app.conf").read_text() == infra.CONFIG


def test_a_commented_out_line_is_drift_too(tmp_path: Path):
    """pyinfra matches `line` as a regex: unanchored, "# nofile 65536" would match it."""
    infra.apply(infra.desired, tmp_path)
    (tmp_path / "app" / "limits.conf").write_text("# nofile 65536\n")
    assert infra.plan(infra.desired, tmp_path).changed == ["limits line"]


@pytest.mark.parametrize(
    "extra",
    [{"privileged": True}, {"capabilities": {"drop": ["ALL"], "add": ["SYS_ADMIN"]}},
     {"seccompProfile": {"type": "Unconfined"}}],
)  # fmt: skip
def test_a_privileged_or_capable_container_fails_the_policy(extra):
    documents = k8s.variants()["as written"]
    documents[0]["spec"]["template"]["spec"]["containers"][0]["securityContext"].update(extra)
    errors, problems = k8s.check(documents)
    assert errors == [] and len(problems) == 1, problems


def test_control_a_shell_append_changes_every_run_and_duplicates_the_line(tmp_path: Path):
    for _ in range(3):
        assert infra.apply(infra.appended, tmp_path).changed == ["append limits"]
    assert (tmp_path / "app" / "limits.conf").read_text().count("nofile 65536") == 3
