"""The Dockerfile parser against BuildKit's own parse tables, and its edges."""

from pathlib import Path

import pytest

from berth.build.parser import COMMANDS, Heredoc, chomp_heredoc_content, dump, parse, parse_heredoc
from berth.errors import InvalidArgument

TABLES = Path("/work/shared/reference/dockerfile-parser")
POSITIVE = sorted(p.name for p in (TABLES / "testfiles").iterdir())
NEGATIVE = sorted(p.name for p in (TABLES / "testfiles-negative").iterdir())


def test_tables_are_there():
    assert len(POSITIVE) == 33 and len(NEGATIVE) == 4


@pytest.mark.parametrize("name", POSITIVE)
def test_buildkit_parse_table(name):
    text = (TABLES / "testfiles" / name / "Dockerfile").read_text(encoding="utf-8")
    expected = (TABLES / "testfiles" / name / "result").read_text(encoding="utf-8")
    assert dump(parse(text)) == expected


@pytest.mark.parametrize("name", NEGATIVE)
def test_buildkit_negative_table(name):
    text = (TABLES / "testfiles-negative" / name / "Dockerfile").read_text(encoding="utf-8")
    with pytest.raises(InvalidArgument):
        parse(text)


def test_negative_messages():
    with pytest.raises(InvalidArgument, match=r"^file with no instructions$"):
        parse("# just a comment\n\n")
    with pytest.raises(InvalidArgument, match=r"^Dockerfile parse error line 3: ENV must have two arguments$"):
        parse("FROM busybox\n\nENV PATH\n")
    with pytest.raises(InvalidArgument, match="arrays must be comprised of strings only"):
        parse('CMD [ "echo", [ "nested json" ] ]\n')


# --- lines, continuations, comments ---------------------------------------------------


def test_line_numbers_span_continuations_and_comments():
    df = parse("FROM a\n\nRUN one \\\n  # comment\n\n  two\nCMD x\n")
    run = df.nodes[1]
    assert (run.start_line, run.end_line) == (3, 6)
    assert run.args == ("one   two",)
    assert (df.nodes[2].start_line, df.nodes[2].end_line) == (7, 7)


def test_empty_continuation_line_warns():
    df = parse("FROM a\nRUN a \\\n\n b\n")
    assert df.nodes[1].args == ("a  b",)
    assert df.warnings[0] == "[WARNING]: Empty continuation line found in:\n    RUN a  b"
    assert "future release" in df.warnings[-1]
    assert parse("FROM a\n").warnings == ()


def test_original_keyword_and_lowercased_instruction():
    node = parse("from Alpine AS Base\n").nodes[0]
    assert node.instruction == "from" and node.keyword == "from"
    node = parse("FrOm alpine\n").nodes[0]
    assert node.instruction == "from" and node.keyword == "FrOm"
    assert node.original == "FrOm alpine"


def test_crlf_and_bom():
    df = parse("\ufeff# escape=`\r\nFROM a\r\nRUN x `\r\n  y\r\n")
    assert df.escape == "`"
    assert dump(df) == '(from "a")\n(run "x   y")\n'


def test_comments_are_kept_for_the_next_instruction():
    df = parse("FROM a\n# the version\n# of it\nARG V=1\n#\nARG W\n")
    assert df.nodes[1].comments == ("the version", "of it")
    assert df.nodes[2].comments == ()


def test_unknown_instruction():
    with pytest.raises(InvalidArgument, match=r"^Dockerfile parse error line 3: unknown instruction: FOO"):
        parse("FROM a\nRUN x\nFOO bar\n")
    with pytest.raises(InvalidArgument, match=r"unknown instruction: RUNN \(did you mean RUN\?\)$"):
        parse("FROM a\nRUNN x\n")
    with pytest.raises(InvalidArgument, match=r"unknown instruction: xyzzy$"):
        parse("xyzzy\n")
    # BuildKit's parser itself lets it through; rejection is a later step.
    node = parse("FROM a\nFOO bar baz\n", strict=False).nodes[1]
    assert (node.instruction, node.args) == ("foo", ())


# --- directives --------------------------------------------------------------------


def test_directives():
    df = parse("# syntax = docker/dockerfile:1.7\n#check=skip=JSONArgsRecommended\n# escape=`\nFROM a\n")
    assert df.directives == {"syntax": "docker/dockerfile:1.7", "check": "skip=JSONArgsRecommended",
                             "escape": "`"}
    assert df.escape == "`"


def test_directives_only_at_the_top():
    df = parse("FROM a\n# escape=`\nRUN a \\\n b\n")
    assert df.directives == {} and df.escape == "\\"
    assert df.nodes[1].args == ("a  b",)
    # An unknown directive ends the directive block too.
    assert parse("# foo=bar\n# escape=`\nFROM a\n").escape == "\\"
    # As does a blank line.
    assert parse("\n# escape=`\nFROM a\n").escape == "\\"


def test_directive_errors():
    with pytest.raises(InvalidArgument, match="only one escape parser directive can be used"):
        parse("# escape=`\n# escape=\\\nFROM a\n")
    with pytest.raises(InvalidArgument, match=r"invalid escape token 'x' does not match ` or \\"):
        parse("# escape=x\nFROM a\n")


def test_backtick_escape_keeps_backslashes():
    df = parse("# escape=`\nFROM a\nRUN dir c:\\ `\n  && echo\nCOPY a\\b c:\\dst\\\n")
    assert dump(df) == '(from "a")\n(run "dir c:\\\\   && echo")\n(copy "a\\\\b" "c:\\\\dst\\\\")\n'


def test_escaped_escape_is_not_a_continuation():
    df = parse("FROM a\nENV C trailing\\\\\nENV D d\n")
    assert [n.args for n in df.nodes[1:]] == [("C", "trailing\\\\", ""), ("D", "d", "")]


# --- argument forms ------------------------------------------------------------------


@pytest.mark.parametrize("line,args,is_json", [
    ('CMD ["a", "b c"]', ("a", "b c"), True),
    ("CMD []", (), True),
    ("CMD ['a']", ("['a']",), False),
    ('CMD ["a",]', ('["a",]',), False),
    ('CMD [NaN]', ("[NaN]",), False),  # not JSON for Go either
    ('CMD ["a"] b', ('["a"] b',), False),
    ('RUN  [ "a" ]  ', ("a",), True),
    ('VOLUME ["/a", "/b"]', ("/a", "/b"), True),
    ("VOLUME /a\t/b", ("/a", "/b"), False),
    ('SHELL ["/bin/bash", "-c"]', ("/bin/bash", "-c"), True),
    ("USER  a b ", ("a b",), False),
    ("EXPOSE 80 443/tcp", ("80", "443/tcp"), False),
    ("ARG a=1 b", ("a=1", "b"), False),
    ("MAINTAINER Jo <jo@example.com>", ("Jo <jo@example.com>",), False),
    ('LABEL "a b"=c d=e\\ f', ('"a b"', "c", "=", "d", "e\\ f", "="), False),
    ("HEALTHCHECK NONE", ("NONE",), False),
    ('HEALTHCHECK CMD ["a", "b"]', ("CMD", "a", "b"), True),
    ("STOPSIGNAL SIGKILL", ("SIGKILL",), False),
    ("WORKDIR /a b", ("/a b",), False),
    ("RUN", (), False),
])
def test_argument_forms(line, args, is_json):
    node = parse(line + "\n").nodes[0]
    assert node.args == args
    assert node.json is is_json


def test_json_with_non_strings_is_an_error():
    for line in ('CMD ["a", 1]', 'ENTRYPOINT [null]', 'COPY [true, "b"]'):
        with pytest.raises(InvalidArgument, match="line 1: when using JSON array syntax"):
            parse(line + "\n")


def test_env_forms_and_errors():
    assert parse("ENV a=1 b='2 3'\n").nodes[0].args == ("a", "1", "=", "b", "'2 3'", "=")
    assert parse("ENV a  1  2\n").nodes[0].args == ("a", "1  2", "")
    with pytest.raises(InvalidArgument, match=r"line 1: Syntax error - can't find = in \"b\". "
                                              r"Must be of the form: name=value"):
        parse("ENV a=1 b\n")
    with pytest.raises(InvalidArgument, match="LABEL must have two arguments"):
        parse("LABEL a\n")
    assert parse("ENV\n").nodes[0].args == ()


def test_flags():
    node = parse('COPY --from=build --chown="a b" --link -- --not-a-flag /dst\n').nodes[0]
    assert node.flags == ("--from=build", "--chown=a b", "--link")
    assert node.args == ("--not-a-flag", "/dst")
    node = parse("RUN --mount=type=cache,target=/c echo --x\n").nodes[0]
    assert node.flags == ("--mount=type=cache,target=/c",)
    assert node.args == ("echo --x",)
    assert parse("COPY -x a b\n").nodes[0].flags == ()


def test_onbuild_nests_an_instruction():
    node = parse("ONBUILD COPY --from=x a /b\n").nodes[0]
    assert node.args == ()
    assert node.sub.instruction == "copy"
    assert node.sub.flags == ("--from=x",)
    assert dump(node) == '(onbuild (copy ["--from=x"] "a" "/b"))'
    assert parse("ONBUILD\n").nodes[0].sub is None


# --- heredocs -------------------------------------------------------------------------


def test_heredoc_run():
    df = parse("FROM a\nRUN <<EOF\necho $HOME\n  two\nEOF\nCMD x\n")
    run = df.nodes[1]
    assert run.args == ("<<EOF",)
    assert run.heredocs == (Heredoc("EOF", "echo $HOME\n  two\n", expand=True, chomp=False, fd=0),)
    assert (run.start_line, run.end_line) == (2, 5)
    assert df.nodes[2].start_line == 6


def test_heredoc_several_on_one_line_and_fd():
    df = parse("RUN <<A cat - 3<<'B' > out\na\nA\nb $x\nB\n")
    docs = df.nodes[0].heredocs
    assert [(d.name, d.content, d.expand, d.fd) for d in docs] == [("A", "a\n", True, 0),
                                                                   ("B", "b $x\n", False, 3)]


def test_heredoc_chomp_and_quoting():
    df = parse('COPY <<-"EOT" /dst\n\t\tline\n\tEOT\n')
    doc = df.nodes[0].heredocs[0]
    assert (doc.name, doc.chomp, doc.expand) == ("EOT", True, False)
    assert doc.content == "\t\tline\n"
    assert chomp_heredoc_content(doc.content) == "line\n"
    assert parse_heredoc("<<E'O'F").expand is False
    assert parse_heredoc("<<EOF").expand is True
    assert parse_heredoc("<<-EOF").chomp is True
    assert parse_heredoc("<<") is None
    assert parse_heredoc("a<<EOF") is None
    assert parse_heredoc("<<a b") is None


def test_heredoc_not_in_json_form_or_other_instructions():
    df = parse('RUN ["cat", "<<EOF"]\nCMD <<EOF\nEOF\n', strict=False)
    assert df.nodes[0].heredocs == ()
    assert df.nodes[1].heredocs == ()
    assert len(df.nodes) == 3  # the EOF line is parsed as an (unknown) instruction


def test_heredoc_quoted_word_is_not_a_heredoc():
    df = parse('RUN echo "<<EOF"\n')
    assert df.nodes[0].heredocs == ()


def test_heredoc_in_onbuild():
    node = parse("ONBUILD RUN <<X\nhi\nX\n").nodes[0]
    assert node.heredocs == (Heredoc("X", "hi\n"),)
    assert node.end_line == 3


def test_heredoc_keeps_crlf_and_terminator_tolerates_it():
    doc = parse("RUN <<EOF\r\na\r\nEOF\r\n").nodes[0].heredocs[0]
    assert doc.content == "a\r\n"


def test_unterminated_heredoc():
    with pytest.raises(InvalidArgument, match=r"^Dockerfile parse error line 2: unterminated heredoc$"):
        parse("FROM a\nRUN <<EOF\nx\n")


def test_dump_uses_go_quoting():
    node = parse('CMD ["\\u00e9\\u0007", "\\u2028"]\n').nodes[0]
    assert dump(node) == '(cmd "é\\a" "\\u2028")'


def test_commands_list():
    assert len(COMMANDS) == 18
