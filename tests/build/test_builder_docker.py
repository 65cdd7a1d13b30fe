"""`berth build` against the real `docker build` (Docker 20.10's classic builder).

The same context is built by both, from the same base image (one archive
loaded into each), and compared: the build output line by line (IDs aside),
the image config fields a container gets, the history, and the files of
every layer (owners, modes, sizes, link targets; not mtimes).  The private
dockerd has no bridge, so builds use `--network none`.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import tarfile
from pathlib import Path

import pytest

from test_builder import ID, bb, bb_archive, write  # noqa: F401  (fixtures)

pytestmark = pytest.mark.docker

CONFIG_FIELDS = ("Cmd", "Entrypoint", "Env", "ExposedPorts", "WorkingDir", "User", "Volumes", "Labels",
                 "StopSignal", "OnBuild", "Healthcheck", "Shell", "ArgsEscaped")


@pytest.fixture(scope="session")
def docker_bb(docker, bb_archive):
    docker("load", "-i", bb_archive)
    return docker


def docker_build(docker, *args, input=None) -> subprocess.CompletedProcess:
    return subprocess.run(["docker", "build", "--network", "none", *map(str, args)], input=input,
                          capture_output=True, env={**docker.env, "DOCKER_BUILDKIT": "0"}, timeout=300)


def berth_build(berth, *args, input=None) -> subprocess.CompletedProcess:
    return berth("build", "--network", "none", *args, input=input, check=False, binary=True)


def normalized(output: bytes) -> list[str]:
    return ID.sub("<id>", output.decode()).splitlines()


def image_summary(tool, ref: str, tmp_path: Path, name: str) -> dict:
    """Config fields, author, history and layer files of an image, via `save`."""
    archive = tmp_path / f"{name}.tar"
    tool("save", "-o", archive, ref)
    with tarfile.open(archive) as tf:
        manifest = json.load(tf.extractfile("manifest.json"))[0]
        cfg = json.load(tf.extractfile(manifest["Config"]))
        layers = []
        for member in manifest["Layers"]:
            with tarfile.open(fileobj=io.BytesIO(tf.extractfile(member).read())) as layer:
                # Docker 20.10 writes file type bits into tar modes; compare permissions.
                layers.append(sorted((ti.name.rstrip("/"), ti.type, ti.mode & 0o7777, ti.uid, ti.gid, ti.size,
                                      ti.linkname) for ti in layer))
    config = cfg.get("config") or {}
    return {
        "config": {k: config.get(k) or None for k in CONFIG_FIELDS},
        "author": cfg.get("author", ""),
        "history": [(h.get("created_by", ""), bool(h.get("empty_layer"))) for h in cfg["history"]],
        "layers": layers,
    }


def build_both(berth, docker, ctx: Path, *flags, tag: str):
    """Build `ctx` with both engines (Docker without its cache: other tests share it)."""
    d = docker_build(docker, "--no-cache", "-t", tag, *flags, ctx)
    b = berth_build(berth, "-t", tag, *flags, ctx)
    return b, d


def assert_same_build(berth, docker, ctx, tmp_path, *flags, tag="cmp:1"):
    b, d = build_both(berth, docker, ctx, *flags, tag=tag)
    assert d.returncode == 0, d.stderr.decode()
    assert b.returncode == 0, b.stderr.decode()
    assert normalized(b.stdout) == normalized(d.stdout)
    ours = image_summary(berth, tag, tmp_path, "berth")
    theirs = image_summary(docker, tag, tmp_path, "docker")
    assert ours["config"] == theirs["config"]
    assert ours["author"] == theirs["author"]
    # The base image's own entry comes from the same archive; compare the build's steps.
    assert ours["history"] == theirs["history"]
    assert ours["layers"][1:] == theirs["layers"][1:]
    return b


DOCKERFILES = {
    "every instruction": ({"a.txt": "hello\n"}, """\
FROM bb
MAINTAINER Some One <a@b.c>
ENV A=1 B="two words"
ENV C 3
LABEL x=y "z z"=w
RUN echo hi > /hi && mkdir -p /var/lib/thing
WORKDIR /app
COPY a.txt .
EXPOSE 80 443/udp 8000-8001
USER nobody
VOLUME /data ["/more"]
STOPSIGNAL SIGINT
HEALTHCHECK --interval=5m --timeout=3s --retries=3 CMD true
SHELL ["/bin/sh", "-ec"]
ONBUILD RUN echo triggered
ENTRYPOINT ["sh"]
CMD echo hi
"""),
    "variables": ({"f": "f\n"}, """\
FROM bb
ENV DIR=/srv/app PORT=8080 U=nobody SIG=SIGTERM NAME=thing
WORKDIR $DIR/sub
WORKDIR ..
COPY f ${DIR}/f-${NAME}
EXPOSE $PORT ${PORT}/udp
USER ${U}
VOLUME $DIR/data
LABEL name=$NAME "quoted $NAME"='${NAME}'
STOPSIGNAL $SIG
ENV PATH=$DIR/bin:$PATH
"""),
    "build args": ({}, """\
ARG TAG=latest
ARG UNSET
FROM bb:$TAG
ARG TAG
ARG GREETING=hello
ARG UNSET
ENV FROM_ENV=$GREETING
RUN echo "$GREETING $TAG $UNSET" > /args
ARG LATE=late
RUN cat /args && echo $LATE
"""),
    "cmd and entrypoint": ({}, """\
FROM bb
CMD ["inherited"]
ENTRYPOINT ["/bin/echo"]
FROM bb
ENTRYPOINT echo shell form
CMD ["kept"]
FROM bb
CMD ["first"]
ENTRYPOINT []
SHELL ["/bin/sh", "-ec"]
RUN echo via the new shell
CMD echo after shell
"""),
    "healthchecks": ({}, """\
FROM bb
HEALTHCHECK CMD ["true"]
HEALTHCHECK --interval=1m30s --timeout=500ms --start-period=2s --retries=5 CMD exit 0
FROM bb
HEALTHCHECK NONE
"""),
    "multi-stage": ({"a.txt": "a\n"}, """\
FROM bb AS builder
RUN mkdir -p /out/sub && echo built > /out/artifact && chmod 640 /out/artifact && \
    ln -s artifact /out/link && echo deep > /out/sub/deep
FROM scratch AS bare
COPY --from=builder /out/artifact /artifact
COPY a.txt /
CMD ["/artifact"]
FROM bb
COPY --from=builder /out /copied/
COPY --from=0 /out/artifact /again
COPY --from=bare / /from-bare/
"""),
    "files": ({"a.txt": "a\n", "b.txt": "b\n", "c.md": "c\n", "d/e": "e\n", "d/sub/f": "f\n"}, """\
FROM bb
COPY *.txt /txt/
COPY d /d
COPY d/ /d2/
COPY --chown=nobody:root d/e a.txt /owned/
COPY --chown=1234 d /numeric
ADD archive.tar.gz /unpacked/
ADD archive.tar.gz /unpacked-again
COPY archive.tar.gz /not-unpacked/
COPY link /via-link
WORKDIR /var/lib/app
COPY a.txt relative/
RUN ln -s /txt /var/lib/app/txtlink
COPY b.txt /var/lib/app/txtlink/
"""),
}


def _setup_files(ctx: Path) -> None:
    if (ctx / "a.txt").exists():
        os.symlink("a.txt", ctx / "link")
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tf:
        for name, data, mode, uid in (("x/inner", b"inner\n", 0o640, 1234), ("top", b"t\n", 0o755, 0)):
            ti = tarfile.TarInfo(name)
            ti.size, ti.mode, ti.uid = len(data), mode, uid
            tf.addfile(ti, io.BytesIO(data))
    (ctx / "archive.tar.gz").write_bytes(buf.getvalue())
    os.chmod(ctx / "d" / "e", 0o600) if (ctx / "d" / "e").exists() else None


@pytest.mark.parametrize("name", list(DOCKERFILES))
def test_same_image_as_docker(bb, docker_bb, tmp_path, name):
    files, dockerfile = DOCKERFILES[name]
    ctx = write(tmp_path / "ctx", {**files, "Dockerfile": dockerfile})
    _setup_files(ctx)
    flags = ("--build-arg", "GREETING=hi there", "--build-arg", "NOT_DECLARED=1",
             "--build-arg", "HTTP_PROXY=http://proxy.invalid:3128") if name == "build args" else ()
    assert_same_build(bb, docker_bb, ctx, tmp_path, *flags, tag=f"cmp-{name.replace(' ', '-')}:1")


def test_target_and_labels_like_docker(bb, docker_bb, tmp_path):
    ctx = write(tmp_path / "ctx", {"Dockerfile": "FROM bb AS one\nLABEL stage=one\nFROM one AS two\n"
                                                 "LABEL stage=two\nFROM bb\nRUN false\n"})
    assert_same_build(bb, docker_bb, ctx, tmp_path, "--target", "two", "--label", "b=2", "--label",
                      "a=1", tag="cmp-target:1")


def test_onbuild_child_like_docker(bb, docker_bb, tmp_path):
    ctx = write(tmp_path / "ctx", {"f": "data\n", "Dockerfile.parent": """\
FROM bb
ONBUILD COPY f /f
ONBUILD RUN cat /f > /f2
ONBUILD ENV X=1
CMD ["parent"]
""", "Dockerfile": "FROM cmp-parent:1\nRUN cat /f2\nENTRYPOINT [\"/bin/echo\"]\n"})
    assert_same_build(bb, docker_bb, ctx, tmp_path, "-f", ctx / "Dockerfile.parent", tag="cmp-parent:1")
    assert_same_build(bb, docker_bb, ctx, tmp_path, tag="cmp-child:1")


def test_cache_like_docker(bb, docker_bb, tmp_path):
    ctx = write(tmp_path / "ctx", {"a": "a\n", "b": "b\n", "Dockerfile": """\
FROM bb
ARG V=1
COPY a /a
RUN echo $V > /v
COPY b /b
RUN cat /a /b /v
"""})
    for flags in ((), ("--build-arg", "V=2")):
        build_both(bb, docker_bb, ctx, *flags, tag="cmp-cache:1")
        b = berth_build(bb, *flags, ctx)
        d = docker_build(docker_bb, *flags, ctx)
        assert normalized(b.stdout) == normalized(d.stdout)
        assert b.stdout.count(b"Using cache") == 5
        # One changed file: both rerun from the COPY that takes it.
        (ctx / "b").write_text(f"b {flags}\n")
        b = berth_build(bb, *flags, ctx)
        d = docker_build(docker_bb, *flags, ctx)
        assert normalized(b.stdout) == normalized(d.stdout)
        assert b.stdout.count(b"Using cache") == 3
    # A new build arg value: both rerun from the first RUN after the ARG.
    b = berth_build(bb, "--build-arg", "V=3", ctx)
    d = docker_build(docker_bb, "--build-arg", "V=3", ctx)
    assert normalized(b.stdout) == normalized(d.stdout)
    assert b.stdout.count(b"Using cache") == 2


ERRORS = {
    "missing source": "FROM bb\nCOPY missing.txt /\n",
    "outside the context": "FROM bb\nADD ../x /\n",
    "no wildcard match": "FROM bb\nCOPY *.nomatch /\n",
    "several sources to a file": "FROM bb\nCOPY Dockerfile Dockerfile /x\n",
    "failing RUN": "FROM bb\nRUN echo out; exit 3\n",
    "COPY from URL": "FROM bb\nCOPY http://127.0.0.1:9/x /\n",
    "unknown stage index": "FROM bb\nCOPY --from=5 /x /\n",
    "duplicate stage name": "FROM bb AS a\nFROM bb AS a\n",
    "bad signal": "FROM bb\nSTOPSIGNAL SIGNOPE\n",
}


@pytest.mark.parametrize("name", list(ERRORS))
def test_errors_like_docker(bb, docker_bb, tmp_path, name):
    ctx = write(tmp_path / "ctx", {"Dockerfile": ERRORS[name]})
    b, d = build_both(bb, docker_bb, ctx, tag="cmp-error:1")
    assert b.returncode == d.returncode
    assert normalized(b.stdout) == normalized(d.stdout)
    theirs = [line for line in d.stderr.decode().splitlines() if line.strip()][-1]
    ours = b.stderr.decode().strip().splitlines()[-1]
    assert ours == theirs
    # Docker keeps a failed RUN's container unless --force-rm; berth never leaves one (see builder).
    assert bb("ps", "-a", "-q").stdout == ""
