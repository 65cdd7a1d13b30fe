"""Typed instructions, their validation, expansion, and image-config changes."""

import pytest

from berth.build.instructions import (
    CHANGE_COMMANDS,
    EXPANDED_FIELDS,
    AddInstr,
    ArgInstr,
    CmdInstr,
    CopyInstr,
    EntrypointInstr,
    EnvInstr,
    ExposeInstr,
    FromInstr,
    HealthcheckInstr,
    InlineFile,
    Instruction,
    LabelInstr,
    MaintainerInstr,
    Mount,
    OnbuildInstr,
    RunInstr,
    ShellInstr,
    StopsignalInstr,
    UserInstr,
    VolumeInstr,
    WorkdirInstr,
    apply_changes,
    apply_to_config,
    expand_instruction,
    parse_change,
    parse_changes,
    parse_duration,
    parse_instruction,
    parse_instructions,
    parse_mount,
    parse_stages,
    run_mounts,
)
from berth.build.parser import COMMANDS, parse
from berth.errors import InvalidArgument


def one(line: str) -> Instruction:
    return parse_instructions(line + "\n")[0]


def fails(line: str, message: str) -> None:
    with pytest.raises(InvalidArgument) as info:
        one(line)
    assert str(info.value) == f"Dockerfile parse error line 1: {message}"


def test_every_instruction_has_a_type():
    assert {cls.keyword.lower() for cls in Instruction.__subclasses__()} == set(COMMANDS)


# --- parsing each instruction -------------------------------------------------------


def test_from():
    assert one("FROM --platform=$BUILDPLATFORM golang:1.22 AS Build") == FromInstr(
        image="golang:1.22", stage_name="build", platform="$BUILDPLATFORM",
        original="FROM --platform=$BUILDPLATFORM golang:1.22 AS Build", start_line=1, end_line=1)
    assert one("FROM scratch").stage_name is None
    fails("FROM", "FROM requires either one or three arguments")
    fails("FROM a b", "FROM requires either one or three arguments")
    fails("FROM a AS 1x", 'invalid name for build stage: "1x", name can\'t start with a number or contain symbols')
    fails("FROM --chown=x a", "Unknown flag: chown")


def test_run():
    run = one("RUN echo $HOME")
    assert (run.cmd, run.prepend_shell, run.network, run.security) == (("echo $HOME",), True, "default", "sandbox")
    run = one('RUN --network=none --mount=type=cache,target=/c --mount=type=tmpfs,target=/t ["a", "b"]')
    assert (run.cmd, run.prepend_shell, run.network) == (("a", "b"), False, "none")
    assert run.mounts == ("type=cache,target=/c", "type=tmpfs,target=/t")
    assert run.flags_used == ("network", "mount", "mount")
    fails("RUN --network=bridge x", 'invalid network mode "bridge"')
    fails("RUN --security=x y", 'security "x" is not valid')
    fails("RUN --foo x", "Unknown flag: foo")
    fails("RUN --network x", "Missing a value on flag: network")
    fails("RUN --network=none --network=host x", "Duplicate flag specified: network")
    fails("RUN --mount=type=bind,from=$X y", "'from' doesn't support variable expansion, define alias stage instead")


def test_run_heredoc_is_kept_unchomped():
    run = parse_instructions("RUN <<-EOF\n\techo hi\n\tEOF\n")[0]
    assert run.cmd == ("<<-EOF",)
    assert run.heredocs[0].content == "\techo hi\n" and run.heredocs[0].chomp


def test_cmd_and_entrypoint():
    assert one("CMD echo hi") == CmdInstr(cmd=("echo hi",), prepend_shell=True, original="CMD echo hi",
                                          start_line=1, end_line=1)
    assert one('CMD ["a"]').cmd == ("a",)
    assert one("CMD []").cmd == ()
    assert one("ENTRYPOINT []").cmd is None
    assert one("ENTRYPOINT").cmd is None
    assert one('ENTRYPOINT ["/x", "y"]') .cmd == ("/x", "y")
    fails("CMD --doit [ \"a\" ]", "Unknown flag: doit")


def test_env_and_label():
    env = one('ENV a=1 b="x y" c=')
    assert env.pairs == (("a", "1"), ("b", '"x y"'), ("c", ""))
    assert one("ENV a b c").pairs == (("a", "b c"),)
    assert one("LABEL maintainer Jo Doe").pairs == (("maintainer", "Jo Doe"),)
    fails("ENV", "ENV requires at least one argument")
    fails("ENV =x", "ENV names can not be blank")
    fails("LABEL =x", "LABEL names can not be blank")
    fails("ENV --x=1 a=b", "Unknown flag: x")


def test_env_without_equals_in_a_later_word():
    with pytest.raises(InvalidArgument, match="can't find = in \"c\""):
        one("ENV a=1 c")


def test_arg():
    arg = one("ARG a b=2 c=")
    assert arg.args == (("a", None), ("b", "2"), ("c", ""))
    assert (arg.arg_name, arg.default) == ("a", None)
    assert one('ARG x="1 2"').args == (("x", '"1 2"'),)
    fails("ARG", "ARG requires at least one argument")
    fails("ARG =1", "ARG names can not be blank")


def test_add_and_copy():
    add = one("ADD --chown=1:2 --chmod=644 --link --keep-git-dir=true --checksum=sha256:ab a b /dst/")
    assert add == AddInstr(sources=("a", "b"), dest="/dst/", chown="1:2", chmod="644", link=True,
                           keep_git_dir=True, checksum="sha256:ab", original=add.original,
                           start_line=1, end_line=1)
    copy = one('COPY --from=build ["a b", "/c"]')
    assert (copy.sources, copy.dest, copy.from_, copy.link) == (("a b",), "/c", "build", False)
    assert one("COPY --link=false a b").link is False
    fails("ADD a", "ADD requires at least two arguments, but only one was provided. "
                   "Destination could not be determined")
    fails("COPY a", "COPY requires at least two arguments, but only one was provided. "
                    "Destination could not be determined")
    fails("COPY --checksum=x a b", "Unknown flag: checksum")
    fails("ADD --from=x a b", "Unknown flag: from")
    fails("COPY --link=maybe a b", "Expecting boolean value for flag link, not: maybe")
    fails("COPY --link= a b", "Missing a value on flag: link")
    fails("COPY --chown a b", "Missing a value on flag: chown")


def test_copy_heredocs():
    instrs = parse_instructions('COPY <<A <<-"B" src /dst/\nhello $X\nA\n\tbye\n\tB\n')
    copy = instrs[0]
    assert copy.sources == ("src",)
    assert copy.heredocs == (InlineFile("A", "hello $X\n", True), InlineFile("B", "bye\n", False))
    with pytest.raises(InvalidArgument, match="COPY cannot accept a heredoc as a destination"):
        parse_instructions("COPY a <<EOF\nx\nEOF\n")


def test_onbuild():
    assert one("ONBUILD RUN echo hi").expression == "RUN echo hi"
    assert one("  onbuild   COPY --from=x a b").expression == "COPY --from=x a b"
    assert parse_instructions("ONBUILD RUN <<X\nhi\nX\n")[0].expression == "RUN <<X\nhi\nX"
    fails("ONBUILD", "ONBUILD requires at least one argument")
    fails("ONBUILD ONBUILD RUN x", "Chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed")
    fails("ONBUILD FROM x", "FROM isn't allowed as an ONBUILD trigger")
    fails("ONBUILD maintainer x", "MAINTAINER isn't allowed as an ONBUILD trigger")


def test_simple_single_argument_instructions():
    assert one("USER nobody:nogroup") == UserInstr(user="nobody:nogroup", original="USER nobody:nogroup",
                                                   start_line=1, end_line=1)
    assert one("WORKDIR /a/b").path == "/a/b"
    assert one("STOPSIGNAL SIGQUIT").signal == "SIGQUIT"
    assert one("STOPSIGNAL --ignored=1 9").signal == "9"  # BuildKit never parses these flags
    assert one("MAINTAINER Jo <jo@x>") .maintainer == "Jo <jo@x>"
    fails("USER", "USER requires exactly one argument")
    fails("WORKDIR", "WORKDIR requires exactly one argument")
    fails("STOPSIGNAL", "STOPSIGNAL requires exactly one argument")
    fails("MAINTAINER", "MAINTAINER requires exactly one argument")
    fails("USER --x=1 a", "Unknown flag: x")


def test_expose_volume_shell():
    assert one("EXPOSE 8080 443/tcp 80").ports == ("443/tcp", "80", "8080")
    assert one('VOLUME ["/a", " /b "]').volumes == ("/a", "/b")
    assert one("VOLUME /a /b").volumes == ("/a", "/b")
    assert one('SHELL ["bash", "-exc"]').shell == ("bash", "-exc")
    fails("EXPOSE", "EXPOSE requires at least one argument")
    fails("VOLUME", "VOLUME requires at least one argument")
    fails('VOLUME [" "]', "VOLUME specified can not be an empty string")
    fails("SHELL bash -c", "SHELL requires the arguments to be in JSON form")
    fails("SHELL []", "SHELL requires at least one argument")


def test_healthcheck():
    hc = one("HEALTHCHECK --interval=5s --timeout=3s --start-period=1m --start-interval=500ms --retries=3 "
             "CMD curl -f http://localhost/ || exit 1")
    assert hc.test == ("CMD-SHELL", "curl -f http://localhost/ || exit 1")
    assert (hc.interval, hc.timeout, hc.start_period, hc.start_interval, hc.retries) == (
        5_000_000_000, 3_000_000_000, 60_000_000_000, 500_000_000, 3)
    assert one('HEALTHCHECK CMD ["foo", "bar"]').test == ("CMD", "foo", "bar")
    assert one("healthcheck none").test == ("NONE",)
    assert one("HEALTHCHECK --interval=0s --retries=0 CMD x").interval == 0
    assert one("HEALTHCHECK --bogus NONE").test == ("NONE",)  # BuildKit skips flags for NONE
    fails("HEALTHCHECK", "HEALTHCHECK requires at least one argument")
    fails("HEALTHCHECK NONE x", "HEALTHCHECK NONE takes no arguments")
    fails("HEALTHCHECK CMD", "Missing command after HEALTHCHECK CMD")
    fails("HEALTHCHECK CONNECT TCP 7000", 'Unknown type "CONNECT" in HEALTHCHECK (try CMD)')
    fails("HEALTHCHECK --interval=10 CMD x", 'time: missing unit in duration "10"')
    fails("HEALTHCHECK --timeout=1us CMD x", 'Interval "timeout" cannot be less than 1ms')
    fails("HEALTHCHECK --retries=-1 CMD x", "--retries cannot be negative (-1)")
    fails("HEALTHCHECK --retries=x CMD x", 'strconv.ParseInt: parsing "x": invalid syntax')
    fails("HEALTHCHECK --retries=3000000000 CMD x", 'strconv.ParseInt: parsing "3000000000": value out of range')
    fails("HEALTHCHECK --foo=1 CMD x", "Unknown flag: foo")


@pytest.mark.parametrize("text,ns", [
    ("0", 0), ("5s", 5_000_000_000), ("+5s", 5_000_000_000), ("-5s", -5_000_000_000),
    ("1.5h", 5_400_000_000_000), ("1h30m", 5_400_000_000_000), ("300ms", 300_000_000),
    ("1.004s", 1_004_000_000), (".5s", 500_000_000), ("1.s", 1_000_000_000), ("10ns", 10),
    ("11us", 11_000), ("12µs", 12_000), ("12μs", 12_000), ("3m4.001s", 184_001_000_000),
    ("9223372036854775807ns", 9223372036854775807), ("-9223372036854775808ns", -9223372036854775808),
    ("1.00000000000000000000000000001s", 1_000_000_000), ("0.100000000000000000000h", 360_000_000_000),
])
def test_parse_duration(text, ns):
    assert parse_duration(text) == ns


@pytest.mark.parametrize("text,message", [
    ("", 'time: invalid duration ""'), ("3", 'time: missing unit in duration "3"'),
    ("-", 'time: invalid duration "-"'), ("s", 'time: invalid duration "s"'),
    (".", 'time: invalid duration "."'), ("-.", 'time: invalid duration "-."'),
    (".s", 'time: invalid duration ".s"'), ("1d", 'time: unknown unit "d" in duration "1d"'),
    ("9223372036854775808ns", 'time: invalid duration "9223372036854775808ns"'),
    ("3000000h", 'time: invalid duration "3000000h"'),
])
def test_parse_duration_errors(text, message):
    with pytest.raises(InvalidArgument) as info:
        parse_duration(text)
    assert str(info.value) == message


# --- RUN --mount ---------------------------------------------------------------------


def test_mounts():
    assert parse_mount("type=cache,target=/root/.cache,id=go,sharing=locked,mode=0755,uid=1", str) == Mount(
        type="cache", target="/root/.cache", cache_id="go", sharing="locked", mode=0o755, uid=1)
    assert parse_mount("target=/src,from=build,source=/out", str) == Mount(
        type="bind", target="/src", from_="build", source="/out", readonly=True)
    assert parse_mount("type=bind,target=/x,rw", str).readonly is False
    assert parse_mount("type=tmpfs,target=/t,size=64m", str) == Mount(type="tmpfs", target="/t",
                                                                     size_limit=64 << 20)
    assert parse_mount("type=secret,id=tok,required", str) == Mount(type="secret", cache_id="tok",
                                                                   required=True, readonly=True)
    assert parse_mount('type=bind,"target=/a b"', str).target == "/a b"
    with pytest.raises(InvalidArgument, match="unsupported mount type"):
        parse_mount("type=x", str)


@pytest.mark.parametrize("spec,message", [
    ("type=volume,target=/x", 'unsupported mount type "volume"'),
    ("type=cahce,target=/x", 'unsupported mount type "cahce" (did you mean cache?)'),
    ("type=bind,target=/x,mode=0700", 'mode not allowed for "bind" type mounts'),
    ("type=bind,target=/x,required", "unexpected key 'required' for mount type 'bind'"),
    ("type=bind,target=/x,size=1m", "unexpected key 'size' for mount type 'bind'"),
    ("type=cache,target=/x,sharing=all", 'unsupported sharing value "all"'),
    ("type=bind,target=/x,sharing=shared", "invalid cache sharing set for bind mount"),
    ("type=secret", "invalid secret mount. one of source, target required"),
    ("type=secret,id=a,source=b", "both source and id can't be set"),
    ("type=secret,id=a,from=b", "secret mount should not have a from"),
    ("type=cache,target=/x,uid=x", "invalid value x for uid"),
    ("type=cache,target=/x,mode=9", "invalid value 9 for mode"),
    ("type=bind,target=/x,ro=maybe", "invalid value for ro: maybe"),
    ("type=bind,target", "invalid field 'target' must be a key=value pair"),
    ("type=bind,targte=/x", "unexpected key 'targte' in 'targte=/x' (did you mean target?)"),
])
def test_mount_errors(spec, message):
    instr = parse_instructions(f"RUN --mount={spec} x\n")[0]
    with pytest.raises(InvalidArgument) as info:
        run_mounts(instr, str)
    assert str(info.value) == f"Dockerfile parse error line 1: {message}"


def test_run_mounts_expand_values():
    instr = one("RUN --mount=type=cache,target=$CACHE,id=${ID:-dflt} x")
    env = {"CACHE": "/c"}
    [mount] = run_mounts(instr, lambda w: expand_word(w, env))
    assert (mount.target, mount.cache_id) == ("/c", "dflt")


def expand_word(word, env):
    from berth.build.shell import process_word
    return process_word(word, env)


# --- stages ------------------------------------------------------------------------------


def test_parse_stages():
    meta, stages = parse_stages("ARG V=1\nARG W\nFROM a:$V AS one\nRUN x\nFROM one\nCOPY --from=one /a /b\n")
    assert [a.args for a in meta] == [(("V", "1"),), (("W", None),)]
    assert [s.name for s in stages] == ["one", None]
    assert [type(i) for i in stages[0].instructions] == [RunInstr]
    assert stages[1].base.image == "one"
    with pytest.raises(InvalidArgument, match=r"^Dockerfile parse error line 2: no build stage in current context$"):
        parse_stages("ARG V\nRUN x\n")


# --- expansion -------------------------------------------------------------------------------


def test_expanded_fields_name_real_fields():
    by_name = {cls.keyword.lower(): cls for cls in Instruction.__subclasses__()}
    for name, fields in EXPANDED_FIELDS.items():
        assert set(fields) <= set(by_name[name].__dataclass_fields__), name
    assert not {"cmd", "entrypoint", "healthcheck", "shell", "onbuild", "maintainer"} & set(EXPANDED_FIELDS)


def test_expand_instruction():
    env = ["HOME=/root", "PORTS=80 443", "U=app", "Q=a b"]
    assert expand_instruction(one('ENV A=$HOME/x B="$Q" C=\'$HOME\''), env).pairs == (
        ("A", "/root/x"), ("B", "a b"), ("C", "$HOME"))
    assert expand_instruction(one("EXPOSE $PORTS 8080"), env).ports == ("80", "443", "8080")
    assert expand_instruction(one("USER ${U}:${G:-staff}"), env).user == "app:staff"
    assert expand_instruction(one("WORKDIR $HOME/src"), env).path == "/root/src"
    assert expand_instruction(one('VOLUME ["$HOME/v"]'), env).volumes == ("/root/v",)
    assert expand_instruction(one("STOPSIGNAL ${SIG:-SIGTERM}"), env).signal == "SIGTERM"
    assert expand_instruction(one("LABEL $U=$HOME"), env).pairs == (("app", "/root"),)
    assert expand_instruction(one("ARG X=$HOME"), env).args == (("X", "/root"),)
    copy = expand_instruction(one("COPY --chown=$U --from=$U $HOME/a* /dst/"), env)
    assert (copy.sources, copy.dest, copy.chown, copy.from_) == (("/root/a*",), "/dst/", "app", "$U")
    add = expand_instruction(one("ADD --checksum=$U --chmod=$U a b"), env)
    assert (add.checksum, add.chmod) == ("app", "$U")
    cmd = one("CMD echo $HOME")
    assert expand_instruction(cmd, env) is cmd
    heredocs = parse_instructions("COPY <<A <<'B' /d/\n\"$HOME\"\nA\n$HOME\nB\n")[0]
    assert [f.data for f in expand_instruction(heredocs, env).heredocs] == ['"/root"\n', "$HOME\n"]


def test_expand_with_backtick_escape_and_errors():
    assert expand_instruction(one("WORKDIR c:\\x`$y"), {}, escape="`").path == "c:\\x$y"
    with pytest.raises(InvalidArgument, match=r"^Dockerfile parse error line 1: failed to process"):
        expand_instruction(one("USER ${X:?must be set}"), {})


# --- commit/import --change and image configs ---------------------------------------------------


def test_change_commands_are_dockers():
    assert CHANGE_COMMANDS == {"cmd", "entrypoint", "env", "expose", "healthcheck", "label", "onbuild",
                               "stopsignal", "user", "volume", "workdir"}


def test_parse_change():
    assert parse_change('CMD ["x"]') == CmdInstr(cmd=("x",), prepend_shell=False, original='CMD ["x"]',
                                                 start_line=1, end_line=1)
    assert isinstance(parse_change("expose 80"), ExposeInstr)
    for bad, name in (("RUN x", "RUN"), ("copy a b", "copy"), ("SHELL [\"a\"]", "SHELL"), ("FOO x", "FOO"),
                      ("FROM x", "FROM"), ("ADD a b", "ADD"), ("ARG x", "ARG"), ("MAINTAINER m", "MAINTAINER")):
        with pytest.raises(InvalidArgument, match=rf"^{name} is not a valid change command$"):
            parse_change(bad)
    with pytest.raises(InvalidArgument, match=r"^Unknown flag: x$"):
        parse_change("USER --x=1 root")
    with pytest.raises(InvalidArgument, match="expected one instruction"):
        parse_change("USER a\nUSER b")
    assert [type(i) for i in parse_changes(["ENV a=b", "CMD x"])] == [EnvInstr, CmdInstr]
    assert parse_changes([]) == []


BASE = {"Env": ["PATH=/usr/bin", "HOME=/root"], "Cmd": ["sh"], "WorkingDir": "/app", "Labels": {"a": "1"}}


def test_apply_does_not_mutate_its_input():
    before = {k: (v.copy() if hasattr(v, "copy") else v) for k, v in BASE.items()}
    apply_changes(BASE, ["ENV X=1", "LABEL b=2", "VOLUME /v", "EXPOSE 1", "ONBUILD RUN x"])
    assert BASE == before


def test_apply_env_replaces_in_place_and_expands_with_the_previous_env():
    out = apply_changes(BASE, ['ENV HOME=/home/u X="$HOME/x"', "ENV Y=$HOME", "ENV PATH /bin:$PATH"])
    assert out["Env"] == ["PATH=/bin:/usr/bin", "HOME=/home/u", "X=/root/x", "Y=/home/u"]


def test_apply_cmd_and_entrypoint():
    assert apply_changes(BASE, ["CMD echo hi"])["Cmd"] == ["/bin/sh", "-c", "echo hi"]
    assert apply_changes({**BASE, "Shell": ["bash", "-ec"]}, ["CMD echo hi"])["Cmd"] == ["bash", "-ec", "echo hi"]
    assert apply_changes(BASE, ["CMD []"])["Cmd"] == []
    # An ENTRYPOINT drops the inherited Cmd, not one set by the same changes.
    out = apply_changes(BASE, ['ENTRYPOINT ["/bin/app"]'])
    assert (out["Entrypoint"], out["Cmd"]) == (["/bin/app"], None)
    out = apply_changes(BASE, ['CMD ["--help"]', "ENTRYPOINT /bin/app -v"])
    assert (out["Entrypoint"], out["Cmd"]) == (["/bin/sh", "-c", "/bin/app -v"], ["--help"])
    out = apply_changes(BASE, ['ENTRYPOINT ["/bin/app"]', 'CMD ["x"]'])
    assert (out["Entrypoint"], out["Cmd"]) == (["/bin/app"], ["x"])
    assert apply_changes({**BASE, "Entrypoint": ["/e"]}, ["ENTRYPOINT []"])["Entrypoint"] is None
    out = apply_to_config(BASE, one('ENTRYPOINT ["/e"]'), cmd_set=True)
    assert out["Cmd"] == ["sh"]


def test_apply_cmd_is_not_expanded():
    assert apply_changes(BASE, ['CMD ["$HOME"]'])["Cmd"] == ["$HOME"]


def test_apply_workdir():
    assert apply_changes(BASE, ["WORKDIR sub"])["WorkingDir"] == "/app/sub"
    assert apply_changes(BASE, ["WORKDIR ../x/./y/"])["WorkingDir"] == "/x/y"
    assert apply_changes(BASE, ["WORKDIR $HOME"])["WorkingDir"] == "/root"
    assert apply_changes({}, ["WORKDIR rel"])["WorkingDir"] == "/rel"
    assert apply_changes({}, ["WORKDIR //abs//"])["WorkingDir"] == "/abs"


def test_apply_expose_volume_label_user_onbuild_stopsignal():
    out = apply_changes(BASE, ["EXPOSE 80 53/UDP 8000-8001/tcp 127.0.0.1:9000:9000 [::1]:1:2/sctp", "VOLUME /data [\"/x\"]",
                               'VOLUME ["/y", "/z"]', 'LABEL b=2 "c d"="e f"', "USER 1000:1000",
                               "ONBUILD RUN make", "ONBUILD COPY . /src", "STOPSIGNAL SIGINT"])
    assert out["ExposedPorts"] == {"80/tcp": {}, "53/udp": {}, "8000/tcp": {}, "8001/tcp": {}, "9000/tcp": {},
                                   "2/sctp": {}}
    # Not JSON when mixed with other words: the quotes go in expansion.
    assert out["Volumes"] == {"/data": {}, "[/x]": {}, "/y": {}, "/z": {}}
    assert out["Labels"] == {"a": "1", "b": "2", "c d": "e f"}
    assert out["User"] == "1000:1000"
    assert out["OnBuild"] == ["RUN make", "COPY . /src"]
    assert out["StopSignal"] == "SIGINT"
    for signal in ("9", "KILL", "sigrtmin+3", "SIGRTMAX-2"):
        assert apply_changes({}, [f"STOPSIGNAL {signal}"])["StopSignal"] == signal


@pytest.mark.parametrize("change,message", [
    ("STOPSIGNAL BOGUS", "Invalid signal: BOGUS"),
    ("STOPSIGNAL 0", "Invalid signal: 0"),
    ("EXPOSE 80/xyz", "invalid proto: xyz"),
    ("EXPOSE 99999", "invalid containerPort: 99999"),
    ("EXPOSE 90-80", "invalid containerPort: 90-80"),
    ("EXPOSE nope:80", "invalid hostPort: nope"),
    ("EXPOSE nope:1:80", "invalid IP address: nope"),
])
def test_apply_errors(change, message):
    with pytest.raises(InvalidArgument) as info:
        apply_changes({}, [change])
    assert str(info.value) == message


def test_apply_healthcheck():
    out = apply_changes(BASE, ["HEALTHCHECK --interval=30s --retries=2 CMD curl -f localhost"])
    assert out["Healthcheck"] == {"Test": ["CMD-SHELL", "curl -f localhost"], "Interval": 30_000_000_000,
                                  "Retries": 2}
    assert apply_changes(out, ["HEALTHCHECK NONE"])["Healthcheck"] == {"Test": ["NONE"]}


def test_apply_builder_only_instructions():
    assert apply_to_config(BASE, one('SHELL ["/bin/bash", "-c"]'))["Shell"] == ["/bin/bash", "-c"]
    assert apply_to_config(BASE, one("MAINTAINER me")) == BASE
    with pytest.raises(InvalidArgument, match="RUN does not change the image config"):
        apply_to_config(BASE, one("RUN x"))


def test_apply_with_explicit_env_or_none():
    instr = one("USER $WHO")
    assert apply_to_config({}, instr, {"WHO": "bob"})["User"] == "bob"
    assert apply_to_config({}, instr)["User"] == "$WHO"


def test_instruction_types():
    types = {type(one(line)) for line in (
        "FROM a", "RUN a", "CMD a", "ENTRYPOINT a", "ENV a=b", "ARG a", "LABEL a=b", "EXPOSE 1", "ADD a b",
        "COPY a b", "USER a", "VOLUME a", "WORKDIR a", "ONBUILD RUN a", "STOPSIGNAL 1", "HEALTHCHECK NONE",
        'SHELL ["a"]', "MAINTAINER a")}
    assert types == {FromInstr, RunInstr, CmdInstr, EntrypointInstr, EnvInstr, ArgInstr, LabelInstr,
                     ExposeInstr, AddInstr, CopyInstr, UserInstr, VolumeInstr, WorkdirInstr, OnbuildInstr,
                     StopsignalInstr, HealthcheckInstr, ShellInstr, MaintainerInstr}
    assert one("RUN a").name == "run"


def test_instruction_error_carries_the_line():
    with pytest.raises(InvalidArgument, match=r"^Dockerfile parse error line 4: USER requires exactly one argument$"):
        parse_instructions("FROM a\nRUN b \\\n  c\nUSER\n")
    node = parse("FROM a\nFOO b\n", strict=False).nodes[1]
    with pytest.raises(InvalidArgument, match=r"^Dockerfile parse error line 2: unknown instruction: FOO"):
        parse_instruction(node)
