""".dockerignore: Docker's pattern semantics, and what a build then sees.

The unit tests pin the rules (Go's filepath.Match, `**`, exceptions, parent
directories); the Docker tests build the same contexts with the real
`docker build` and compare what `COPY .` brought into the image.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from berth.build import dockerignore
from berth.build.context import context_from_directory
from berth.build.gopath import BadPattern, clean, match
from berth.errors import InvalidArgument
from test_builder import bb, bb_archive  # noqa: F401  (fixtures)
from test_builder_docker import build_both, docker_bb, normalized  # noqa: F401

# Go's own filepath.Match table (path/filepath/match_test.go), abridged.
GO_MATCH = [
    ("abc", "abc", True), ("*", "abc", True), ("*c", "abc", True), ("a*", "a", True),
    ("a*", "abc", True), ("a*", "ab/c", False), ("a*/b", "abc/b", True), ("a*/b", "a/c/b", False),
    ("a*b*c*d*e*/f", "axbxcxdxe/f", True), ("a*b*c*d*e*/f", "axbxcxdxexxx/f", True),
    ("a*b*c*d*e*/f", "axbxcxdxe/xxx/f", False), ("a*b*c*d*e*/f", "axbxcxdxexxx/fff", False),
    ("a*b?c*x", "abxbbxdbxebxczzx", True), ("a*b?c*x", "abxbbxdbxebxczzy", False),
    ("ab[c]", "abc", True), ("ab[b-d]", "abc", True), ("ab[e-g]", "abc", False),
    ("ab[^c]", "abc", False), ("ab[^b-d]", "abc", False), ("ab[^e-g]", "abc", True),
    ("a\\*b", "a*b", True), ("a\\*b", "ab", False), ("a?b", "a\u263ab", True),
    ("a[^a]b", "a\u263ab", True), ("a???b", "a\u263ab", False), ("a?b", "a/b", False),
    ("a*b", "a/b", False), ("[\\]a]", "]", True), ("[\\-]", "-", True), ("[x\\-]", "-", True),
    ("[x\\-]", "z", False), ("[\\-x]", "a", False), ("*x", "xxx", True),
]
GO_BAD = [("[]a]", "]"), ("[-]", "-"), ("[x-]", "x"), ("[-x]", "x"), ("\\", "a"), ("[a-b-c]", "a"),
          ("[", "a"), ("[^", "a"), ("[^bc", "a"), ("a[", "a"), ("a[", "ab"), ("a/b[", "x")]


@pytest.mark.parametrize("pattern, name, expected", GO_MATCH)
def test_go_filepath_match(pattern, name, expected):
    assert match(pattern, name) is expected


@pytest.mark.parametrize("pattern, name", GO_BAD)
def test_go_filepath_match_errors(pattern, name):
    with pytest.raises(BadPattern):
        match(pattern, name)


@pytest.mark.parametrize("path, cleaned", [("", "."), ("a//b/", "a/b"), ("/../a", "/a"), ("a/../..", ".."),
                                           ("//a", "/a"), ("./a/./b/.", "a/b")])
def test_go_clean(path, cleaned):
    assert clean(path) == cleaned


def test_read_patterns():
    text = "\ufeff# comment\n  spaced.txt  \n\n/abs/path\n!  /keep\n./dot/../x\n  # not a comment\n!\n"
    assert dockerignore.read_patterns(text) == ["spaced.txt", "abs/path", "!keep", "x",
                                                "# not a comment", "!"]


MATCHES = [
    # pattern, path, excluded
    ("*.log", "a.log", True), ("*.log", "sub/a.log", False),          # top level only
    ("**/*.log", "sub/deep/a.log", True), ("**/*.log", "a.log", True),
    ("sub", "sub/deep/file", True),                                     # parents count
    ("sub/*", "sub/x", True), ("sub/*", "sub/x/y", True), ("sub/*", "subx", False),
    ("s?b", "sab/file", True), ("[ab]*", "bcd", True), ("\\*", "*", True), ("\\*", "x", False),
    ("dir/**", "dir/a/b", True), ("dir/**", "dir", False), ("**", "anything/at/all", True),
    ("a/**/b", "a/b", True), ("a/**/b", "a/x/y/b", True), ("a.b", "aXb", False),
]


@pytest.mark.parametrize("pattern, path, excluded", MATCHES)
def test_pattern_matches(pattern, path, excluded):
    assert dockerignore.PatternMatcher([pattern]).matches(path) is excluded


def test_exceptions_and_order():
    pm = dockerignore.PatternMatcher(["*.md", "!README.md", "README*.md", "!README-keep.md"])
    assert [pm.matches(p) for p in ("a.md", "README.md", "README-x.md", "README-keep.md")] == \
        [True, True, True, False]
    with pytest.raises(InvalidArgument):
        dockerignore.PatternMatcher(["!"])
    with pytest.raises(BadPattern):
        dockerignore.PatternMatcher(["a["])


def make_tree(root: Path, files: list[str]) -> Path:
    for name in files:
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(name + "\n")
    return root


FILES = ["Dockerfile", "a.log", "a.txt", "b.txt", "README.md", "docs/guide.md", "docs/keep/me.txt",
         "sub/a.log", "sub/deep/b.log", "sub/deep/c.txt", "node_modules/pkg/index.js", "x y.txt",
         "build/out/bin", "build/out/keep.txt", "tmp/.hidden"]

IGNORES = {
    "top-level glob": "*.log\n",
    "any depth": "**/*.log\n**/.hidden\n",
    "directory with exception": "docs\n!docs/keep/me.txt\n",
    "everything but": "*\n!*.txt\n!Dockerfile\n",
    "comments, spaces, absolute": "# a comment\n   /node_modules   \n./build/../tmp\n",
    "nested exception": "build/**\n!build/out/keep.txt\nsub/deep\n",
    "ignoring the build files": ".dockerignore\nDockerfile\n*.md\n",
    "character classes": "[ab].txt\nx?y.txt\n",
    "re-excluded": "*.txt\n!b.txt\nb*\n",
}


@pytest.mark.parametrize("name", list(IGNORES))
def test_context_contents(tmp_path, name):
    """What a context keeps, spelled out for the cases Docker users rely on."""
    ctx = make_tree(tmp_path / "ctx", FILES)
    (ctx / ".dockerignore").write_text(IGNORES[name])
    kept = {rel for rel, entry in context_from_directory(str(ctx)).tree.entries.items() if not entry.is_dir}
    expected = {
        "top-level glob": set(FILES) - {"a.log"} | {".dockerignore"},
        "any depth": set(FILES) - {"a.log", "sub/a.log", "sub/deep/b.log", "tmp/.hidden"} | {".dockerignore"},
        "directory with exception": set(FILES) - {"docs/guide.md"} | {".dockerignore"},
        "everything but": {"a.txt", "b.txt", "x y.txt", "Dockerfile"},
        "comments, spaces, absolute": set(FILES) - {"node_modules/pkg/index.js", "tmp/.hidden"}
        | {".dockerignore"},
        "nested exception": set(FILES) - {"build/out/bin", "sub/deep/b.log", "sub/deep/c.txt"}
        | {".dockerignore"},
        "ignoring the build files": set(FILES) - {"Dockerfile", "README.md"},
        "character classes": set(FILES) - {"a.txt", "b.txt", "x y.txt"} | {".dockerignore"},
        # `*.txt` is top level only; `b*` takes build/ whole.
        "re-excluded": set(FILES) - {"a.txt", "b.txt", "x y.txt", "build/out/keep.txt", "build/out/bin"}
        | {".dockerignore"},
    }[name]
    assert kept == expected


def test_ignored_dockerfile_still_builds_but_is_not_copied(tmp_path):
    ctx = make_tree(tmp_path / "ctx", ["Dockerfile", "f"])
    (ctx / ".dockerignore").write_text("Dockerfile\n")
    context = context_from_directory(str(ctx))
    assert context.dockerfile == "Dockerfile\n"
    assert set(context.tree.entries) == {"f", ".dockerignore"}


@pytest.mark.docker
@pytest.mark.parametrize("name", list(IGNORES))
def test_same_context_as_docker(tmp_path, name, bb, docker_bb):
    """Both engines COPY the same files, and report the same context size."""
    ctx = make_tree(tmp_path / "ctx", FILES)
    (ctx / ".dockerignore").write_text(IGNORES[name])
    os.chmod(ctx / "build" / "out" / "bin", 0o755)
    (ctx / "Dockerfile").write_text("FROM bb\nCOPY . /ctx/\nRUN cd /ctx && find . | sort\n")
    b, d = build_both(bb, docker_bb, ctx, tag=f"ignore-{name.replace(' ', '-').replace(',', '')}")
    assert d.returncode == 0 and b.returncode == 0, (b.stderr, d.stderr)
    assert normalized(b.stdout) == normalized(d.stdout)

