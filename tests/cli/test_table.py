"""berth.cli.table against the docker CLI's formatter and its tabwriter.

DOCKER_PS holds the exact stdout of the real docker CLI 28.2.2 running
`docker ps --format FORMAT` (TZ=UTC) against a stand-in Engine API that
served seven containers; ROWS are the values docker computed for them, taken
from its own `docker ps --format json` (with the raw label maps under
"_labels" for the Label method).  The rows exercise wide (CJK, emoji) and
zero-width (combining accent) characters, an empty name and a name with a
tab in it.
"""

import pytest

from berth.cli.gotemplate import TemplateError
from berth.cli.table import TabWriter, display_width, format_rows, header_label, render_table, tabwrite

# docker/cli formatter.ContainerContext's header map (docker 28.2).
HEADERS = {"ID": "CONTAINER ID", "Names": "NAMES", "Image": "IMAGE", "Command": "COMMAND", "CreatedAt": "CREATED AT",
           "RunningFor": "CREATED", "Ports": "PORTS", "State": "STATE", "Status": "STATUS", "Size": "SIZE",
           "Labels": "LABELS", "Mounts": "MOUNTS", "LocalVolumes": "LOCAL VOLUMES", "Networks": "NETWORKS",
           "Platform": "PLATFORM"}
PS_DEFAULT = r"table {{.ID}}\t{{.Image}}\t{{.Command}}\t{{.RunningFor}}\t{{.Status}}\t{{.Ports}}\t{{.Names}}"

ROWS = [
    {'Command': '"sh -c \'echo hi\'"', 'CreatedAt': '2023-11-14 22:13:20 +0000 UTC', 'ID': '000000000000', 'Image': 'img0', 'Labels': 'a=<b>,k=v', 'LocalVolumes': '0', 'Mounts': '', 'Names': 'a', 'Networks': '', 'Platform': None, 'Ports': '', 'RunningFor': '3 years ago', 'Size': '0B', 'State': 'running', 'Status': 'Up 5 minutes', '_labels': {'k': 'v', 'a': '<b>'}},
    {'Command': '"nginx -g \'daemon of…"', 'CreatedAt': '2023-11-14 22:13:20 +0000 UTC', 'ID': '000000000000', 'Image': 'img1', 'Labels': 'com.docker.compose.project=web', 'LocalVolumes': '0', 'Mounts': '', 'Names': '日本語コンテナ', 'Networks': '', 'Platform': None, 'Ports': '', 'RunningFor': '3 years ago', 'Size': '0B', 'State': 'running', 'Status': 'Exited (0) 2 hours ago', '_labels': {'com.docker.compose.project': 'web'}},
    {'Command': '""', 'CreatedAt': '2023-11-14 22:13:20 +0000 UTC', 'ID': '000000000000', 'Image': 'img2', 'Labels': '', 'LocalVolumes': '0', 'Mounts': '', 'Names': 'étude', 'Networks': '', 'Platform': None, 'Ports': '', 'RunningFor': '3 years ago', 'Size': '0B', 'State': 'running', 'Status': 'Created', '_labels': None},
    {'Command': '"/bin/a-very-long-co…"', 'CreatedAt': '2023-11-14 22:13:20 +0000 UTC', 'ID': '000000000000', 'Image': 'img3', 'Labels': '', 'LocalVolumes': '0', 'Mounts': '', 'Names': '🐳whale', 'Networks': '', 'Platform': None, 'Ports': '', 'RunningFor': '3 years ago', 'Size': '0B', 'State': 'running', 'Status': 'Up 1 second (healthy)', '_labels': {}},
    {'Command': '"\\"q\\""', 'CreatedAt': '2023-11-14 22:13:20 +0000 UTC', 'ID': '000000000000', 'Image': 'img4', 'Labels': 'k=', 'LocalVolumes': '0', 'Mounts': '', 'Names': '', 'Networks': '', 'Platform': None, 'Ports': '', 'RunningFor': '3 years ago', 'Size': '0B', 'State': 'running', 'Status': 'Up 3 days', '_labels': {'k': ''}},
    {'Command': '"x"', 'CreatedAt': '2023-11-14 22:13:20 +0000 UTC', 'ID': '000000000000', 'Image': 'img5', 'Labels': 'a=2,z=1', 'LocalVolumes': '0', 'Mounts': '', 'Names': 'xxxxxxxxxxxxxxxxxxxxxxxxx', 'Networks': '', 'Platform': None, 'Ports': '', 'RunningFor': '3 years ago', 'Size': '0B', 'State': 'running', 'Status': 'Restarting (1) 5 seconds ago', '_labels': {'z': '1', 'a': '2'}},
    {'Command': '"y"', 'CreatedAt': '2023-11-14 22:13:20 +0000 UTC', 'ID': '000000000000', 'Image': 'img6', 'Labels': 'k=t', 'LocalVolumes': '0', 'Mounts': '', 'Names': 'tab\there', 'Networks': '', 'Platform': None, 'Ports': '', 'RunningFor': '3 years ago', 'Size': '0B', 'State': 'running', 'Status': 'Up', '_labels': {'k': 't'}},
]

DOCKER_PS = [
    ('table',
     'CONTAINER ID   IMAGE     COMMAND                  CREATED       STATUS                         PORTS     NAMES\n000000000000   img0      "sh -c \'echo hi\'"        3 years ago   Up 5 minutes                             a\n000000000000   img1      "nginx -g \'daemon of…"   3 years ago   Exited (0) 2 hours ago                   日本語コンテナ\n000000000000   img2      ""                       3 years ago   Created                                  étude\n000000000000   img3      "/bin/a-very-long-co…"   3 years ago   Up 1 second (healthy)                    🐳whale\n000000000000   img4      "\\"q\\""                  3 years ago   Up 3 days                                \n000000000000   img5      "x"                      3 years ago   Restarting (1) 5 seconds ago             xxxxxxxxxxxxxxxxxxxxxxxxx\n000000000000   img6      "y"                      3 years ago   Up                                       tab       here\n'),
    ('json',
     '{"Command":"\\"sh -c \'echo hi\'\\"","CreatedAt":"2023-11-14 22:13:20 +0000 UTC","ID":"000000000000","Image":"img0","Labels":"a=\\u003cb\\u003e,k=v","LocalVolumes":"0","Mounts":"","Names":"a","Networks":"","Platform":null,"Ports":"","RunningFor":"3 years ago","Size":"0B","State":"running","Status":"Up 5 minutes"}\n{"Command":"\\"nginx -g \'daemon of…\\"","CreatedAt":"2023-11-14 22:13:20 +0000 UTC","ID":"000000000000","Image":"img1","Labels":"com.docker.compose.project=web","LocalVolumes":"0","Mounts":"","Names":"日本語コンテナ","Networks":"","Platform":null,"Ports":"","RunningFor":"3 years ago","Size":"0B","State":"running","Status":"Exited (0) 2 hours ago"}\n{"Command":"\\"\\"","CreatedAt":"2023-11-14 22:13:20 +0000 UTC","ID":"000000000000","Image":"img2","Labels":"","LocalVolumes":"0","Mounts":"","Names":"étude","Networks":"","Platform":null,"Ports":"","RunningFor":"3 years ago","Size":"0B","State":"running","Status":"Created"}\n{"Command":"\\"/bin/a-very-long-co…\\"","CreatedAt":"2023-11-14 22:13:20 +0000 UTC","ID":"000000000000","Image":"img3","Labels":"","LocalVolumes":"0","Mounts":"","Names":"🐳whale","Networks":"","Platform":null,"Ports":"","RunningFor":"3 years ago","Size":"0B","State":"running","Status":"Up 1 second (healthy)"}\n{"Command":"\\"\\\\\\"q\\\\\\"\\"","CreatedAt":"2023-11-14 22:13:20 +0000 UTC","ID":"000000000000","Image":"img4","Labels":"k=","LocalVolumes":"0","Mounts":"","Names":"","Networks":"","Platform":null,"Ports":"","RunningFor":"3 years ago","Size":"0B","State":"running","Status":"Up 3 days"}\n{"Command":"\\"x\\"","CreatedAt":"2023-11-14 22:13:20 +0000 UTC","ID":"000000000000","Image":"img5","Labels":"a=2,z=1","LocalVolumes":"0","Mounts":"","Names":"xxxxxxxxxxxxxxxxxxxxxxxxx","Networks":"","Platform":null,"Ports":"","RunningFor":"3 years ago","Size":"0B","State":"running","Status":"Restarting (1) 5 seconds ago"}\n{"Command":"\\"y\\"","CreatedAt":"2023-11-14 22:13:20 +0000 UTC","ID":"000000000000","Image":"img6","Labels":"k=t","LocalVolumes":"0","Mounts":"","Names":"tab\\there","Networks":"","Platform":null,"Ports":"","RunningFor":"3 years ago","Size":"0B","State":"running","Status":"Up"}\n'),
    ('{{json .}}',
     '{"Command":"\\"sh -c \'echo hi\'\\"","CreatedAt":"2023-11-14 22:13:20 +0000 UTC","ID":"000000000000","Image":"img0","Labels":"a=\\u003cb\\u003e,k=v","LocalVolumes":"0","Mounts":"","Names":"a","Networks":"","Platform":null,"Ports":"","RunningFor":"3 years ago","Size":"0B","State":"running","Status":"Up 5 minutes"}\n{"Command":"\\"nginx -g \'daemon of…\\"","CreatedAt":"2023-11-14 22:13:20 +0000 UTC","ID":"000000000000","Image":"img1","Labels":"com.docker.compose.project=web","LocalVolumes":"0","Mounts":"","Names":"日本語コンテナ","Networks":"","Platform":null,"Ports":"","RunningFor":"3 years ago","Size":"0B","State":"running","Status":"Exited (0) 2 hours ago"}\n{"Command":"\\"\\"","CreatedAt":"2023-11-14 22:13:20 +0000 UTC","ID":"000000000000","Image":"img2","Labels":"","LocalVolumes":"0","Mounts":"","Names":"étude","Networks":"","Platform":null,"Ports":"","RunningFor":"3 years ago","Size":"0B","State":"running","Status":"Created"}\n{"Command":"\\"/bin/a-very-long-co…\\"","CreatedAt":"2023-11-14 22:13:20 +0000 UTC","ID":"000000000000","Image":"img3","Labels":"","LocalVolumes":"0","Mounts":"","Names":"🐳whale","Networks":"","Platform":null,"Ports":"","RunningFor":"3 years ago","Size":"0B","State":"running","Status":"Up 1 second (healthy)"}\n{"Command":"\\"\\\\\\"q\\\\\\"\\"","CreatedAt":"2023-11-14 22:13:20 +0000 UTC","ID":"000000000000","Image":"img4","Labels":"k=","LocalVolumes":"0","Mounts":"","Names":"","Networks":"","Platform":null,"Ports":"","RunningFor":"3 years ago","Size":"0B","State":"running","Status":"Up 3 days"}\n{"Command":"\\"x\\"","CreatedAt":"2023-11-14 22:13:20 +0000 UTC","ID":"000000000000","Image":"img5","Labels":"a=2,z=1","LocalVolumes":"0","Mounts":"","Names":"xxxxxxxxxxxxxxxxxxxxxxxxx","Networks":"","Platform":null,"Ports":"","RunningFor":"3 years ago","Size":"0B","State":"running","Status":"Restarting (1) 5 seconds ago"}\n{"Command":"\\"y\\"","CreatedAt":"2023-11-14 22:13:20 +0000 UTC","ID":"000000000000","Image":"img6","Labels":"k=t","LocalVolumes":"0","Mounts":"","Names":"tab\\there","Networks":"","Platform":null,"Ports":"","RunningFor":"3 years ago","Size":"0B","State":"running","Status":"Up"}\n'),
    ('table {{.Names}}\\t{{.Image}}\\t{{.Status}}',
     'NAMES                       IMAGE     STATUS\na                           img0      Up 5 minutes\n日本語コンテナ              img1      Exited (0) 2 hours ago\nétude                       img2      Created\n🐳whale                     img3      Up 1 second (healthy)\n                            img4      Up 3 days\nxxxxxxxxxxxxxxxxxxxxxxxxx   img5      Restarting (1) 5 seconds ago\ntab                         here      img6      Up\n'),
    ('{{.Names}}\\t{{.Image}}',
     'a\timg0\n日本語コンテナ\timg1\nétude\timg2\n🐳whale\timg3\n\timg4\nxxxxxxxxxxxxxxxxxxxxxxxxx\timg5\ntab\there\timg6\n'),
    ('table {{.ID}}\\t{{.Names}}',
     'CONTAINER ID   NAMES\n000000000000   a\n000000000000   日本語コンテナ\n000000000000   étude\n000000000000   🐳whale\n000000000000   \n000000000000   xxxxxxxxxxxxxxxxxxxxxxxxx\n000000000000   tab       here\n'),
    ('   table   {{.Names}}\\t{{.Status}}   ',
     'table   a\tUp 5 minutes\ntable   日本語コンテナ\tExited (0) 2 hours ago\ntable   étude\tCreated\ntable   🐳whale\tUp 1 second (healthy)\ntable   \tUp 3 days\ntable   xxxxxxxxxxxxxxxxxxxxxxxxx\tRestarting (1) 5 seconds ago\ntable   tab\there\tUp\n'),
    ('table {{.Names}}\\t{{.Labels}}\\t{{.Label "k"}}\\t{{json .Names}}\\t{{upper .Names}}\\t{{pad .Names 1 1}}\\t{{truncate .Names 2}}',
     'NAMES                       LABELS                           k         NAMES                         NAMES                        NAMES                        NAMES\na                           a=<b>,k=v                        v         "a"                           A                            a                            a\n日本語コンテナ              com.docker.compose.project=web             "日本語コンテナ"              日本語コンテナ               日本語コンテナ               ��\nétude                                                                  "étude"                       ÉTUDE                        étude                        e�\n🐳whale                                                                "🐳whale"                     🐳WHALE                      🐳whale                      ��\n                            k=                                         ""                                                                                      \nxxxxxxxxxxxxxxxxxxxxxxxxx   a=2,z=1                                    "xxxxxxxxxxxxxxxxxxxxxxxxx"   XXXXXXXXXXXXXXXXXXXXXXXXX    xxxxxxxxxxxxxxxxxxxxxxxxx    xx\ntab                         here                             k=t       t                             "tab\\there"                 TAB                           HERE       tab      here      ta\n'),
    ('table {{.Names}}: {{.Status}}',
     'NAMES: STATUS\na: Up 5 minutes\n日本語コンテナ: Exited (0) 2 hours ago\nétude: Created\n🐳whale: Up 1 second (healthy)\n: Up 3 days\nxxxxxxxxxxxxxxxxxxxxxxxxx: Restarting (1) 5 seconds ago\ntab       here: Up\n'),
    ('table {{.Names}}\\t{{.Label "com.docker.compose.project"}}\\t{{.Label "a"}}',
     'NAMES                       project   a\na                                     <b>\n日本語コンテナ              web       \nétude                                 \n🐳whale                               \n                                      \nxxxxxxxxxxxxxxxxxxxxxxxxx             2\ntab                         here                \n'),
    ('table {{.Names}}\\t{{.Status}}\\t',
     'NAMES                       STATUS                         \na                           Up 5 minutes                   \n日本語コンテナ              Exited (0) 2 hours ago         \nétude                       Created                        \n🐳whale                     Up 1 second (healthy)          \n                            Up 3 days                      \nxxxxxxxxxxxxxxxxxxxxxxxxx   Restarting (1) 5 seconds ago   \ntab                         here                           Up        \n'),
    ('table {{.Names}}\\t\\t{{.Status}}',
     'NAMES                                 STATUS\na                                     Up 5 minutes\n日本語コンテナ                        Exited (0) 2 hours ago\nétude                                 Created\n🐳whale                               Up 1 second (healthy)\n                                      Up 3 days\nxxxxxxxxxxxxxxxxxxxxxxxxx             Restarting (1) 5 seconds ago\ntab                         here                Up\n'),
    ('table {{range $i, $e := split .Labels ","}}{{$i}}{{$e}} {{end}}\\t{{.Image}}',
     '\n0a=<b> 1k=v                        img0\n0com.docker.compose.project=web    img1\n0                                  img2\n0                                  img3\n0k=                                img4\n0a=2 1z=1                          img5\n0k=t                               img6\n'),
    ('table {{.Image}}\\v{{.Status}}\\t{{.Names}}',
     'IMAGE\\vSTATUS                        NAMES\nimg0\\vUp 5 minutes                   a\nimg1\\vExited (0) 2 hours ago         日本語コンテナ\nimg2\\vCreated                        étude\nimg3\\vUp 1 second (healthy)          🐳whale\nimg4\\vUp 3 days                      \nimg5\\vRestarting (1) 5 seconds ago   xxxxxxxxxxxxxxxxxxxxxxxxx\nimg6\\vUp                             tab       here\n'),
    ('{{.Names}}|{{.Platform}}|{{.Size}}|{{.LocalVolumes}}|{{.Command}}|{{.CreatedAt}}|{{.RunningFor}}',
     'a|<nil>|0B|0|"sh -c \'echo hi\'"|2023-11-14 22:13:20 +0000 UTC|3 years ago\n日本語コンテナ|<nil>|0B|0|"nginx -g \'daemon of…"|2023-11-14 22:13:20 +0000 UTC|3 years ago\nétude|<nil>|0B|0|""|2023-11-14 22:13:20 +0000 UTC|3 years ago\n🐳whale|<nil>|0B|0|"/bin/a-very-long-co…"|2023-11-14 22:13:20 +0000 UTC|3 years ago\n|<nil>|0B|0|"\\"q\\""|2023-11-14 22:13:20 +0000 UTC|3 years ago\nxxxxxxxxxxxxxxxxxxxxxxxxx|<nil>|0B|0|"x"|2023-11-14 22:13:20 +0000 UTC|3 years ago\ntab\there|<nil>|0B|0|"y"|2023-11-14 22:13:20 +0000 UTC|3 years ago\n'),
    ('table {{.Image}}\x0b{{.Status}}\t{{.Names}}',
     'IMAGE     STATUS                         NAMES\nimg0      Up 5 minutes                   a\nimg1      Exited (0) 2 hours ago         日本語コンテナ\nimg2      Created                        étude\nimg3      Up 1 second (healthy)          🐳whale\nimg4      Up 3 days                      \nimg5      Restarting (1) 5 seconds ago   xxxxxxxxxxxxxxxxxxxxxxxxx\nimg6      Up                             tab       here\n'),
    ('table {{.Image}}\t{{.Status}}\x0c{{.Names}}\t{{.Image}}',
     'IMAGE     STATUS\nNAMES     IMAGE\nimg0      Up 5 minutes\na         img0\nimg1      Exited (0) 2 hours ago\n日本語コンテナ   img1\nimg2             Created\nétude     img2\nimg3      Up 1 second (healthy)\n🐳whale   img3\nimg4      Up 3 days\n          img4\nimg5      Restarting (1) 5 seconds ago\nxxxxxxxxxxxxxxxxxxxxxxxxx   img5\nimg6                        Up\ntab       here      img6\n'),
    ('table {{.Image}}\x0b\x0b{{.Names}}\t.',
     'IMAGE               NAMES                       .\nimg0                a                           .\nimg1                日本語コンテナ              .\nimg2                étude                       .\nimg3                🐳whale                     .\nimg4                                            .\nimg5                xxxxxxxxxxxxxxxxxxxxxxxxx   .\nimg6                tab                         here      .\n'),
]



def _rows():
    out = []
    for row in ROWS:
        row = dict(row)
        labels = row.pop("_labels") or {}
        row["Label"] = lambda name, labels=labels: labels.get(name, "")
        out.append(row)
    return out


@pytest.mark.parametrize("fmt,expected", DOCKER_PS, ids=[c[0] for c in DOCKER_PS])
def test_matches_docker_ps(fmt, expected):
    got = format_rows(fmt, _rows(), HEADERS, default_table=PS_DEFAULT, type_name="*formatter.ContainerContext")
    assert got == expected


def test_unknown_field_is_an_error_with_dockers_prefix():
    with pytest.raises(TemplateError) as e:
        format_rows(r"table {{.Names}}\t{{.Nope}}", _rows(), HEADERS, type_name="*formatter.ContainerContext")
    assert str(e.value) == ('template parsing error: template: :1:13: executing "" at <.Nope>: '
                            "can't evaluate field Nope in type *formatter.ContainerContext")
    with pytest.raises(TemplateError, match=r"^template parsing error: template: :1: unclosed action$"):
        format_rows("{{.Names", _rows(), HEADERS)


def test_no_rows_still_prints_the_header():
    assert format_rows(r"table {{.ID}}\t{{.Names}}", [], HEADERS) == "CONTAINER ID   NAMES\n"
    assert format_rows("{{.ID}}", [], HEADERS) == ""
    assert format_rows("json", [], HEADERS) == ""


def test_header_without_a_heading_shows_no_value():
    out = format_rows(r"table {{.A}}\t{{.B}}", [{"A": 1, "B": 2}], {"A": "AA"})
    assert out == "AA        <no value>\n1         2\n"


def test_header_label():
    # SubHeaderContext.Label: the last dotted part, dashes and underscores as spaces.
    assert header_label("com.docker.compose.project") == "project"
    assert header_label("org.opencontainers.image.ref_name-x") == "ref name x"


def test_lazy_fields_in_json():
    calls = []

    def size():
        calls.append(1)
        return "1.2kB"

    rows = [{"ID": "abc", "Size": size, "Label": lambda name: "", "Tag": "<none>"}]
    assert format_rows("{{.ID}}", rows) == "abc\n"
    assert calls == []
    # JSON holds every niladic method's result, keys sorted, HTML-escaped, as docker's MarshalJSON does.
    assert format_rows("json", rows) == '{"ID":"abc","Size":"1.2kB","Tag":"\\u003cnone\\u003e"}\n'


def test_tabwriter_columns():
    # minwidth 10, padding 3: a column is as wide as its widest cell plus 3, and at least 10.
    assert tabwrite("a\tb\tc\nlonger name\t\tx\n") == "a             b         c\nlonger name             x\n"
    # Text after the last tab is not a column cell, and a line without tabs ends every column.
    assert tabwrite("ab\tc\nno tabs here\nx\ty\n") == "ab        c\nno tabs here\nx         y\n"
    # Without a final newline the last line is still written, unpadded.
    assert tabwrite("a\tb") == "a         b"


def test_tabwriter_options():
    # Go's text/tabwriter ExampleWriter_Init: tab padding with tab stops of 8, then right alignment.
    w = TabWriter(0, 8, 0, "\t")
    w.write("a\tb\tc\td\t.\n123\t12345\t1234567\t123456789\t.\n\n")
    assert w.flush() == "a\tb\tc\td\t\t.\n123\t12345\t1234567\t123456789\t.\n\n"
    w = TabWriter(5, 0, 1, " ", align_right=True)
    w.write("a\tb\tc\td\t.\n123\t12345\t1234567\t123456789\t.\n")
    assert w.flush() == "    a     b       c         d.\n  123 12345 1234567 123456789.\n"
    w = TabWriter(0, 0, 1, ".", discard_empty_columns=True)
    w.write("a\v\vb\n")
    assert w.flush() == "a.b\n"


def test_display_width():
    assert display_width("abc") == 3
    assert display_width("日本語") == 6
    assert display_width("e\u0301tude") == 5
    assert display_width("🐳") == 2
    assert display_width("±§") == 2  # East Asian ambiguous counts as narrow


def test_render_table():
    out = render_table(["PID", "USER", "COMMAND"], [[1, "root", "sh -c sleep 100"], [42, "nobody", "sleep 100"]])
    assert out == ("PID       USER      COMMAND\n"
                   "1         root      sh -c sleep 100\n"
                   "42        nobody    sleep 100\n")
