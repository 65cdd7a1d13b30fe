import pytest

from berth.errors import InvalidArgument
from berth.image.reference import parse, parse_normalized_named

CASES = [
    ("ubuntu", "docker.io/library/ubuntu:latest", "ubuntu:latest"),
    ("ubuntu:22.04", "docker.io/library/ubuntu:22.04", "ubuntu:22.04"),
    ("user/app", "docker.io/user/app:latest", "user/app:latest"),
    ("docker.io/library/busybox:1", "docker.io/library/busybox:1", "busybox:1"),
    ("index.docker.io/library/busybox", "docker.io/library/busybox:latest", "busybox:latest"),
    ("localhost/app", "localhost/app:latest", "localhost/app:latest"),
    ("localhost:5000/a/b:tag", "localhost:5000/a/b:tag", "localhost:5000/a/b:tag"),
    ("127.0.0.1:5000/x", "127.0.0.1:5000/x:latest", "127.0.0.1:5000/x:latest"),
    ("quay.io/coreos/etcd:v3", "quay.io/coreos/etcd:v3", "quay.io/coreos/etcd:v3"),
    ("a_b-c__d/f---g.h:T.1-x", "docker.io/a_b-c__d/f---g.h:T.1-x", "a_b-c__d/f---g.h:T.1-x"),
    ("a.b/c", "a.b/c:latest", "a.b/c:latest"),
]


@pytest.mark.parametrize("text,full,familiar", CASES)
def test_normalisation(text, full, familiar):
    ref = parse_normalized_named(text)
    assert str(ref) == full
    assert ref.familiar() == familiar


def test_digest_reference():
    d = "sha256:" + "ab" * 32
    ref = parse(f"busybox@{d}")
    assert ref.digest == d and ref.tag is None
    assert str(ref.tagged_or_latest()) == f"docker.io/library/busybox@{d}"
    both = parse(f"busybox:1@{d}")
    assert both.tag == "1" and both.digest == d


@pytest.mark.parametrize("text,message", [
    ("", "invalid reference format"),
    ("Ubuntu", "repository name (library/Ubuntu) must be lowercase"),
    ("a/B:c", "repository name (a/B) must be lowercase"),
    ("ubuntu:", "invalid reference format"),
    ("-ubuntu", "invalid reference format"),
    ("ubuntu:tag with space", "invalid reference format"),
    ("a" * 64, "cannot specify 64-byte hexadecimal strings"),
    ("busybox@sha256:abc", "invalid reference format"),
])
def test_invalid(text, message):
    with pytest.raises(InvalidArgument, match=message.replace("(", r"\(").replace(")", r"\)")):
        parse(text)
