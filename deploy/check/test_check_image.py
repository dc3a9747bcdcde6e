"""Tests of the Dockerfile check: the real Dockerfile passes; deliberate errors fail."""

from __future__ import annotations

import pytest

import check_image

REAL = check_image.DOCKERFILE.read_text()
IGNORE = (check_image.DOCKERFILE.parent / "Dockerfile.dockerignore").read_text()
CHANNEL = check_image.toolchain_channel()


def problems_after(old: str, new: str, *, text: str = REAL, ignore: str | None = IGNORE) -> list[str]:
    assert old in text, f"mutation target {old!r} not in the Dockerfile"
    return check_image.check(text.replace(old, new, 1), CHANNEL, ignore)


def test_real_dockerfile_passes() -> None:
    assert CHANNEL, "rust-toolchain.toml names no channel"
    assert check_image.check(REAL, CHANNEL, IGNORE) == []


def test_runtime_is_final_stage_with_nonroot_numeric_user() -> None:
    _, stages = check_image.parse(REAL)
    final = stages[-1]
    users = [i.args for i in final.instructions if i.keyword == "USER"]
    assert users == ["65532:65532"]


@pytest.mark.parametrize("old, new, needle", [
    ("USER 65532:65532", "USER root", "must be numeric"),
    ("USER 65532:65532", "USER 0:0", "is root"),
    ("USER 65532:65532", "", "sets no USER"),
    ('ENTRYPOINT ["/usr/local/bin/peerbridge"]', "ENTRYPOINT /usr/local/bin/peerbridge", "ENTRYPOINT must be"),
    ('CMD ["serve"]', 'CMD ["migrate"]', 'CMD must be ["serve"]'),
    ("HEALTHCHECK NONE", "", "no HEALTHCHECK"),
    ("HEALTHCHECK NONE", 'HEALTHCHECK CMD ["curl", "-f", "http://localhost:8080/livez"]', "HEALTHCHECK must be NONE"),
    ("rust:1.95.0-slim-bookworm", "rust:latest", "moving tag latest"),
    ("rust:1.95.0-slim-bookworm", "rust:slim-bookworm", "not pinned"),
    ("rust:1.95.0-slim-bookworm", "rust:1.94.0-slim-bookworm", "does not match rust-toolchain.toml"),
    ("cc-debian12:nonroot@sha256:9dac0a79194e45a7da0158a9c6da57b217585af0786db3845d1f0ec1a0dd182f",
     "cc-debian12:nonroot", "not pinned"),
    ("gcr.io/distroless/cc-debian12:nonroot@sha256:9dac0a79194e45a7da0158a9c6da57b217585af0786db3845d1f0ec1a0dd182f",
     "docker.io/library/debian:12.12-slim", "not distroless"),
    ("EXPOSE 8080 9090", "RUN mkdir -p /data\nEXPOSE 8080 9090", "must not RUN"),
    ("RUN cargo chef cook", "RUN true || cargo chef-less", "cached layer"),
    ("cargo build --release --locked", "cargo build --release", "--locked"),
])
def test_deliberate_dockerfile_errors_fail(old: str, new: str, needle: str) -> None:
    problems = problems_after(old, new)
    assert any(needle in p for p in problems), problems


def test_single_stage_fails() -> None:
    assert check_image.check("FROM rust:1.95.0\nUSER 1000\n", CHANNEL, IGNORE)


def test_dockerignore_must_exclude_target() -> None:
    assert any("exclude target" in p for p in check_image.check(REAL, CHANNEL, IGNORE.replace("\ntarget\n", "\n")))
    assert any("missing" in p for p in check_image.check(REAL, CHANNEL, None))
