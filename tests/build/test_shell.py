"""Variable substitution and word splitting against BuildKit's lexer tables."""

from pathlib import Path

import pytest

from berth.build.shell import Lex, build_envs, go_quote, process_word, process_words
from berth.errors import InvalidArgument

TABLES = Path("/work/shared/reference/dockerfile-shell")
# The environment BuildKit's shell_test.go sets up for envVarTest.
ENV_VAR_TEST_ENV = ["PWD=/home", "SHELL=bash", "KOREAN=한국어", "NULL="]


def _env_var_rows():
    rows = []
    for lineno, line in enumerate((TABLES / "envVarTest").read_text(encoding="utf-8").split("\n"), 1):
        if line.startswith("#"):
            continue
        line = line.strip()
        if not line:
            continue
        platform, source, expected = (part.strip() for part in line.split("|"))
        rows.append(pytest.param(platform, source, expected, id=f"{lineno}:{source}"))
    return rows


ENV_VAR_ROWS = _env_var_rows()


def test_env_var_table_is_complete():
    assert len(ENV_VAR_ROWS) == 230


@pytest.mark.parametrize("platform,source,expected", ENV_VAR_ROWS)
def test_env_var_table(platform, source, expected):
    # Unix for A and U rows; W rows run with Windows' case-insensitive names.
    lex = Lex("\\", windows=platform == "W")
    for env in (ENV_VAR_TEST_ENV, build_envs(ENV_VAR_TEST_ENV)):
        if expected == "error":
            with pytest.raises(InvalidArgument):
                lex.process_word(source, env)
        else:
            assert lex.process_word(source, env) == expected


def _words_rows():
    rows, envs = [], []
    for lineno, line in enumerate((TABLES / "wordsTest").read_text(encoding="utf-8").split("\n"), 1):
        if line.startswith("#") or not line:
            continue
        if line.startswith("ENV "):
            envs.append(line[3:].lstrip(" "))
            continue
        test, expected = line.split("|")
        rows.append(pytest.param(test.strip(), expected.lstrip(" ").split(","), list(envs),
                                 id=f"{lineno}:{test.strip()}"))
    return rows


WORDS_ROWS = _words_rows()


def test_words_table_is_complete():
    assert len(WORDS_ROWS) == 24


@pytest.mark.parametrize("source,expected,envs", WORDS_ROWS)
def test_words_table(source, expected, envs):
    try:
        got = Lex("\\").process_words(source, envs)
    except InvalidArgument:
        got = ["error"]
    assert got == expected


# Cases from BuildKit's lexer tests that the tables above do not hold:
# ${VAR?}, pattern removal and substitution, and which names matched.
@pytest.mark.parametrize("word,env,expected", [
    ("${FOO-aaa} ${BAR-bbb} ${BAZ-ccc}", {"FOO": "xxx", "BAR": ""}, "xxx  ccc"),
    ("${FOO:-aaa} ${BAR:-bbb} ${BAZ:-ccc}", {"FOO": "xxx", "BAR": ""}, "xxx bbb ccc"),
    ("${FOO+aaa} ${BAR+bbb} ${BAZ+ccc}", {"FOO": "xxx", "BAR": ""}, "aaa bbb "),
    ("${FOO:+aaa} ${BAR:+bbb} ${BAZ:+ccc}", {"FOO": "xxx", "BAR": ""}, "aaa  "),
    ("${FOO?aaa}", {"FOO": "xxx"}, "xxx"),
    ("${BAR?bbb}", {"BAR": ""}, ""),
    ("${FOO:?aaa}", {"FOO": "xxx"}, "xxx"),
    ("${FOO#()[]{\\}^$.\\*\\?|\\\\}", {"FOO": "()[]{}^$.*?|\\x"}, "x"),
    ("${FOO%%\\**}", {"FOO": "xx**"}, "xx"),
    ("${FOO#*x*y}", {"FOO": "xxyy"}, "y"),
    ("${FOO#*}", {"FOO": "xxyy"}, "xxyy"),
    ("${FOO#$BAR}", {"FOO": "xxyy", "BAR": "x"}, "xyy"),
    ("${FOO#$BAR}", {"FOO": "xxyy", "BAR": ""}, "xxyy"),
    ("${FOO#}", {"FOO": "xxyy"}, "xxyy"),
    ("${FOO##*x}", {"FOO": "xxyy"}, "yy"),
    ("${FOO##}", {"FOO": "xxyy"}, "xxyy"),
    ("${FOO#?\\?}", {"FOO": "???y"}, "?y"),
    ("${ABC:-.}${FOO%x}${ABC:-.}", {"FOO": "xxyy"}, ".xxyy."),
    ("${FOO%%\\**\\*}", {"FOO": "a***yy*"}, "a"),
    ("${FOO%}", {"FOO": "xxyy"}, "xxyy"),
    ("${FOO%%$BAR}", {"FOO": "xxyy", "BAR": ""}, "xxyy"),
    ("${FOO%y}", {"FOO": "xxyy"}, "xxy"),
    ("${FOO%%y*}", {"FOO": "xxyy"}, "xx"),
    ("${FOO%y*}", {"FOO": "xxyy"}, "xxy"),
    ("${FOO/$NEEDLE/.} - ${FOO//$NEEDLE/.}", {"FOO": "/foo*/*/*.txt", "NEEDLE": "\\*/"},
     "/foo.*/*.txt - /foo..*.txt"),
    ("${FOO/$NEEDLE/} - ${FOO//$NEEDLE/}", {"FOO": "/tmp/tmp/bar.txt", "NEEDLE": "/tmp"},
     "/tmp/bar.txt - /bar.txt"),
    ("${FOO/$NEEDLE/$REPLACEMENT} - ${FOO//$NEEDLE/$REPLACEMENT}",
     {"FOO": "/a/foo/b/c.txt", "NEEDLE": "/?/", "REPLACEMENT": "/"}, "/foo/b/c.txt - /foo/c.txt"),
    ("${FOO/$NEEDLE/$REPLACEMENT}", {"FOO": "http://google.de", "NEEDLE": "http://",
                                     "REPLACEMENT": "https://"}, "https://google.de"),
    ("${FOO//\\//\\/}", {"FOO": "/tmp/foo.txt"}, "\\/tmp\\/foo.txt"),
    ("${FOO/$BAR/ww}", {"FOO": "xxyy", "BAR": ""}, "wwxxyy"),
    ("${FOO///}", {"FOO": "xxyy"}, "xxyy"),
    ("${FOO///}", {}, ""),
    ("something-${VERSION}.${TARGETOS}-${TARGETARCH}${TARGETVARIANT:+-${TARGETVARIANT}}.tar.gz",
     {"VERSION": "v1.2.3", "TARGETOS": "linux", "TARGETARCH": "arm", "TARGETVARIANT": "v7"},
     "something-v1.2.3.linux-arm-v7.tar.gz"),
    ("something-${VERSION}.${TARGETOS}-${TARGETARCH}${TARGETVARIANT:+-${TARGETVARIANT}}.tar.gz",
     {"VERSION": "v1.2.3", "TARGETOS": "linux", "TARGETARCH": "arm64"},
     "something-v1.2.3.linux-arm64.tar.gz"),
])
def test_modifiers(word, env, expected):
    assert process_word(word, env) == expected


@pytest.mark.parametrize("word,env", [
    ("${BAZ?ccc}", {"FOO": "xxx"}),
    ("${BAR:?bbb}", {"BAR": ""}),
    ("${BAZ:?ccc}", {}),
    ("${BAZ:?}", {}),
    ("${FOO=aaa}", {"FOO": "xxx"}),
    ("${FOO=:aaa}", {"FOO": "xxx"}),
    ("${FOO=}", {}),
    ("${FOO//ww}", {"FOO": "xxyy"}),
    ("${FOO//}", {"FOO": "xxyy"}),
    ("${FOO#\\x}", {"FOO": "xxyy"}),
])
def test_modifier_errors(word, env):
    with pytest.raises(InvalidArgument, match=r"^failed to process "):
        process_word(word, env)


def test_mandatory_messages():
    word = "${VAR:?message here$ARG}"
    assert process_word(word, ["VAR=plain", "ARG=x"]) == "plain"
    with pytest.raises(InvalidArgument, match="VAR: message herex"):
        process_word(word, ["VAR=", "ARG=x"])
    with pytest.raises(InvalidArgument, match="VAR: message herex"):
        process_word(word, ["ARG=x"])
    assert process_word("${VAR?message here$ARG}", ["VAR=", "ARG=x"]) == ""
    with pytest.raises(InvalidArgument, match=r'^failed to process "\$\{X:\?\}": X: is not allowed to be empty$'):
        process_word("${X:?}", {"X": ""})
    with pytest.raises(InvalidArgument, match="X: is not allowed to be unset"):
        process_word("${X?}", {})


def test_matched_and_unmatched_names():
    result = Lex().process("${FOO-aaa} ${BAR-bbb} ${BAZ-ccc} $FOO", {"FOO": "xxx", "BAR": ""})
    assert result.matched == {"FOO", "BAR"}
    assert result.unmatched == {"BAZ"}


def test_env_list_last_wins_and_bare_names():
    assert build_envs(["foo=bar", "car=hat", "car=bike", "bare"]) == {"foo": "bar", "car": "bike", "bare": ""}
    assert process_word("$car$bare.", ["car=hat", "car=bike", "bare"]) == "bike."


def test_backtick_escape():
    lex = Lex("`")
    assert lex.process_word(r"c:\path`$HOME`\x", {"HOME": "h"}) == r"c:\path$HOME\x"
    assert lex.process_word('"a`"b"') == 'a"b'
    assert lex.process_words("a` b c") == ["a b", "c"]


def test_words_split_only_unquoted_expansion_whitespace():
    assert process_words('a "$X" $X', {"X": "1  2"}) == ["a", "1  2", "1", "2"]
    assert process_words("'' a") == ["a"]


def test_raw_modes_used_by_heredoc_detection():
    lex = Lex(raw_quotes=True, raw_escapes=True, skip_unset_env=True)
    assert lex.process_words('RUN <<"EOF" $X ${Y:-z} a\\ b') == ["RUN", '<<"EOF"', "$X", "${Y:-z}", "a\\ b"]
    assert Lex(skip_process_quotes=True).process_word("'$X' \"y\"", {"X": "1"}) == "'1' \"y\""


def test_invalid_escape_token():
    with pytest.raises(InvalidArgument):
        Lex("x")


def test_go_quote():
    assert go_quote('a"b\\c\n\t\x00\x7f é\u200b😀') == '"a\\"b\\\\c\\n\\t\\x00\\x7f é\\u200b😀"'
