#!/usr/bin/env python3
"""Fails when a locked dependency needs a newer Rust than Cargo.toml's rust-version, or when
the Dockerfile's Rust image is older than rust-version.

Reads `cargo metadata --format-version 1 --locked --filter-platform HOST` on standard input:
the packages of the resolve graph for the host platform, each with its own rust_version
(crates compiled only for other platforms or under cfg(loom) are not in it).
Usage: cargo metadata ... | python3 .ci/check_rust_version.py Cargo.toml Dockerfile
"""
import json
import re
import sys
import tomllib


def version(text):
    """`1.89` and `1.89.0` are the same version."""
    parts = [int(part) for part in text.split(".")]
    return tuple(parts + [0] * (3 - len(parts)))


def shown(v):
    return ".".join(str(part) for part in v[:2]) if v[2] == 0 else ".".join(map(str, v))


def main():
    manifest_path, dockerfile_path = sys.argv[1], sys.argv[2]
    with open(manifest_path, "rb") as f:
        declared_text = tomllib.load(f)["package"].get("rust-version")
    if declared_text is None:
        sys.exit(f"{manifest_path}: no rust-version")
    declared = version(declared_text)
    metadata = json.load(sys.stdin)
    in_graph = {node["id"] for node in metadata["resolve"]["nodes"]}
    needs = sorted(
        ((version(p["rust_version"]), p["name"], p["version"])
         for p in metadata["packages"]
         if p.get("rust_version") and p["id"] in in_graph and p["source"] is not None),
        reverse=True,
    )
    problems = []
    too_new = [n for n in needs if n[0] > declared]
    for need, name, pkg_version in too_new:
        problems.append(f"{name} {pkg_version} needs Rust {shown(need)}, "
                        f"but {manifest_path} says rust-version = \"{declared_text}\"")
    with open(dockerfile_path, encoding="utf-8") as f:
        tags = re.findall(r"^FROM\s+(?:docker\.io/(?:library/)?)?rust:(\d+(?:\.\d+){1,2})\b",
                          f.read(), re.MULTILINE)
    if not tags:
        problems.append(f"{dockerfile_path}: no `FROM rust:X.Y` with a pinned version")
    for tag in tags:
        if version(tag)[:2] < declared[:2]:
            problems.append(f"{dockerfile_path}: rust:{tag} is older than rust-version {declared_text}")
    newest = needs[0] if needs else ((0, 0, 0), "(none)", "")
    print(f"rust-version {declared_text}; the newest need among {len(needs)} locked dependencies: "
          f"Rust {shown(newest[0])} ({newest[1]} {newest[2]}); Dockerfile: rust:{', rust:'.join(tags)}")
    if problems:
        print("\n".join(f"error: {p}" for p in problems), file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
