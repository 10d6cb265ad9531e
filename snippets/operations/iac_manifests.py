"""Kubernetes manifests validated offline: kubernetes-validate checks a Deployment and a
Service against the API's own OpenAPI schemas (strictly: unknown fields are errors), and
our policy checks ask for what a schema cannot — probes, resource limits, a non-root,
read-only, unprivileged container. A schema-valid manifest can still fail every policy.

Run: python snippets/operations/iac_manifests.py
"""

from __future__ import annotations

import copy
import textwrap

import kubernetes_validate
import yaml

KUBERNETES = "1.33.0"  # the API version the schemas are checked against

# --8<-- [start:manifests]
MANIFESTS = """\
apiVersion: apps/v1
kind: Deployment
metadata: {name: shop, labels: {app: shop}}
spec:
  replicas: 2
  selector: {matchLabels: {app: shop}}
  template:
    metadata: {labels: {app: shop}}
    spec:
      terminationGracePeriodSeconds: 30
      containers:
        - name: shop
          image: registry.example/shop:1.4.2
          ports: [{containerPort: 8080}]
          readinessProbe: {httpGet: {path: /ready, port: 8080}, periodSeconds: 2}
          livenessProbe: {httpGet: {path: /live, port: 8080}, periodSeconds: 10}
          resources:
            requests: {cpu: 100m, memory: 128Mi}
            limits: {memory: 256Mi}
          securityContext:
            runAsNonRoot: true
            runAsUser: 10001
            readOnlyRootFilesystem: true
            allowPrivilegeEscalation: false
            capabilities: {drop: [ALL]}
            seccompProfile: {type: RuntimeDefault}
---
apiVersion: v1
kind: Service
metadata: {name: shop}
spec:
  selector: {app: shop}
  ports: [{port: 80, targetPort: 8080}]
"""
# --8<-- [end:manifests]


# --8<-- [start:validate]
def schema_errors(manifest: dict) -> list[str]:
    """Check one object against the Kubernetes API schema for its kind and version."""
    try:
        kubernetes_validate.validate(manifest, KUBERNETES, strict=True)
    except kubernetes_validate.ValidationError as error:
        where = ".".join(str(p) for p in error.path) or "(top)"
        return [f"{where}: {error.message}"]
    except (kubernetes_validate.SchemaNotFoundError, kubernetes_validate.InvalidSchemaError):
        return [f"no schema for {manifest.get('apiVersion')}/{manifest.get('kind')}"]
    return []


def policy_problems(manifest: dict) -> list[str]:
    """What a reviewer asks of every Deployment; the schema allows all of these missing. The
    container-level part of the restricted Pod Security Standard, plus probes, a memory limit
    and a pinned image (settings at pod level are not read here: a sketch, not a tool)."""
    if manifest.get("kind") != "Deployment":
        return []
    found = []
    for c in manifest["spec"]["template"]["spec"]["containers"]:
        name, sc = c["name"], c.get("securityContext", {})
        if "readinessProbe" not in c:
            found.append(f"{name}: no readinessProbe (traffic before it is ready)")
        if "memory" not in c.get("resources", {}).get("limits", {}):
            found.append(f"{name}: no memory limit")
        if not sc.get("runAsNonRoot"):
            found.append(f"{name}: may run as root (runAsNonRoot not true)")
        if sc.get("allowPrivilegeEscalation", True):
            found.append(f"{name}: allowPrivilegeEscalation not false")
        if not sc.get("readOnlyRootFilesystem"):
            found.append(f"{name}: writable root filesystem")
        if sc.get("privileged"):
            found.append(f"{name}: privileged (every device and capability of the host)")
        capabilities = sc.get("capabilities", {})
        if "ALL" not in capabilities.get("drop", []) or capabilities.get("add"):
            found.append(f"{name}: capabilities not dropped to none (drop [ALL], add nothing)")
        if sc.get("seccompProfile", {}).get("type") not in ("RuntimeDefault", "Localhost"):
            found.append(f"{name}: no seccomp profile (RuntimeDefault)")
        if ":" not in c["image"].rsplit("/", 1)[-1] or c["image"].endswith(":latest"):
            found.append(f"{name}: image {c['image']!r} is not pinned to a version")
    return found


# --8<-- [end:validate]


def load(text: str) -> list[dict]:
    """The YAML documents of a manifest file; anything else is an error, not a crash."""
    documents = [d for d in yaml.safe_load_all(text) if d is not None]
    if not all(isinstance(d, dict) and "kind" in d for d in documents):
        raise ValueError("every document must be a mapping with a kind")
    return documents


def check(documents: list[dict]) -> tuple[list[str], list[str]]:
    errors = [f"{d['kind']} {e}" for d in documents for e in schema_errors(d)]
    return errors, [p for d in documents for p in policy_problems(d)]


def variants() -> dict[str, list[dict]]:
    good = list(yaml.safe_load_all(MANIFESTS))
    typo = copy.deepcopy(good)  # a typo in a field name: `pth` for `path`
    probe = typo[0]["spec"]["template"]["spec"]["containers"][0]["readinessProbe"]
    probe["httpGet"]["pth"] = probe["httpGet"].pop("path")
    wrong_type = copy.deepcopy(good)  # a number written as text
    wrong_type[0]["spec"]["replicas"] = "2"
    bare = copy.deepcopy(good)  # schema-valid, and nothing a reviewer asks for
    container = bare[0]["spec"]["template"]["spec"]["containers"][0]
    for key in ("readinessProbe", "livenessProbe", "resources", "securityContext"):
        del container[key]
    container["image"] = "registry.example/shop:latest"
    return {"as written": good, "a typo (pth)": typo, "replicas: '2'": wrong_type, "bare": bare}


def main() -> None:
    print(f"Checked offline against the Kubernetes {KUBERNETES} API schemas (strict):")
    for name, documents in variants().items():
        errors, problems = check(documents)
        print(f"{name}: {len(errors)} schema error(s), {len(problems)} policy problem(s)")
        for line in errors + problems:
            print(textwrap.fill(line, 90, initial_indent="  ", subsequent_indent="    "))


if __name__ == "__main__":
    main()
