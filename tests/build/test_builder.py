"""`berth build`: instructions, the cache, contexts, flags and bad input.

Builds run for real: RUN steps are containers of the built-in runtime, the
base image is a static busybox.  Comparisons with the real Docker live in
test_builder_docker.py.
"""

from __future__ import annotations

import http.server
import io
import json
import os
import re
import subprocess
import tarfile
import threading
from pathlib import Path

import pytest

ID = re.compile(r"\b[0-9a-f]{12}\b")


@pytest.fixture(scope="session")
def bb_archive(tmp_path_factory, busybox_tar):
    """A busybox image saved once, so every test (and Docker) loads the same image ID."""
    from berthtest import Berth
    work = tmp_path_factory.mktemp("bb-archive")
    b = Berth(work / "root")
    b("import", "-c", 'CMD ["sh"]', busybox_tar, "bb:latest")
    archive = work / "bb.tar"
    b("save", "-o", archive, "bb:latest")
    subprocess.run(["umount", "-R", "-l", str(work / "root")], capture_output=True)
    return archive


@pytest.fixture
def bb(berth, bb_archive):
    """The test's berth, with bb:latest loaded."""
    berth("load", "-i", bb_archive)
    return berth


def write(ctx: Path, files: dict[str, str | bytes]) -> Path:
    ctx.mkdir(parents=True, exist_ok=True)
    for name, data in files.items():
        path = ctx / name
        path.parent.mkdir(parents=True, exist_ok=True)
        (path.write_bytes if isinstance(data, bytes) else path.write_text)(data)
    return ctx


def image_ids(berth) -> set[str]:
    return set(berth("images", "-a", "-q", "--no-trunc").stdout.split())


def config(berth, ref: str) -> dict:
    return json.loads(berth("inspect", "-f", "{{json .Config}}", ref).stdout)


def assert_nothing_left(berth, root: Path) -> None:
    """No container, no mount and no scratch directory survives a build."""
    assert berth("ps", "-a", "-q").stdout == ""
    with open("/proc/mounts") as f:
        assert [line for line in f if str(root) in line] == []
    builds = root / "builds"
    assert not builds.exists() or list(builds.iterdir()) == []


def steps(output: str) -> list[str]:
    return [line for line in output.splitlines() if line.startswith("Step ")]


# -- instructions -------------------------------------------------------------------


def test_every_instruction_reaches_the_config(bb, tmp_path):
    ctx = write(tmp_path / "ctx", {"a.txt": "hello\n", "Dockerfile": """\
FROM bb
MAINTAINER Some One <a@b.c>
ENV A=1 B="two words"
ENV C 3
LABEL x=y "z z"=w
ARG GREETING=hi
RUN echo $GREETING from $A > /greeting
WORKDIR /app
COPY a.txt .
EXPOSE 80 443/udp
USER nobody
VOLUME /data
STOPSIGNAL SIGINT
HEALTHCHECK --interval=5m --timeout=3s CMD true
SHELL ["/bin/sh", "-ec"]
ONBUILD RUN echo triggered
ENTRYPOINT ["sh"]
CMD echo hi
"""})
    out = bb("build", "-t", "all:1", ctx).stdout
    assert steps(out)[0] == "Step 1/18 : FROM bb"
    assert out.rstrip().endswith("Successfully tagged all:1")
    cfg = config(bb, "all:1")
    assert cfg["Env"] == ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "A=1",
                          "B=two words", "C=3"]
    assert cfg["Cmd"] == ["/bin/sh", "-ec", "echo hi"]
    assert cfg["Entrypoint"] == ["sh"]
    assert cfg["ExposedPorts"] == {"443/udp": {}, "80/tcp": {}}
    assert cfg["WorkingDir"] == "/app" and cfg["User"] == "nobody"
    assert cfg["Volumes"] == {"/data": {}} and cfg["Labels"] == {"x": "y", "z z": "w"}
    assert cfg["StopSignal"] == "SIGINT" and cfg["OnBuild"] == ["RUN echo triggered"]
    assert cfg["Healthcheck"] == {"Test": ["CMD-SHELL", "true"], "Interval": 300_000_000_000,
                                  "Timeout": 3_000_000_000}
    assert cfg["Shell"] == ["/bin/sh", "-ec"]
    assert bb("inspect", "-f", "{{.Author}}", "all:1").stdout.strip() == "Some One <a@b.c>"
    run = bb("run", "--rm", "--entrypoint", "cat", "all:1", "/greeting", "/app/a.txt").stdout
    assert run == "hi from 1\nhello\n"
    history = bb("history", "--no-trunc", "--format", "{{.CreatedBy}}", "all:1").stdout.splitlines()
    assert history[:3] == ['/bin/sh -ec #(nop)  CMD ["/bin/sh" "-ec" "echo hi"]',
                           '/bin/sh -ec #(nop)  ENTRYPOINT ["sh"]',
                           "/bin/sh -ec #(nop)  ONBUILD RUN echo triggered"]
    assert "|1 GREETING=hi /bin/sh -c echo $GREETING from $A > /greeting" in history
    assert "/bin/sh -c #(nop) COPY file:00ec16333078d287782d462baefc8bb9eb0231dc3aefba3ca3e2f7e5cf0cadda in . " \
        in history
    # Every step is an image; untagged ones show with -a, each the parent of the next.
    assert len(image_ids(bb)) == 18
    assert_nothing_left(bb, bb.root)


def test_onbuild_triggers_run_in_the_child(bb, tmp_path):
    ctx = write(tmp_path / "ctx", {"f": "data\n",
                                   "Dockerfile.parent": "FROM bb\nONBUILD COPY f /f\nONBUILD ENV X=1\n",
                                   "Dockerfile": "FROM parent\nRUN cat /f\n"})
    bb("build", "-t", "parent", "-f", ctx / "Dockerfile.parent", ctx)
    out = bb("build", "-t", "child", ctx).stdout
    assert "# Executing 2 build triggers\n" in out and "\ndata\n" in out
    cfg = config(bb, "child")
    assert "X=1" in cfg["Env"] and cfg["OnBuild"] is None


def test_multi_stage_copy_from_and_target(bb, tmp_path):
    ctx = write(tmp_path / "ctx", {"Dockerfile": """\
ARG BASE=bb
FROM $BASE AS builder
RUN mkdir /out && echo built > /out/artifact && chmod 750 /out/artifact
FROM scratch AS bare
COPY --from=builder /out/artifact /artifact
FROM bb AS final
COPY --from=0 /out /copied
COPY --from=bare /artifact /again
"""})
    bb("build", "-t", "ms:final", ctx)
    listing = bb("run", "--rm", "ms:final", "ls", "-ln", "/copied/artifact", "/again").stdout
    assert listing.count("-rwxr-x---") == 2
    bb("build", "-t", "ms:bare", "--target", "bare", ctx)
    layers = json.loads(bb("inspect", "-f", "{{json .RootFS.Layers}}", "ms:bare").stdout)
    assert len(layers) == 1
    failed = bb("build", "--target", "nope", ctx, check=False)
    assert failed.returncode == 1
    assert "failed to reach build target nope in Dockerfile" in failed.stderr


def test_add_unpacks_local_archives_and_copy_does_not(bb, tmp_path):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tf:
        data = b"inner\n"
        ti = tarfile.TarInfo("x/inner")
        ti.size, ti.mode, ti.uid = len(data), 0o640, 1234
        tf.addfile(ti, io.BytesIO(data))
    ctx = write(tmp_path / "ctx", {"a.tar.gz": buf.getvalue(), "Dockerfile": """\
FROM bb
ADD a.tar.gz /unpacked/
COPY a.tar.gz /copied/
ADD --chown=1:2 a.tar.gz /unpacked2
"""})
    bb("build", "-t", "add", ctx)
    out = bb("run", "--rm", "add", "sh", "-c",
             "ls -ln /unpacked/x/inner /unpacked2/x/inner; ls /copied").stdout
    assert out.count("-rw-r-----    1 1234     0") == 2  # --chown does not apply to unpacked files
    assert out.rstrip().endswith("a.tar.gz")


def test_copy_wildcards_chown_chmod_and_symlinks(bb, tmp_path):
    ctx = write(tmp_path / "ctx", {"a.txt": "a\n", "b.txt": "b\n", "c.md": "c\n", "d/e": "e\n",
                                   "Dockerfile": """\
FROM bb
COPY *.txt /txt/
COPY --chown=nobody:nogroup --chmod=700 d /owned
COPY link /via-link
"""})
    os.symlink("a.txt", ctx / "link")
    bb("build", "-t", "cp", ctx)
    out = bb("run", "--rm", "cp", "sh", "-c", "ls /txt; ls -ln /owned; cat /via-link").stdout
    assert out.splitlines()[:2] == ["a.txt", "b.txt"]
    assert "-rwx------    1 65534    65534" in out and out.endswith("a\n")
    failed = bb("build", ctx / "missing", check=False)
    assert 'unable to prepare context: path "' in failed.stderr


def test_heredocs(bb, tmp_path):
    ctx = write(tmp_path / "ctx", {"Dockerfile": """\
FROM bb
RUN <<EOF
echo one > /one
echo two >> /one
EOF
COPY <<EOT /two
content
EOT
RUN cat /one /two
"""})
    out = bb("build", ctx).stdout
    assert "one\ntwo\ncontent\n" in out


def test_add_from_url(bb, tmp_path):
    (tmp_path / "www").mkdir()
    (tmp_path / "www" / "remote.txt").write_text("from the web\n")
    handler = lambda *a: http.server.SimpleHTTPRequestHandler(*a, directory=str(tmp_path / "www"))  # noqa: E731
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/remote.txt"
        ctx = write(tmp_path / "ctx", {"Dockerfile": f"FROM bb\nADD {url} /dl/\nCOPY {url} /x\n"})
        failed = bb("build", ctx, check=False)
        assert "source can't be a URL for COPY" in failed.stderr
        (ctx / "Dockerfile").write_text(f"FROM bb\nADD {url} /dl/\n")
        bb("build", "-t", "url", ctx)
        out = bb("run", "--rm", "url", "sh", "-c", "ls -l /dl; cat /dl/remote.txt").stdout
        assert out.startswith("total") and "-rw-------" in out and out.endswith("from the web\n")
    finally:
        server.shutdown()


# -- contexts --------------------------------------------------------------------------


def test_context_from_stdin_tarball_and_dockerfile(bb, tmp_path):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tf:
        for name, data in (("Dockerfile", b"FROM bb\nCOPY f /f\n"), ("f", b"in the tar\n")):
            ti = tarfile.TarInfo(name)
            ti.size = len(data)
            tf.addfile(ti, io.BytesIO(data))
    out = bb("build", "-t", "fromtar", "-", input=buf.getvalue()).stdout.decode()
    assert out.startswith("Sending build context to Docker daemon")
    assert bb("run", "--rm", "fromtar", "cat", "/f").stdout == "in the tar\n"
    # A plain Dockerfile on stdin: a build without context.
    bb("build", "-t", "fromstdin", "-", input=b"FROM bb\nENV FROM_STDIN=1\n")
    assert "FROM_STDIN=1" in config(bb, "fromstdin")["Env"]
    # -f - with a directory context.
    ctx = write(tmp_path / "ctx", {"g": "g\n"})
    bb("build", "-t", "dfstdin", "-f", "-", ctx, input=b"FROM bb\nCOPY g /g\n")
    assert bb("run", "--rm", "dfstdin", "cat", "/g").stdout == "g\n"
    assert_nothing_left(bb, bb.root)


def test_dockerfile_outside_the_context(bb, tmp_path):
    ctx = write(tmp_path / "ctx", {"f": "f\n"})
    df = write(tmp_path / "elsewhere", {"build.df": "FROM bb\nCOPY f /f\n"}) / "build.df"
    bb("build", "-t", "outside", "-f", df, ctx)
    assert bb("run", "--rm", "outside", "cat", "/f").stdout == "f\n"


# -- flags --------------------------------------------------------------------------------


def test_tags_labels_quiet_and_rm(bb, tmp_path):
    ctx = write(tmp_path / "ctx", {"Dockerfile": "FROM bb\nRUN true\nLABEL a=b\n"})
    result = bb("build", "-q", "-t", "one", "-t", "two:x", "--label", "z=9", "--label", "y=8", ctx)
    image_id = result.stdout.strip()
    assert re.fullmatch(r"sha256:[0-9a-f]{64}", image_id)
    tags = bb("inspect", "-f", "{{json .RepoTags}}", image_id).stdout
    assert json.loads(tags) == ["one:latest", "two:x"]
    assert config(bb, "one")["Labels"] == {"a": "b", "y": "8", "z": "9"}
    # --rm=false keeps every intermediate container, as Docker does.
    out = bb("build", "--rm=false", "--no-cache", ctx).stdout
    assert "Removing intermediate container" not in out
    kept = bb("ps", "-a", "-q", "--no-trunc").stdout.split()
    assert len(kept) == 2 and all(c[:12] in out for c in kept)


def test_ca_bundle_is_seen_by_run_but_never_committed(bb, tmp_path):
    bundle = tmp_path / "corp-ca.pem"
    bundle.write_text("-----BEGIN CERTIFICATE-----\nnot really\n-----END CERTIFICATE-----\n")
    ctx = write(tmp_path / "ctx", {"Dockerfile": """\
FROM bb
RUN echo "$SSL_CERT_FILE $PIP_CERT $REQUESTS_CA_BUNDLE" && head -1 $SSL_CERT_FILE && touch /made
"""})
    out = bb("build", "-t", "ca", "--ca-bundle", bundle, ctx).stdout
    path = "/run/berth/ca-certificates.crt"
    assert f"{path} {path} {path}\n-----BEGIN CERTIFICATE-----\n" in out
    assert not any("SSL_CERT_FILE" in e for e in config(bb, "ca")["Env"])
    listing = bb("run", "--rm", "ca", "sh", "-c", "ls /made; ls /run 2>&1", check=False).stdout
    assert listing == "/made\nls: /run: No such file or directory\n"
    missing = bb("build", "--ca-bundle", tmp_path / "nope.pem", ctx, check=False)
    assert missing.returncode == 1 and "nope.pem" in missing.stderr


# -- the cache --------------------------------------------------------------------------------

CACHE_DOCKERFILE = """\
FROM bb
ARG VERSION=1
COPY a /a
RUN echo version $VERSION > /version
COPY b /b
RUN cat /a /b /version
"""


def test_unchanged_rebuild_is_all_cache(bb, tmp_path):
    ctx = write(tmp_path / "ctx", {"a": "a\n", "b": "b\n", "Dockerfile": CACHE_DOCKERFILE})
    first = bb("build", "-q", ctx).stdout.strip()
    before = image_ids(bb)
    second = bb("build", ctx).stdout
    assert second.count(" ---> Using cache") == 5
    assert "Running in" not in second
    assert f"Successfully built {first[7:19]}" in second
    assert image_ids(bb) == before
    # Only the content counts: a new mtime is no change.
    os.utime(ctx / "a", (1, 1))
    assert bb("build", "-q", ctx).stdout.strip() == first
    # --no-cache builds everything again.
    fresh = bb("build", "--no-cache", ctx).stdout
    assert "Using cache" not in fresh


def test_changed_file_reruns_from_its_copy(bb, tmp_path):
    ctx = write(tmp_path / "ctx", {"a": "a\n", "b": "b\n", "Dockerfile": CACHE_DOCKERFILE})
    bb("build", ctx)
    (ctx / "b").write_text("b changed\n")
    out = bb("build", ctx).stdout
    cached = [s for s in out.split("Step ")[1:] if "Using cache" in s]
    assert [s.split("\n")[0] for s in cached] == ["2/6 : ARG VERSION=1", "3/6 : COPY a /a",
                                                 "4/6 : RUN echo version $VERSION > /version"]
    assert "a\nb changed\nversion 1\n" in out


def test_changed_build_arg_reruns_from_the_first_run(bb, tmp_path):
    ctx = write(tmp_path / "ctx", {"a": "a\n", "b": "b\n", "Dockerfile": CACHE_DOCKERFILE})
    bb("build", "--build-arg", "VERSION=2", ctx)
    out = bb("build", "--build-arg", "VERSION=3", "--build-arg", "UNUSED=1", ctx).stdout
    assert out.count("Using cache") == 2  # ARG and COPY a: the first RUN sees the new value
    assert "version 3\n" in out
    assert "[Warning] One or more build-args [UNUSED] were not consumed\n" in out
    again = bb("build", "--build-arg", "VERSION=3", ctx).stdout
    assert again.count("Using cache") == 5


def test_cache_survives_only_while_its_images_do(bb, tmp_path):
    ctx = write(tmp_path / "ctx", {"a": "a\n", "b": "b\n", "Dockerfile": CACHE_DOCKERFILE})
    bb("build", "-t", "c", ctx)
    bb("rmi", "c")
    assert "Using cache" not in bb("build", ctx).stdout


# -- bad input -----------------------------------------------------------------------------------

BAD = [
    ("unknown instruction", "FROM bb\nFOO bar\n", 1,
     "Error response from daemon: Dockerfile parse error line 2: unknown instruction: FOO (did you mean FROM?)"),
    ("JSON of non-strings", 'FROM bb\nCMD ["a", 1]\n', 1,
     "Error response from daemon: Dockerfile parse error line 2: when using JSON array syntax, "
     "arrays must be comprised of strings only"),
    ("SHELL not in JSON", "FROM bb\nSHELL /bin/bash -c\n", 1,
     "Error response from daemon: Dockerfile parse error line 2: SHELL requires the arguments to be in "
     "JSON form"),
    ("missing source", "FROM bb\nCOPY missing.txt /\n", 1,
     "COPY failed: file not found in build context or excluded by .dockerignore: "
     "stat missing.txt: file does not exist"),
    ("outside the context", "FROM bb\nADD ../x /\n", 1,
     "ADD failed: forbidden path outside the build context: ../x ()"),
    ("failing RUN", "FROM bb\nRUN echo out; exit 3\n", 3,
     "The command '/bin/sh -c echo out; exit 3' returned a non-zero code: 3"),
    # Not here, so pulled: from a registry on loopback that is not there.
    ("missing base image", "FROM 127.0.0.1:9/nosuchimage\n", 1,
     'Get "http://127.0.0.1:9/v2/": dial tcp 127.0.0.1:9: connect: connection refused'),
    ("unknown group", "FROM bb\nCOPY --chown=nobody:nosuch Dockerfile /\n", 1,
     "unable to convert uid/gid chown string to host mapping: can't find gid for group nosuch: "
     "no such group: nosuch"),
    ("empty", "# nothing\n", 1, "Error response from daemon: the Dockerfile (Dockerfile) cannot be empty"),
]


@pytest.mark.parametrize("dockerfile, code, message", [b[1:] for b in BAD], ids=[b[0] for b in BAD])
def test_bad_input_is_one_clear_error_and_leaves_nothing(bb, tmp_path, dockerfile, code, message):
    ctx = write(tmp_path / "ctx", {"Dockerfile": dockerfile})
    before = image_ids(bb)
    result = bb("build", ctx, check=False)
    assert result.returncode == code, result.stderr
    if message is not None:
        assert result.stderr.strip().splitlines()[-1] == message
    assert_nothing_left(bb, bb.root)
    # Steps that succeeded before the failure stay as cache, like Docker's.
    assert before <= image_ids(bb)


def test_broken_json_form_is_the_shell_form(bb, tmp_path):
    """As in Docker: `CMD ["a",` is not JSON, so it is a shell command."""
    ctx = write(tmp_path / "ctx", {"Dockerfile": 'FROM bb\nCMD ["a", \n'})
    bb("build", "-t", "brokenjson", ctx)
    assert config(bb, "brokenjson")["Cmd"] == ["/bin/sh", "-c", '["a",']


def test_failing_run_output_and_step_are_shown(bb, tmp_path):
    ctx = write(tmp_path / "ctx", {"Dockerfile": "FROM bb\nRUN echo some output; exit 7\n"})
    result = bb("build", "-q", ctx, check=False)
    assert result.returncode == 7
    # -q shows the build output only when it fails, on stderr, as Docker does.
    assert "Step 2/2 : RUN echo some output; exit 7\n" in result.stderr
    assert "some output\n" in result.stderr
    assert_nothing_left(bb, bb.root)


def test_run_steps_under_a_cgroup_parent_isolation_and_compress(bb, tmp_path, root):
    parent = f"/berth-test-build-{os.getpid()}"
    ctx = write(tmp_path / "ctx", {"Dockerfile": "FROM bb\nRUN cat /proc/self/cgroup > /placed\n"})
    try:
        bb("build", "-q", "--cgroup-parent", parent, "--isolation", "default", "--compress", "-t", "placed", ctx)
        placed = bb("run", "--rm", "placed", "cat", "/placed").stdout
        memory = next(line.split(":", 2)[2] for line in placed.splitlines() if ":memory:" in line)
        assert memory.startswith(parent + "/")
    finally:
        for hierarchy in Path("/sys/fs/cgroup").iterdir():
            try:
                (hierarchy / parent.lstrip("/")).rmdir()
            except OSError:
                pass
    bad = bb("build", "--isolation", "hyperv", ctx, check=False)
    assert bad.returncode == 1
    assert bad.stderr.strip().splitlines()[-1] == ('Error response from daemon: Invalid isolation: "hyperv" - linux only supports \'default\'')
    assert_nothing_left(bb, root)


def test_run_step_limits_and_iidfile(bb, tmp_path, root):
    ctx = write(tmp_path / "ctx", {"Dockerfile": "FROM bb\n"
                                   "RUN cat /sys/fs/cgroup/memory/memory.limit_in_bytes > /limit; ulimit -n > /nofile\n"})
    iid = tmp_path / "iid"
    out = bb("build", "-q", "--memory", "64m", "--ulimit", "nofile=512:512", "--iidfile", iid, "-t", "lim", ctx).stdout
    assert iid.read_text() == out.strip() and out.startswith("sha256:")
    assert bb("run", "--rm", "lim", "cat", "/limit", "/nofile").stdout == f"{64 << 20}\n512\n"
    assert_nothing_left(bb, root)
