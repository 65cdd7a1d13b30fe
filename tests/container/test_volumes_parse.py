"""`-v`, `--mount` and `--tmpfs` parsing against Docker's rules and words.

The tables follow moby's volume/mounts/linux_parser_test.go and docker/cli's
opts/mount_test.go and compose loader tests; the messages are the ones
dockerd and the docker CLI print.
"""

import pytest

from berth.container.volumes import (
    BIND, TMPFS, VOLUME, BindOptions, MountPoint, MountSpec, TmpfsOptions, VolumeOptions, check_tmpfs_options,
    check_volume_flag, clean_path, mount_options, parse_mount_spec, parse_tmpfs_spec, parse_volume_spec,
    ram_in_bytes, specs_from_host_config, tmpfs_options, validate_mount)
from berth.errors import InvalidArgument
from berth.runtime.builtin import linux

# -- -v, the daemon's ParseMountRaw ---------------------------------------------------

VALID_BINDS = [
    "/home", "/home:/home", "/home:/something/else", "/with space", "/home:/with space",
    "relative:/absolute-path", "hostPath:/containerPath:ro", "/hostPath:/containerPath:rw", "/rw:/ro",
    "/hostPath:/containerPath:shared", "/hostPath:/containerPath:rshared", "/hostPath:/containerPath:slave",
    "/hostPath:/containerPath:rslave", "/hostPath:/containerPath:private", "/hostPath:/containerPath:rprivate",
    "/hostPath:/containerPath:ro,shared", "/hostPath:/containerPath:ro,slave",
    "/hostPath:/containerPath:ro,private", "/hostPath:/containerPath:ro,z,shared",
    "/hostPath:/containerPath:ro,Z,slave", "/hostPath:/containerPath:Z,ro,slave",
    "/hostPath:/containerPath:slave,Z,ro", "/hostPath:/containerPath:Z,slave,ro",
    "/hostPath:/containerPath:slave,ro,Z", "/hostPath:/containerPath:rslave,ro,Z",
    "/hostPath:/containerPath:ro,rshared,Z", "/hostPath:/containerPath:ro,Z,rprivate",
    "name:/data:nocopy", "name:/data:ro,nocopy", "/a:/b:cached", "/a:/b:delegated,ro",
]

INVALID_BINDS = {
    "": "invalid volume specification: ''",
    "./": "invalid volume specification: './': invalid mount config for type \"volume\": "
          "invalid mount path: './' mount path must be absolute",
    "../": "invalid volume specification: '../': invalid mount config for type \"volume\": "
           "invalid mount path: '../' mount path must be absolute",
    "/:../": "invalid volume specification: '/:../': invalid mount config for type \"bind\": "
             "invalid mount path: '../' mount path must be absolute",
    "/:path": "invalid volume specification: '/:path': invalid mount config for type \"bind\": "
              "invalid mount path: 'path' mount path must be absolute",
    "foo:bar": "invalid volume specification: 'foo:bar': invalid mount config for type \"volume\": "
               "invalid mount path: 'bar' mount path must be absolute",
    "/": "invalid volume specification: '/': invalid mount config for type \"volume\": "
         "invalid specification: destination can't be '/'",
    "/src:/": "invalid volume specification: '/src:/': invalid mount config for type \"bind\": "
              "invalid specification: destination can't be '/'",
    ":": "invalid volume specification: ':'",
    "/tmp:": "invalid volume specification: '/tmp:'",
    ":test": "invalid volume specification: ':test'",
    ":/test": "invalid volume specification: ':/test'",
    "tmp:": "invalid volume specification: 'tmp:'",
    ":test:": "invalid volume specification: ':test:'",
    "::": "invalid volume specification: '::'",
    ":::": "invalid volume specification: ':::'",
    "/tmp:::": "invalid volume specification: '/tmp:::'",
    ":/tmp::": "invalid volume specification: ':/tmp::'",
    "a:b:c:d": "invalid volume specification: 'a:b:c:d'",
    "/path:rw": "invalid volume specification: '/path:rw'",
    "/path:ro": "invalid volume specification: '/path:ro'",
    "/rw:rw": "invalid volume specification: '/rw:rw'",
    "path:ro": "invalid volume specification: 'path:ro'",
    "/path:/path:sw": "invalid mode: sw",
    "/path:/path:rwz": "invalid mode: rwz",
    "/path:/path:ro,rw": "invalid mode: ro,rw",
    "/path:/path:ro,": "invalid mode: ro,",
    "/path:/path:ro,rshared,rslave": "invalid mode: ro,rshared,rslave",
    "/path:/path:ro,z,rshared,rslave": "invalid mode: ro,z,rshared,rslave",
    "/path:shared": "invalid volume specification: '/path:shared'",
    "/path:slave": "invalid volume specification: '/path:slave'",
    "/path:private": "invalid volume specification: '/path:private'",
    "/a:/b:nocopy": "invalid volume specification: '/a:/b:nocopy': invalid mount config for type \"bind\": "
                    "field VolumeOptions must not be specified",
    **{f"name:/absolute-path:{p}": f"invalid volume specification: 'name:/absolute-path:{p}': "
                                   "invalid mount config for type \"volume\": field BindOptions must not be specified"
       for p in ("shared", "rshared", "slave", "rslave", "private", "rprivate")},
}


@pytest.mark.parametrize("raw", VALID_BINDS)
def test_valid_volume_specs(raw):
    parse_volume_spec(raw)


@pytest.mark.parametrize("raw,message", sorted(INVALID_BINDS.items()))
def test_invalid_volume_specs(raw, message):
    with pytest.raises(InvalidArgument) as e:
        parse_volume_spec(raw)
    assert str(e.value) == message


@pytest.mark.parametrize("raw,kind,target,source,rw,propagation,nocopy", [
    ("/tmp:/tmp1", BIND, "/tmp1", "/tmp", True, "", False),
    ("/tmp:/tmp2:ro", BIND, "/tmp2", "/tmp", False, "", False),
    ("/tmp:/tmp3:rw", BIND, "/tmp3", "/tmp", True, "", False),
    ("/tmp:/tmp4:ro,rshared", BIND, "/tmp4", "/tmp", False, "rshared", False),
    ("name:/named1", VOLUME, "/named1", "name", True, "", False),
    ("name:/named3:ro", VOLUME, "/named3", "name", False, "", False),
    ("local/name:/tmp:rw", VOLUME, "/tmp", "local/name", True, "", False),
    ("name:/data:nocopy", VOLUME, "/data", "name", True, "", True),
    ("/anonymous", VOLUME, "/anonymous", "", True, "", False),
])
def test_volume_spec_split(raw, kind, target, source, rw, propagation, nocopy):
    spec = parse_volume_spec(raw)
    assert (spec.type, spec.target, spec.source, not spec.readonly) == (kind, target, source, rw)
    assert (spec.bind.propagation if spec.bind else "") == propagation
    assert bool(spec.volume and spec.volume.nocopy) == nocopy
    assert spec.raw == raw


def test_volume_driver_applies_to_volumes_only():
    assert parse_volume_spec("name:/x", "external").volume.driver == "external"
    assert parse_volume_spec("/h:/x", "external").volume is None


# -- -v, the CLI's own pass -----------------------------------------------------------

@pytest.mark.parametrize("value,expected", [
    ("/data", ("/data", False)),
    ("ab", ("ab", False)),
    ("vol:/data", ("vol:/data", True)),
    ("/host:/data:ro", ("/host:/data:ro", True)),
    # A one-letter first field followed by a colon is a Windows drive to the CLI.
    ("a:b:c:d", ("a:b:c:d", True)),
    ("c:/foo", ("c:/foo", False)),
])
def test_volume_flag_split(value, expected):
    assert check_volume_flag(value) == expected


def test_volume_flag_makes_dot_paths_absolute(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert check_volume_flag("./sub:/x:ro") == (f"{tmp_path}/sub:/x:ro", True)
    assert check_volume_flag(".:/x") == (f"{tmp_path}:/x", True)
    assert check_volume_flag("../up:/x") == ("../up:/x", True)  # only ./ and . (docker/cli >= 23)


@pytest.mark.parametrize("value,message", [
    ("", "invalid empty volume spec"),
    ("ab:cd:ef:gh", "invalid spec: ab:cd:ef:gh: too many colons"),
    ("/a:/b:", "invalid spec: /a:/b:: empty section between colons"),
    ("/a::/b", "invalid spec: /a::/b: empty section between colons"),
    (":/b", "invalid spec: :/b: empty section between colons"),
])
def test_volume_flag_errors(value, message):
    with pytest.raises(InvalidArgument) as e:
        check_volume_flag(value)
    assert str(e.value) == message


# -- --mount ----------------------------------------------------------------------------

def test_mount_defaults_to_volume_and_keeps_fields():
    spec = parse_mount_spec("target=/data,source=vol,readonly")
    assert spec == MountSpec(type=VOLUME, source="vol", target="/data", readonly=True)
    assert parse_mount_spec("dst=/data").anonymous


@pytest.mark.parametrize("value,expected", [
    ("type=bind,source=/src,target=/dst", MountSpec(BIND, "/dst", "/src")),
    ("type=BIND,src=/src,dst=/dst,ro=true", MountSpec(BIND, "/dst", "/src", readonly=True)),
    ("type=bind,src=/src,destination=/dst,readonly=0", MountSpec(BIND, "/dst", "/src")),
    ("type=bind,src=/s,dst=/d,bind-propagation=rSHARED", MountSpec(BIND, "/d", "/s", bind=BindOptions("rshared"))),
    ("type=bind,src=/s,dst=/d,bind-nonrecursive", MountSpec(BIND, "/d", "/s", bind=BindOptions(nonrecursive=True))),
    ("type=bind,src=/s,dst=/d,bind-recursive=disabled",
     MountSpec(BIND, "/d", "/s", bind=BindOptions(nonrecursive=True))),
    ("type=bind,src=/s,dst=/d,readonly,bind-recursive=writable",
     MountSpec(BIND, "/d", "/s", readonly=True, bind=BindOptions(readonly_nonrecursive=True))),
    ("type=volume,src=v,dst=/d,volume-nocopy", MountSpec(VOLUME, "/d", "v", volume=VolumeOptions(nocopy=True, labels={}))),
    ("type=volume,src=v,dst=/d,volume-nocopy=false", MountSpec(VOLUME, "/d", "v", volume=VolumeOptions(labels={}))),
    ("type=volume,src=v,dst=/d,volume-label=a=b,volume-label=c,volume-driver=local",
     MountSpec(VOLUME, "/d", "v", volume=VolumeOptions(labels={"a": "b", "c": ""}, driver="local"))),
    ("type=volume,dst=/d,volume-opt=type=tmpfs,volume-opt=device=tmpfs,volume-opt=o=size=1m",
     MountSpec(VOLUME, "/d", volume=VolumeOptions(labels={}, driver_options={
         "type": "tmpfs", "device": "tmpfs", "o": "size=1m"}))),
    ("type=tmpfs,dst=/t,tmpfs-size=64m,tmpfs-mode=1770",
     MountSpec(TMPFS, "/t", tmpfs=TmpfsOptions(size=64 << 20, mode=0o1770))),
    ('type=bind,"src=/with,comma",dst=/d', MountSpec(BIND, "/d", "/with,comma")),
    ('type=bind,src="/q""uote",dst=/d', None),  # a quote inside an unquoted field
])
def test_mount_values(value, expected):
    if expected is None:
        with pytest.raises(InvalidArgument, match='bare " in non-quoted field'):
            parse_mount_spec(value)
        return
    assert parse_mount_spec(value) == expected


def test_mount_source_dot_paths_are_absolute(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert parse_mount_spec("type=bind,src=./a,dst=/x").source == f"{tmp_path}/a"
    assert parse_mount_spec("type=bind,src=.,dst=/x").source == str(tmp_path)


@pytest.mark.parametrize("value,message", [
    ("", "EOF"),
    ("type=volume", "target is required"),
    ("type=,target=/x", "type is required"),
    ("type=volume,target=/foo,source", "invalid field 'source' must be a key=value pair"),
    ("type=volume,target=/foo,bogus=1", "unexpected key 'bogus' in 'bogus=1'"),
    ("type=bind,src=/a,dst=/b,readonly=yes", "invalid value for readonly: yes"),
    ("type=bind,src=/a,dst=/b,ro=2", "invalid value for ro: 2"),
    ("type=volume,dst=/b,volume-nocopy=maybe", "invalid value for volume-nocopy: maybe"),
    ("type=tmpfs,dst=/b,tmpfs-size=foo", "invalid value for tmpfs-size: foo"),
    ("type=tmpfs,dst=/b,tmpfs-mode=999", "invalid value for tmpfs-mode: 999"),
    ("type=bind,src=/a,dst=/b,bind-recursive=maybe",
     'invalid value for bind-recursive: maybe (must be "enabled", "disabled", "writable", or "readonly")'),
    ("type=bind,src=/a,dst=/b,bind-recursive=writable",
     "option 'bind-recursive=writable' requires 'readonly' to be specified in conjunction"),
    ("type=bind,src=/a,dst=/b,readonly,bind-recursive=readonly",
     "option 'bind-recursive=readonly' requires 'bind-propagation=rprivate' to be specified in conjunction"),
    ("type=bind,src=/a,dst=/b,volume-nocopy", "cannot mix 'volume-*' options with mount type 'bind'"),
    ("type=volume,dst=/b,bind-propagation=shared", "cannot mix 'bind-*' options with mount type 'volume'"),
    ("type=volume,dst=/b,tmpfs-size=1m", "cannot mix 'tmpfs-*' options with mount type 'volume'"),
    ("type=tmpfs,dst=/b,volume-label=a=b", "cannot mix 'volume-*' options with mount type 'tmpfs'"),
])
def test_mount_errors(value, message):
    with pytest.raises(InvalidArgument) as e:
        parse_mount_spec(value)
    assert str(e.value) == message


# -- what the daemon checks of a mount -------------------------------------------------

@pytest.mark.parametrize("spec,message", [
    (MountSpec(BIND, "/x", "/no/such/dir"),
     'invalid mount config for type "bind": bind source path does not exist: /no/such/dir'),
    (MountSpec(BIND, "/x"), 'invalid mount config for type "bind": field Source must not be empty'),
    (MountSpec(BIND, "/x", "rel"), "invalid mount config for type \"bind\": invalid mount path: 'rel' mount path must be absolute"),
    (MountSpec(BIND, "rel", "/"), "invalid mount config for type \"bind\": invalid mount path: 'rel' mount path must be absolute"),
    (MountSpec(BIND, "/", "/"), "invalid mount config for type \"bind\": invalid specification: destination can't be '/'"),
    (MountSpec(BIND, "/x", "/", bind=BindOptions("sideways")),
     'invalid mount config for type "bind": invalid propagation mode: sideways'),
    (MountSpec(VOLUME, "/x", readonly=True),
     'invalid mount config for type "volume": must not set ReadOnly mode when using anonymous volumes'),
    (MountSpec(VOLUME, "", "v"), 'invalid mount config for type "volume": field Target must not be empty'),
    (MountSpec(TMPFS, "/x", "src"), 'invalid mount config for type "tmpfs": field Source must not be specified'),
    (MountSpec("npipe", "/x", "/y"), 'invalid mount config for type "npipe": mount type unknown'),
])
def test_daemon_validation(spec, message):
    with pytest.raises(InvalidArgument) as e:
        validate_mount(spec)
    assert str(e.value) == message


def test_bind_source_checked_only_when_asked():
    validate_mount(MountSpec(BIND, "/x", "/no/such/dir"), check_source=False)
    validate_mount(MountSpec(BIND, "/x", "/no/such/dir", bind=BindOptions(create_mountpoint=True)))


# -- --tmpfs ------------------------------------------------------------------------------

@pytest.mark.parametrize("value,expected", [
    ("/run", ("/run", "")),
    ("/run:rw,noexec,nosuid,size=65536k", ("/run", "rw,noexec,nosuid,size=65536k")),
    ("/run:mode=1777,uid=1000,gid=1000,nr_inodes=10k", ("/run", "mode=1777,uid=1000,gid=1000,nr_inodes=10k")),
])
def test_tmpfs_values(value, expected):
    assert parse_tmpfs_spec(value) == expected


@pytest.mark.parametrize("value,message", [
    ("run", "invalid mount path: 'run' mount path must be absolute"),
    ("/", "invalid specification: destination can't be '/'"),
    ("/run:foo", 'invalid tmpfs option ["foo"]'),
    ("/run:bogus=1", 'invalid tmpfs option ["bogus" "1"]'),
])
def test_tmpfs_errors(value, message):
    with pytest.raises(InvalidArgument) as e:
        parse_tmpfs_spec(value)
    assert str(e.value) == message


def test_tmpfs_mount_options_as_docker_converts_them():
    assert tmpfs_options(TmpfsOptions(size=1 << 20, mode=0o700), False) == ["mode=700", "size=1m"]
    assert tmpfs_options(TmpfsOptions(size=3 << 30), True) == ["ro", "size=3g"]
    assert tmpfs_options(TmpfsOptions(size=1000), False) == ["size=1000"]
    assert tmpfs_options(None, False) == []
    assert check_tmpfs_options("defaults,ro") == ["ro"]


# -- small pieces ----------------------------------------------------------------------------

@pytest.mark.parametrize("text,size", [
    ("100", 100), ("64m", 64 << 20), ("1.5k", 1536), ("1GiB", 1 << 30), ("2 MB", 2 << 20), ("10b", 10),
])
def test_ram_in_bytes(text, size):
    assert ram_in_bytes(text) == size


@pytest.mark.parametrize("text,message", [
    ("abc", "invalid size: 'abc'"), ("-1", "invalid size: '-1'"), ("1x", "invalid suffix: 'x'"),
    ("1kbb", "invalid suffix: 'kbb'"),
])
def test_ram_in_bytes_errors(text, message):
    with pytest.raises(InvalidArgument) as e:
        ram_in_bytes(text)
    assert str(e.value) == message


def test_clean_path_is_go_path_clean():
    assert clean_path("//a//b/../c/") == "/a/c"
    assert clean_path("") == "."
    assert clean_path("/..") == "/"


def test_mount_option_flags():
    flags, data = mount_options("ro,nosuid,size=10m,bind,mode=700,rw")
    assert flags == linux.MS_NOSUID | linux.MS_BIND
    assert data == "size=10m,mode=700"


def test_api_round_trip():
    entries = [
        {"Type": "bind", "Source": "/s", "Target": "/t", "ReadOnly": True,
         "BindOptions": {"Propagation": "rslave", "NonRecursive": True}},
        {"Type": "volume", "Source": "v", "Target": "/t",
         "VolumeOptions": {"NoCopy": True, "Labels": {"a": "b"},
                           "DriverConfig": {"Name": "local", "Options": {"type": "tmpfs"}}}},
        {"Type": "tmpfs", "Target": "/t", "TmpfsOptions": {"SizeBytes": 1024, "Mode": 448}},
    ]
    for entry in entries:
        assert MountSpec.from_api(entry).to_api() == entry


def test_specs_from_host_config_keeps_docker_order():
    specs = specs_from_host_config({"Binds": ["/h:/a", "v:/b"], "VolumeDriver": "local",
                                    "Mounts": [{"Type": "tmpfs", "Target": "/c"}]})
    assert [(s.type, s.target) for s in specs] == [(BIND, "/a"), (VOLUME, "/b"), (TMPFS, "/c")]
    assert specs[1].volume.driver == "local"


def test_mount_point_record_round_trip():
    spec = parse_volume_spec("name:/data:ro,nocopy")
    point = MountPoint(type=VOLUME, destination="/data", source="/var/lib/berth/volumes/name/_data", name="name",
                       driver="local", mode="ro,nocopy", rw=False, spec=spec)
    assert MountPoint.from_record(point.to_record()) == point
    assert point.inspect() == {"Type": "volume", "Name": "name", "Source": "/var/lib/berth/volumes/name/_data",
                               "Destination": "/data", "Driver": "local", "Mode": "ro,nocopy", "RW": False,
                               "Propagation": ""}
    bind = MountPoint(type=BIND, destination="/d", source="/h", rw=True, propagation="rprivate",
                      spec=parse_volume_spec("/h:/d"))
    assert bind.inspect() == {"Type": "bind", "Source": "/h", "Destination": "/d", "Mode": "", "RW": True,
                              "Propagation": "rprivate"}
