#!/usr/bin/env python3
"""Checks the deployment files for what a schema cannot see (issue 10). Usage:
    python3 .ci/check_deploy.py docker-compose.yml Dockerfile src/service/http.rs RENDERED.yaml...
where each RENDERED.yaml is one `kubectl kustomize deploy/kubernetes/overlays/NAME`.

Compose: every service is in a profile (a service without one starts with every profile), and
each profile's stack is self-contained: its dependencies and its database host are services of
the same profile; pg_isready checks over TCP (-h), so it cannot pass during first-start init.
Dockerfile (parsed by BuildKit's own parser, the `dockerfile` package): the image listens on
0.0.0.0 (HSS_SYNC_LISTEN) and EXPOSEs that port, runs as a numeric non-root user, and every file
it copies from the context exists and is not excluded by .dockerignore.
Kubernetes: each overlay renders exactly one workload (the Deployment and the CronJob are
alternatives); pods meet the "restricted" Pod Security Standard, mount no service-account
token, name a tagged image with imagePullPolicy IfNotPresent, and the readiness probe waits
longer than /readyz's own two database timeouts (read from src/service/http.rs).
"""
import os
import re
import sys
from urllib.parse import urlparse

import dockerfile
import yaml

problems = []


def problem(where, text):
    problems.append(f"{where}: {text}")


def check_compose(path):
    services = yaml.safe_load(open(path, encoding="utf-8"))["services"]
    for name, service in services.items():
        profiles = set(service.get("profiles", []))
        if not profiles:
            problem(path, f"service {name} has no profile, so every profile starts it")
        depends = service.get("depends_on", {})
        for dependency in depends if isinstance(depends, (list, dict)) else []:
            if not profiles <= set(services[dependency].get("profiles", [])):
                problem(path, f"service {name} ({sorted(profiles)}) depends on {dependency} of another profile")
        url = (service.get("environment") or {}).get("DATABASE_URL")
        if url:
            host = urlparse(url).hostname
            if host not in services or not profiles <= set(services[host].get("profiles", [])):
                problem(path, f"service {name}: DATABASE_URL host {host} is not a service of its profile")
        test = " ".join((service.get("healthcheck") or {}).get("test", []))
        if "pg_isready" in test and not re.search(r"-h\s*(127\.0\.0\.1|localhost)", test):
            problem(path, f"service {name}: pg_isready without -h 127.0.0.1 passes during first-start init")


def check_dockerfile(path):
    instructions = dockerfile.parse_file(path)
    last_from = max(i for i, c in enumerate(instructions) if c.cmd.upper() == "FROM")
    final = instructions[last_from:]
    env = {}
    for c in final:
        if c.cmd.upper() == "ENV":
            env.update(zip(c.value[0::2], c.value[1::2]))
    listen = env.get("HSS_SYNC_LISTEN", "")
    if not listen.startswith("0.0.0.0:"):
        problem(path, f"the image does not listen on 0.0.0.0 (HSS_SYNC_LISTEN={listen!r})")
    exposed = {v.split("/")[0] for c in final if c.cmd.upper() == "EXPOSE" for v in c.value}
    if listen and listen.rpartition(":")[2] not in exposed:
        problem(path, f"port {listen.rpartition(':')[2]} is not EXPOSEd ({sorted(exposed)})")
    users = [c.value[0] for c in final if c.cmd.upper() == "USER"]
    if not users or not users[-1].split(":")[0].isdigit() or users[-1].split(":")[0] == "0":
        problem(path, f"the image's USER is not a numeric non-root user ({users})")
    ignored = set()
    try:
        for line in open(".dockerignore", encoding="utf-8"):
            line = line.strip()
            if line and not line.startswith("#"):
                ignored.add(line.strip("/"))
    except FileNotFoundError:
        problem(".dockerignore", "missing: the whole repository, target/ included, would be the build context")
    for c in instructions:
        if c.cmd.upper() in ("COPY", "ADD") and not any(f.startswith("--from") for f in c.flags):
            for source in c.value[:-1]:
                if not os.path.exists(source):
                    problem(path, f"{c.cmd} {source}: no such file in the build context")
                if source.strip("/") in ignored:
                    problem(path, f"{c.cmd} {source}: excluded by .dockerignore")
    for needed in ("target", ".git", ".env"):
        if needed not in ignored:
            problem(".dockerignore", f"does not exclude {needed}")


def check_pod(where, spec, readyz_seconds):
    if spec.get("automountServiceAccountToken") is not False:
        problem(where, "automountServiceAccountToken is not false")
    pod = spec.get("securityContext") or {}
    for container in spec.get("containers", []):
        at = f"{where} container {container['name']}"
        sc = container.get("securityContext") or {}
        if not (sc.get("runAsNonRoot", pod.get("runAsNonRoot")) is True):
            problem(at, "runAsNonRoot is not true")
        seccomp = (sc.get("seccompProfile") or pod.get("seccompProfile") or {}).get("type")
        if seccomp not in ("RuntimeDefault", "Localhost"):
            problem(at, "seccompProfile is not RuntimeDefault")
        if sc.get("allowPrivilegeEscalation") is not False:
            problem(at, "allowPrivilegeEscalation is not false")
        if "ALL" not in ((sc.get("capabilities") or {}).get("drop") or []):
            problem(at, "capabilities do not drop ALL")
        image = container.get("image", "")
        if ":" not in image.rsplit("/", 1)[-1] or image.endswith(":latest"):
            problem(at, f"image {image!r} has no version tag")
        if container.get("imagePullPolicy") != "IfNotPresent":
            problem(at, "imagePullPolicy is not IfNotPresent")
        readiness = container.get("readinessProbe")
        if readiness is not None and readiness.get("timeoutSeconds", 1) <= readyz_seconds:
            problem(at, f"readiness probe timeout {readiness.get('timeoutSeconds', 1)} s is not longer than "
                        f"/readyz's own database timeouts ({readyz_seconds} s)")


def check_kubernetes(path, readyz_seconds):
    documents = [d for d in yaml.safe_load_all(open(path, encoding="utf-8")) if d]
    workloads = [d for d in documents if d["kind"] in ("Deployment", "CronJob", "Job", "StatefulSet", "DaemonSet")]
    if len(workloads) != 1:
        problem(path, f"renders {len(workloads)} workloads; each overlay is one alternative: "
                      f"{[d['kind'] for d in workloads]}")
    for workload in workloads:
        spec = workload["spec"]
        if workload["kind"] == "CronJob":
            spec = spec["jobTemplate"]["spec"]
        check_pod(f"{path} {workload['kind']}", spec["template"]["spec"], readyz_seconds)


def readyz_database_seconds(http_rs):
    text = open(http_rs, encoding="utf-8").read()
    match = re.search(r"PROBE_DATABASE_TIMEOUT: Duration = Duration::from_millis\((\d+)\)", text)
    if not match:
        sys.exit(f"{http_rs}: PROBE_DATABASE_TIMEOUT not found; update .ci/check_deploy.py")
    # /readyz asks the database at most twice in a row, each with this timeout.
    return 2 * int(match.group(1)) / 1000


def main():
    compose, docker, http_rs, rendered = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4:]
    check_compose(compose)
    check_dockerfile(docker)
    seconds = readyz_database_seconds(http_rs)
    for path in rendered:
        check_kubernetes(path, seconds)
    if problems:
        print("\n".join(f"error: {p}" for p in problems), file=sys.stderr)
        sys.exit(1)
    print(f"{compose}, {docker} and {len(rendered)} Kubernetes overlays: ok")


if __name__ == "__main__":
    main()
