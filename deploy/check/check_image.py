#!/usr/bin/env python3
"""Checks deploy/Dockerfile's key properties without a container engine.

- every base image is pinned (digest, or an exact x.y.z version tag), none is "latest";
- the Rust builder uses the toolchain named in rust-toolchain.toml;
- multi-stage, with a dependency-only layer (cargo-chef cook) before the sources;
- the runtime stage is distroless (no shell, so no RUN there), runs as a numeric
  non-root USER, with ENTRYPOINT ["/usr/local/bin/peerbridge"] and CMD ["serve"];
- a HEALTHCHECK instruction states the choice explicitly;
- deploy/Dockerfile.dockerignore keeps target/ and .git out of the build context.

Usage: check_image.py [--dockerfile FILE]; exit status 0 when all checks pass.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = REPO_ROOT / "deploy" / "Dockerfile"
TOOLCHAIN = REPO_ROOT / "rust-toolchain.toml"

DIGEST = re.compile(r"@sha256:[0-9a-f]{64}$")
EXACT_TAG = re.compile(r":\d+\.\d+\.\d+([-.][A-Za-z0-9.-]+)?$")


@dataclass
class Instruction:
    keyword: str
    args: str
    line: int


@dataclass
class Stage:
    base: str
    name: str | None
    instructions: list[Instruction] = field(default_factory=list)


def parse(text: str) -> tuple[dict[str, str], list[Stage]]:
    """Global ARG defaults and the stages (continuation lines joined, comments dropped)."""
    logical: list[tuple[int, str]] = []
    buf, start = "", 0
    for no, raw in enumerate(text.splitlines(), 1):
        stripped = raw.strip()
        if not buf and (not stripped or stripped.startswith("#")):
            continue
        if buf and stripped.startswith("#"):
            continue
        if not buf:
            start = no
        if stripped.endswith("\\"):
            buf += stripped[:-1] + " "
            continue
        buf += stripped
        logical.append((start, buf))
        buf = ""
    if buf:
        logical.append((start, buf))
    args: dict[str, str] = {}
    stages: list[Stage] = []
    for no, line in logical:
        keyword, _, rest = line.partition(" ")
        keyword = keyword.upper()
        rest = rest.strip()
        if keyword == "FROM":
            m = re.match(r"(?:--platform=\S+\s+)?(\S+)(?:\s+AS\s+(\S+))?$", rest, re.IGNORECASE)
            base, name = (m.group(1), m.group(2)) if m else (rest, None)
            stages.append(Stage(base, name))
        elif keyword == "ARG" and not stages:
            k, _, v = rest.partition("=")
            args[k.strip()] = v.strip().strip('"')
        elif stages:
            stages[-1].instructions.append(Instruction(keyword, rest, no))
    return args, stages


def expand(ref: str, args: dict[str, str]) -> str:
    return re.sub(r"\$\{?([A-Za-z_][A-Za-z0-9_]*)\}?", lambda m: args.get(m.group(1), m.group(0)), ref)


def exec_form(args: str) -> list[str] | None:
    try:
        value = json.loads(args)
    except json.JSONDecodeError:
        return None
    return value if isinstance(value, list) and all(isinstance(v, str) for v in value) else None


def check(text: str, toolchain: str | None, dockerignore: str | None) -> list[str]:
    problems: list[str] = []
    args, stages = parse(text)
    if len(stages) < 2:
        return problems + ["the build must be multi-stage (builder and runtime)"]
    names = {s.name for s in stages if s.name}
    for s in stages:
        base = expand(s.base, args)
        if base in names or base == "scratch":
            continue
        if "$" in base:
            problems.append(f"base image {s.base} has no default")
            continue
        if base.endswith(":latest") or ":latest@" in base:
            problems.append(f"base image {base} uses the moving tag latest")
        if not (DIGEST.search(base) or EXACT_TAG.search(base)):
            problems.append(f"base image {base} is not pinned by digest or exact version tag")

    rust = [expand(s.base, args) for s in stages if "rust:" in expand(s.base, args)]
    if toolchain:
        if not rust:
            problems.append("no rust:<version> builder image")
        for r in rust:
            if not re.search(rf":{re.escape(toolchain)}(-|@|$)", r):
                problems.append(f"builder {r} does not match rust-toolchain.toml channel {toolchain}")

    all_instr = [(s, i) for s in stages for i in s.instructions]
    runs = [i.args for _, i in all_instr if i.keyword == "RUN"]
    cook = next((n for n, r in enumerate(runs) if "cargo chef cook" in r), None)
    build = next((n for n, r in enumerate(runs) if "cargo build" in r), None)
    if cook is None or build is None or cook > build:
        problems.append("dependencies must be built in their own cached layer (cargo chef cook) before cargo build")
    if build is not None and "--locked" not in runs[build]:
        problems.append("cargo build must use --locked")
    if any(i.keyword == "ADD" and re.search(r"https?://", i.args) for _, i in all_instr):
        problems.append("ADD from a URL is not reproducible")

    final = stages[-1]
    final_base = expand(final.base, args)
    if "distroless" not in final_base:
        problems.append(f"runtime image {final_base} is not distroless (shell tools in the image)")
    if any(i.keyword == "RUN" for i in final.instructions):
        problems.append("the runtime stage must not RUN anything (no shell there)")
    users = [i for i in final.instructions if i.keyword == "USER"]
    if not users:
        problems.append("the runtime stage sets no USER (it would run as root)")
    else:
        user = users[-1].args
        m = re.fullmatch(r"(\d+)(?::(\d+))?", user)
        if not m:
            problems.append(f"USER {user} must be numeric uid[:gid] so runAsNonRoot can verify it")
        elif int(m.group(1)) == 0 or (m.group(2) is not None and int(m.group(2)) == 0):
            problems.append(f"USER {user} is root")
    entry = [i for i in final.instructions if i.keyword == "ENTRYPOINT"]
    if not entry or exec_form(entry[-1].args) != ["/usr/local/bin/peerbridge"]:
        problems.append('ENTRYPOINT must be ["/usr/local/bin/peerbridge"] (exec form)')
    cmd = [i for i in final.instructions if i.keyword == "CMD"]
    if not cmd or exec_form(cmd[-1].args) != ["serve"]:
        problems.append('CMD must be ["serve"]')
    hc = [i for i in final.instructions if i.keyword == "HEALTHCHECK"]
    if not hc:
        problems.append("no HEALTHCHECK instruction (state NONE explicitly when the probes live elsewhere)")
    else:
        arg = hc[-1].args
        if arg.upper() != "NONE":
            form = exec_form(re.sub(r"^(--\S+\s+)*CMD\s+", "", arg))
            if not form or not form[0].startswith("/usr/local/bin/peerbridge"):
                problems.append("HEALTHCHECK must be NONE or use the peerbridge binary (no shell or curl in the image)")
    copies = [i.args for i in final.instructions if i.keyword == "COPY"]
    if not any("/usr/local/bin/peerbridge" in c and "--from=" in c for c in copies):
        problems.append("the runtime stage must copy the peerbridge binary from the builder")

    if dockerignore is None:
        problems.append("deploy/Dockerfile.dockerignore is missing")
    else:
        patterns = {p.strip() for p in dockerignore.splitlines() if p.strip() and not p.startswith("#")}
        for needed in ("target", ".git"):
            if needed not in patterns:
                problems.append(f"Dockerfile.dockerignore must exclude {needed}")
    return problems


def toolchain_channel(path: Path = TOOLCHAIN) -> str | None:
    if not path.is_file():
        return None
    return tomllib.loads(path.read_text()).get("toolchain", {}).get("channel")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="check deploy/Dockerfile")
    ap.add_argument("--dockerfile", type=Path, default=DOCKERFILE)
    a = ap.parse_args(argv)
    ignore = Path(f"{a.dockerfile}.dockerignore")
    problems = check(a.dockerfile.read_text(), toolchain_channel(),
                     ignore.read_text() if ignore.is_file() else None)
    for p in problems:
        print(f"FAIL Dockerfile: {p}")
    print(f"image check: {len(problems)} problem(s) in {a.dockerfile.relative_to(REPO_ROOT) if a.dockerfile.is_relative_to(REPO_ROOT) else a.dockerfile}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
