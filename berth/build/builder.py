"""The Dockerfile builder: Docker's classic builder, step by step.

Each instruction of each stage becomes an image whose parent is the image of
the step before (so the chain shows in `images -a` and `history`), with
the output `docker build` prints:

    Step 2/5 : RUN make
     ---> Running in 5e1c0d0b8f7a
    ...the command's output...
    Removing intermediate container 5e1c0d0b8f7a
     ---> 3f6b726e77d4

RUN steps run in real containers of the container layer; ADD, COPY and
WORKDIR write into an overlay of the parent image; every other instruction
only changes the configuration and commits an empty layer.  A step whose
image exists already (same parent, same configuration: berth.build.cache)
is not run again.

Build containers for steps that run nothing are not created (Docker creates
and removes one per step); the ID printed for them is the one recorded as
the image's "container".  With --rm=false they are real, never-started
containers, as in Docker.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import os
import posixpath
import re
import shutil
import tempfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from berth.build import gofmt, gopath
from berth.build.buildargs import BuildArgs
from berth.build.cache import find_cached
from berth.build.commit import commit_step
from berth.build.context import BuildContext, DirectoryTree, SourceTree
from berth.build.copier import CopySource, copy_sources, lookup_owner, normalize_dest
from berth.build.instructions import (
    DEFAULT_SHELL, AddInstr, ArgInstr, CmdInstr, CopyInstr, EntrypointInstr, EnvInstr, ExposeInstr,
    FromInstr, HealthcheckInstr, Instruction, LabelInstr, MaintainerInstr, OnbuildInstr, RunInstr,
    ShellInstr, Stage, StopsignalInstr, UserInstr, VolumeInstr, WorkdirInstr, apply_to_config,
    expand_instruction, parse_instruction, parse_stages)
from berth.build.parser import parse, parse_heredoc
from berth.build.snapshot import adopt_layer, image_lowers, layer_of, mounted
from berth.container import protocol as proto
from berth.container.runspec import check_host_config
from berth.container.record import new_id
from berth.container.rootfs_files import make_dirs
from berth.errors import BerthError, InvalidArgument, NotFound
from berth.image import config as cfgmod
from berth.image.reference import Reference, parse_normalized_named
from berth.image.store import Image, ImageStore
from berth.layer.mountpoints import INIT_PATHS, scrub_mount_points
from berth.layer.snapshots import LayerCache
from berth.store.state import State

if TYPE_CHECKING:
    from berth.container.manager import ContainerManager

__all__ = ["CA_BUNDLE_PATH", "CA_ENV", "BuildFailed", "BuildOptions", "BuildResult", "Builder",
           "Output"]

Output = Callable[[bytes], None]

DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
# Where RUN steps find the host's CA bundle (--ca-bundle): a read-only bind
# mount, dropped from the step's layer like the other mount points.
CA_BUNDLE_PATH = "/run/berth/ca-certificates.crt"
CA_ENV = ("SSL_CERT_FILE", "REQUESTS_CA_BUNDLE", "PIP_CERT", "CURL_CA_BUNDLE", "NODE_EXTRA_CA_CERTS",
          "GIT_SSL_CAINFO")
_BUILDKIT_ONLY = ("the --{} option requires BuildKit. Refer to https://docs.docker.com/go/buildkit/ "
                  "to learn how to build images with BuildKit enabled")
# How Docker's daemon marks a RUN's stderr in the build output.
_STDERR_START, _STDERR_END = b"\x1b[91m", b"\x1b[0m"


@dataclass
class BuildOptions:
    """What `docker build` and POST /build accept (berth's own: ca_bundle)."""

    tags: Sequence[str] = ()
    build_args: Mapping[str, str | None] = field(default_factory=dict)
    target: str | None = None
    no_cache: bool = False
    remove: bool = True                 # --rm: remove intermediate containers
    force_remove: bool = False          # --force-rm
    labels: Mapping[str, str] = field(default_factory=dict)
    network_mode: str = "default"
    pull: bool = False                  # --pull: fetch base images even when present
    extra_hosts: Sequence[str] = ()
    platform: str | None = None
    # A CA bundle RUN steps trust (bind-mounted, never committed).
    ca_bundle: str | None = None
    # Limits of the RUN steps' containers, as HostConfig fields (Memory,
    # MemorySwap, CpuShares, CpuPeriod, CpuQuota, CpusetCpus, CpusetMems, ShmSize, Ulimits).
    resources: Mapping[str, object] = field(default_factory=dict)

# The query parameters of POST /build that carry `resources`, by HostConfig field.
RESOURCE_PARAMS = {"Memory": "memory", "MemorySwap": "memswap", "CpuShares": "cpushares",
                   "CpuPeriod": "cpuperiod", "CpuQuota": "cpuquota", "CpusetCpus": "cpusetcpus",
                   "CpusetMems": "cpusetmems", "ShmSize": "shmsize", "Ulimits": "ulimits",
                   "CgroupParent": "cgroupparent", "Isolation": "isolation"}
# Those of them that are strings (the rest are integers, and Ulimits JSON).
STRING_RESOURCES = ("CpusetCpus", "CpusetMems", "CgroupParent", "Isolation")


@dataclass
class BuildResult:
    image_id: str
    tags: list[str]             # familiar name:tag


class BuildFailed(BerthError):
    """A step failed; exit_code is what `docker build` exits with (a RUN's own code)."""

    def __init__(self, message: str, exit_code: int = 1):
        super().__init__(message)
        self.exit_code = exit_code


@dataclass
class _Stage:
    """Docker's dispatchState: one stage's image and configuration so far."""

    name: str | None
    image: Image | None         # None: scratch, before the first commit
    config: dict                # the run configuration (Docker's container.Config)
    args: BuildArgs
    maintainer: str = ""
    cmd_set: bool = False

    @property
    def image_id(self) -> str:
        return self.image.id if self.image else ""


@dataclass
class _Step:
    instr: Instruction
    expand: bool = True


class Builder:
    """Builds one Dockerfile; `out` receives Docker's build output as it happens.

    `containers` gives the container manager, asked for only when a step
    runs something (a rebuild from the cache never loads it).  `pull` gets
    an image that is not here (from a registry), or a newer one with
    BuildOptions.pull.
    """

    def __init__(self, state: State, containers: Callable[[], ContainerManager], out: Output, *,
                 pull: Callable[[str], Image] | None = None):
        self.state = state
        self.images = ImageStore(state)
        self.layers = LayerCache(state.root)
        self._containers = containers
        self.out = out
        self.pull = pull or self.images.resolve
        self._intermediate: list[tuple[str, bool]] = []   # (container ID, created for real)
        self._cache_busted = False
        self._finished: list[tuple[str | None, Image | None]] = []
        self._workdir: Path | None = None
        self._counter = 0

    @functools.cached_property
    def containers(self) -> ContainerManager:
        return self._containers()

    # -- output ------------------------------------------------------------------

    def _say(self, text: str) -> None:
        self.out(text.encode("utf-8", "surrogateescape"))

    # -- the build ---------------------------------------------------------------

    def build(self, context: BuildContext, options: BuildOptions) -> BuildResult:
        self.options = options
        tags = [_tag(t) for t in options.tags]
        check_host_config(options.resources)     # what every RUN step's create would refuse
        if options.ca_bundle and not os.path.isfile(options.ca_bundle):
            raise InvalidArgument(f"CA bundle {options.ca_bundle}: no such file")
        try:
            dockerfile = parse(context.dockerfile)
        except InvalidArgument as e:
            if str(e) == "file with no instructions":
                raise InvalidArgument(f"the Dockerfile ({context.dockerfile_name}) cannot be empty") from None
            raise
        self.escape = dockerfile.escape
        meta_args, stages = parse_stages(dockerfile)
        if options.target:
            index = next((i for i, s in enumerate(stages) if s.name == options.target.lower()), None)
            if index is None:
                raise InvalidArgument(f"failed to reach build target {options.target} in Dockerfile")
            stages = stages[:index + 1]
        plans = [[_Step(i) for i in s.instructions] for s in stages]
        for key in sorted(options.labels):
            plans[-1].append(_Step(LabelInstr(pairs=((key, options.labels[key]),),
                                              original=f"LABEL {key}={options.labels[key]}"), expand=False))
        for warning in dockerfile.warnings:
            self._say(warning + "\n")

        total = len(meta_args) + len(stages) + sum(len(p) for p in plans)
        numbers = iter(range(1, total + 1))
        args = BuildArgs(options.build_args)
        self._workdir = Path(tempfile.mkdtemp(prefix="build-", dir=self.state.subdir("builds")))
        self._context = context
        try:
            for meta in meta_args:
                self._say(f"Step {next(numbers)}/{total} : {meta.original}\n")
                meta = expand_instruction(meta, args.allowed_values(), escape=self.escape)
                for key, value in meta.args:
                    args.add(key, value)
                    args.add_meta(key, value)
            st = None
            for stage, plan in zip(stages, plans):
                if stage.name and any(name == stage.name for name, _ in self._finished):
                    raise InvalidArgument(f"{stage.name} stage name already used")
                self._say(f"Step {next(numbers)}/{total} : {stage.base.original}\n")
                st = self._begin_stage(stage, args.for_stage())
                self._say(f" ---> {st.image_id[7:19]}\n")
                for step in plan:
                    self._say(f"Step {next(numbers)}/{total} : {step.instr.original}\n")
                    self._dispatch(st, step)
                    self._say(f" ---> {st.image_id[7:19]}\n")
                args.merge_referenced(st.args)
                self._finished.append((stage.name, st.image))
            unused = args.unused()
            if unused:
                self._say(f"[Warning] One or more build-args {gofmt.plain_list(unused)} were not consumed\n")
            if st is None or st.image is None:
                raise BuildFailed("No image was generated. Is your Dockerfile empty?")
            image = st.image
            self._say(f"Successfully built {image.short_id}\n")
            for ref in tags:
                self.images.tag(image.id, ref)
                self._say(f"Successfully tagged {ref.tagged_or_latest().familiar()}\n")
            return BuildResult(image.id, [ref.tagged_or_latest().familiar() for ref in tags])
        finally:
            shutil.rmtree(self._workdir, ignore_errors=True)

    def _scratch_dir(self) -> Path:
        self._counter += 1
        path = self._workdir / f"step-{self._counter}"
        path.mkdir()
        return path

    # -- stages ------------------------------------------------------------------

    def _begin_stage(self, stage: Stage, args: BuildArgs) -> _Stage:
        base = expand_instruction(stage.base, args.meta_values(), escape=self.escape)
        if not base.image:
            raise InvalidArgument(f"base name ({stage.base.image}) should not be blank")
        image = self._image_or_stage(base.image, for_from=True)
        config = dict((self.images.config(image).get("config") or {}) if image else {})
        env = list(config.get("Env") or [])
        if not any(e.partition("=")[0] == "PATH" for e in env):
            env.append("PATH=" + DEFAULT_PATH)
        config.update(Env=env, OpenStdin=False, StdinOnce=False, Image=image.id if image else "")
        st = _Stage(stage.name, image, config, args)
        self._cache_busted = False
        triggers = config.pop("OnBuild", None) or []
        config["OnBuild"] = None
        if triggers:
            self._say(f"# Executing {len(triggers)} build trigger{'s' if len(triggers) > 1 else ''}\n")
            for trigger in triggers:
                st.config["Image"] = st.image_id
                nodes = parse(trigger).nodes
                if len(nodes) != 1:
                    raise InvalidArgument("onbuild trigger should be a single expression")
                self._dispatch(st, _Step(parse_instruction(nodes[0])))
        return st

    def _image_or_stage(self, name: str, *, for_from: bool) -> Image | None:
        """A stage's image by name (or, for COPY --from, index), scratch, or a local image."""
        for stage_name, image in self._finished:
            if stage_name and stage_name == name.lower():
                return image
        if not for_from and name.isdigit():
            index = int(name)
            if index >= len(self._finished):
                raise InvalidArgument("index out of bounds")
            return self._finished[index][1]
        if for_from and name == "scratch":
            return None
        if not self.options.pull:
            image = self.images.find(name)
            if image is not None:
                return image
        return self.pull(name)

    # -- dispatch ------------------------------------------------------------------

    def _dispatch(self, st: _Stage, step: _Step) -> None:
        instr = step.instr
        if step.expand:
            env = list(st.config.get("Env") or [])
            instr = expand_instruction(instr, env + st.args.not_in(env), escape=self.escape)
        try:
            self._run_instruction(st, instr)
        except BaseException:
            # Docker keeps a failed step's container unless --force-rm; berth
            # leaves nothing behind, but says so only where Docker would.
            if self.options.remove or self.options.force_remove:
                self._remove_intermediate(quiet=not self.options.force_remove)
            raise
        if self.options.remove or self.options.force_remove:
            self._remove_intermediate()
        st.config["Image"] = st.image_id

    def _run_instruction(self, st: _Stage, instr: Instruction) -> None:
        config = st.config
        match instr:
            case EnvInstr():
                st.config = apply_to_config(config, instr)
                self._commit_meta(st, "ENV" + "".join(f" {k}={v}" for k, v in instr.pairs))
            case LabelInstr():
                st.config = apply_to_config(config, instr)
                self._commit_meta(st, "LABEL" + "".join(f" {k}={v}" for k, v in instr.pairs))
            case MaintainerInstr():
                st.maintainer = instr.maintainer
                self._commit_meta(st, "MAINTAINER " + instr.maintainer)
            case CmdInstr():
                st.config = apply_to_config(config, instr)
                self._commit_meta(st, "CMD " + gofmt.quoted_list(st.config.get("Cmd")))
                st.cmd_set = st.cmd_set or bool(instr.cmd)
            case EntrypointInstr():
                st.config = apply_to_config(config, instr, cmd_set=st.cmd_set)
                if instr.cmd is None and not instr.prepend_shell:
                    st.config["Entrypoint"] = []  # ENTRYPOINT [] sets an empty one
                self._commit_meta(st, "ENTRYPOINT " + gofmt.quoted_list(st.config.get("Entrypoint")))
            case HealthcheckInstr():
                old = (config.get("Healthcheck") or {}).get("Test") or []
                if old and old[0] != "NONE":
                    self._say(f"Note: overriding previous HEALTHCHECK: {gofmt.plain_list(old)}\n")
                st.config = apply_to_config(config, instr)
                self._commit_meta(st, "HEALTHCHECK " + gofmt.healthcheck(st.config["Healthcheck"]))
            case ExposeInstr():
                st.config = apply_to_config(config, instr)
                self._commit_meta(st, "EXPOSE " + " ".join(instr.ports))
            case UserInstr():
                st.config = apply_to_config(config, instr)
                self._commit_meta(st, "USER " + instr.user)
            case VolumeInstr():
                st.config = apply_to_config(config, instr)
                self._commit_meta(st, "VOLUME " + gofmt.plain_list(instr.volumes))
            case StopsignalInstr():
                st.config = apply_to_config(config, instr)
                self._commit_meta(st, "STOPSIGNAL " + instr.signal)
            case ShellInstr():
                st.config = apply_to_config(config, instr)
                self._commit_meta(st, "SHELL " + gofmt.plain_list(instr.shell))
            case OnbuildInstr():
                st.config = apply_to_config(config, instr)
                self._commit_meta(st, "ONBUILD " + instr.expression)
            case ArgInstr():
                for key, value in instr.args:
                    st.args.add(key, value)
                self._commit_meta(st, "ARG " + " ".join(k if v is None else f"{k}={v}" for k, v in instr.args))
            case WorkdirInstr():
                self._workdir_step(st, instr)
            case RunInstr():
                self._run_step(st, instr)
            case AddInstr() | CopyInstr():
                self._copy_step(st, instr)
            case FromInstr():
                raise InvalidArgument("FROM is not allowed here")
            case _:
                raise InvalidArgument(f"unsupported command type: {instr.keyword}")

    # -- the cache and commits ---------------------------------------------------------

    def _probe(self, st: _Stage, container_config: dict) -> bool:
        if self.options.no_cache or self._cache_busted:
            return False
        found = find_cached(self.images, st.image_id, container_config)
        if found is None:
            self._cache_busted = True
            return False
        self._say(" ---> Using cache\n")
        st.image = found
        return True

    def _shell(self, config: Mapping) -> list[str]:
        return list(config.get("Shell") or DEFAULT_SHELL)

    def _nop(self, config: Mapping, comment: str, *, single: bool = False) -> dict:
        """The step's configuration with Cmd saying what it did (`#(nop) ...`)."""
        line = ["#(nop) " + comment] if single else ["#(nop) ", comment]
        return dict(config, Cmd=self._shell(config) + line)

    def _new_container(self, st: _Stage, config: dict) -> str:
        """A container for a step that runs nothing: real only when kept (--rm=false)."""
        keep = not (self.options.remove or self.options.force_remove)
        if keep and st.image is not None:
            c = self.containers.create(dict(config, Image=st.image_id), self._host_config())
            cid = c.id
        else:
            cid = new_id()
        self._intermediate.append((cid, keep and st.image is not None))
        self._say(f" ---> Running in {cid[:12]}\n")
        return cid

    def _commit(self, st: _Stage, container_config: dict, *, container_id: str = "",
                upper: Path | None = None) -> None:
        parent_config = self.images.config(st.image) if st.image else None
        with layer_of(upper) if upper is not None else contextlib.nullcontext() as layer:
            st.image = commit_step(
                self.images, st.image, parent_config, layer, config=st.config,
                container_config=container_config, container_id=container_id, author=st.maintainer,
                created_by=" ".join(container_config.get("Cmd") or []), created=cfgmod.now_rfc3339())
        if layer is not None:
            chains = cfgmod.chain_ids(cfgmod.diff_ids(self.images.config(st.image)))
            adopt_layer(self.layers, chains[-1], upper)

    def _commit_meta(self, st: _Stage, comment: str) -> None:
        config = self._nop(st.config, comment)
        if self._probe(st, config):
            return
        cid = self._new_container(st, config)
        self._commit(st, dict(config, Hostname=cid[:12]), container_id=cid)

    def _remove_intermediate(self, *, quiet: bool = False) -> None:
        while self._intermediate:
            cid, real = self._intermediate.pop(0)
            if real:
                try:
                    self.containers.remove(cid, force=True, volumes=True)
                except NotFound:
                    pass
                except BerthError as e:
                    self._say(f"Error removing intermediate container {cid[:12]}: {e}\n")
                    continue
            if not quiet:
                self._say(f"Removing intermediate container {cid[:12]}\n")

    # -- WORKDIR -----------------------------------------------------------------------

    def _workdir_step(self, st: _Stage, instr: WorkdirInstr) -> None:
        st.config = apply_to_config(st.config, instr)
        path = st.config["WorkingDir"]
        config = self._nop(st.config, "WORKDIR " + path, single=True)
        if self._probe(st, config):
            return
        cid = self._new_container(st, config)
        scratch = self._scratch_dir()
        lowers = image_lowers(self.state, self.images, self.layers, st.image)
        with mounted(self.layers, lowers, scratch) as (merged, upper):
            make_dirs(merged, path)
        self._commit(st, dict(config, Hostname=cid[:12]), container_id=cid, upper=upper)
        shutil.rmtree(scratch, ignore_errors=True)

    # -- RUN ---------------------------------------------------------------------------

    def _host_config(self) -> dict:
        hc = {"NetworkMode": self.options.network_mode or "default",
              "LogConfig": {"Type": "none", "Config": {}}, **self.options.resources}
        if self.options.extra_hosts:
            hc["ExtraHosts"] = list(self.options.extra_hosts)
        return hc

    def _run_step(self, st: _Stage, instr: RunInstr) -> None:
        if instr.flags_used:
            raise BuildFailed(_BUILDKIT_ONLY.format(instr.flags_used[0]))
        cmd = _run_command(instr, self._shell(st.config))
        env = list(st.config.get("Env") or [])
        build_args = st.args.not_in(env)
        save_cmd = cmd
        if build_args:
            kept = sorted(a for a in build_args if st.args.in_cache_key(a.partition("=")[0]))
            save_cmd = [f"|{len(kept)}", *kept, *cmd]
        probe = dict(st.config, Cmd=save_cmd)
        if save_cmd:
            probe["Entrypoint"] = None
        if self._probe(st, probe):
            return
        if st.image is None:
            raise BuildFailed(f'exec: "{cmd[0]}": stat {cmd[0]}: no such file or directory')
        run_env = env + build_args
        host_config = self._host_config()
        if self.options.ca_bundle:
            host_config["Binds"] = [f"{os.path.realpath(self.options.ca_bundle)}:{CA_BUNDLE_PATH}:ro"]
            names = {e.partition("=")[0] for e in run_env}
            run_env += [f"{name}={CA_BUNDLE_PATH}" for name in CA_ENV if name not in names]
        run_config = dict(st.config, Cmd=cmd, Env=run_env, Entrypoint=[""] if save_cmd else
                          st.config.get("Entrypoint"), Healthcheck={"Test": ["NONE"]}, Image=st.image_id)
        try:
            c = self.containers.create(run_config, host_config)
        except BerthError as e:
            raise BuildFailed(str(e)) from None
        self._intermediate.append((c.id, True))
        self._say(f" ---> Running in {c.short_id}\n")
        code = self._execute(c.id)
        if code != 0:
            raise BuildFailed(f"The command '{' '.join(cmd)}' returned a non-zero code: {code}", exit_code=code)
        upper = self.containers.paths(c.id).upper
        lowers = image_lowers(self.state, self.images, self.layers, st.image)
        targets = INIT_PATHS + ((CA_BUNDLE_PATH.lstrip("/"),) if self.options.ca_bundle else ())
        scrub_mount_points(upper, lowers, targets)
        self._commit(st, probe, container_id=c.id, upper=upper)

    def _execute(self, container_id: str) -> int:
        """Run the container to its end, streaming its output; its exit code."""
        code = None
        try:
            try:
                self.containers.start(container_id, attach_first=True)
                conn = self.containers.attach(container_id, stdin=False, stdout=True, stderr=True)
            except BerthError as e:
                raise BuildFailed(str(e)) from None
            try:
                for kind, payload in conn.frames():
                    if kind == proto.STDOUT:
                        self.out(payload)
                    elif kind == proto.STDERR:
                        self.out(_STDERR_START + payload + _STDERR_END)
                    elif kind == proto.FAILED:
                        raise BuildFailed(json.loads(payload)["message"])
                    elif kind == proto.EXIT:
                        code = int(payload)
            finally:
                conn.close()
        except BaseException:
            with contextlib.suppress(BerthError):
                self.containers.kill(container_id)
            raise
        # The supervisor reports the exit once the filesystem is released.
        final = self.containers.wait(container_id)
        return final if code is None else code

    # -- ADD and COPY ---------------------------------------------------------------------

    def _copy_step(self, st: _Stage, instr: AddInstr | CopyInstr) -> None:
        name = instr.keyword
        for flag, used in (("link", instr.link), ("keep-git-dir", getattr(instr, "keep_git_dir", False)),
                           ("checksum", getattr(instr, "checksum", None))):
            if used:
                raise BuildFailed(_BUILDKIT_ONLY.format(flag))
        chmod = None
        if instr.chmod:
            if not re.fullmatch(r"[0-7]{1,4}", instr.chmod):
                raise BuildFailed(f"invalid chmod parameter: {instr.chmod}")
            chmod = int(instr.chmod, 8)
        from_name = getattr(instr, "from_", None)
        with contextlib.ExitStack() as stack:
            source_tree: SourceTree = self._context.tree
            if from_name:
                try:
                    image = self._image_or_stage(from_name, for_from=False)
                except BerthError as e:
                    raise BuildFailed(f"invalid from flag value {from_name}: {e}") from None
                source_tree = stack.enter_context(self._image_tree(image))
            sources: list[CopySource] = []
            hashes: list[str] = []
            for orig in instr.sources:
                if orig.startswith(("http://", "https://")):
                    if isinstance(instr, CopyInstr):
                        raise BuildFailed(f"{name} failed: source can't be a URL for COPY")
                    tree, path = self._download(orig, instr.dest)
                    sources.append(CopySource(tree, path, decompress=False))
                    hashes.append(tree.source_hash(path))
                    continue
                for path, digest in self._source_infos(source_tree, orig, name):
                    sources.append(CopySource(source_tree, path))
                    hashes.append(digest)
            for doc in instr.heredocs:
                tree = self._inline_file(doc.path, doc.data)
                sources.append(CopySource(tree, doc.path, decompress=False))
                hashes.append(tree.source_hash(doc.path))
            if not sources:
                raise BuildFailed(f"{name} failed: no source files were specified")
            if len(sources) > 1 and not instr.dest.endswith("/"):
                raise BuildFailed(f"When using {name} with more than one source file, "
                                  "the destination must be a directory and end with a /")
            digest = hashes[0] if len(hashes) == 1 else \
                "multi:" + hashlib.sha256(",".join(hashes).encode()).hexdigest()
            chown = f"--chown={instr.chown}" if instr.chown else ""
            chmod_flag = f"--chmod={instr.chmod} " if instr.chmod else ""
            config = self._nop(st.config, f"{name} {chown}{chmod_flag}{digest} in {instr.dest} ",
                               single=True)
            if self._probe(st, config):
                return
            scratch = self._scratch_dir()
            lowers = image_lowers(self.state, self.images, self.layers, st.image)
            dest = normalize_dest(st.config.get("WorkingDir") or "", instr.dest)
            with mounted(self.layers, lowers, scratch) as (merged, upper):
                if instr.chown:
                    owner = lookup_owner(merged, instr.chown)
                else:
                    owner = None if from_name else (0, 0)
                try:
                    copy_sources(merged, dest, sources, owner=owner, chmod=chmod,
                                 decompress=isinstance(instr, AddInstr))
                except OSError as e:
                    raise BuildFailed(f"failed to copy files: {e.strerror or e}: {dest}") from None
        self._commit(st, config, upper=upper)
        shutil.rmtree(scratch, ignore_errors=True)

    def _source_infos(self, tree: SourceTree, orig: str, name: str) -> list[tuple[str, str]]:
        """(path, cache hash) of each source an ADD/COPY argument names."""
        path = orig.removeprefix("/").removeprefix("./")
        if gopath.has_wildcards(path):
            return [(rel, tree.source_hash(rel)) for rel in _wildcard_matches(tree, path)]
        cleaned = gopath.clean(path)
        if cleaned == ".." or cleaned.startswith("../"):
            raise BuildFailed(f"{name} failed: forbidden path outside the build context: {orig} ()")
        try:
            return [(cleaned if cleaned != "." else "", tree.source_hash(cleaned if cleaned != "." else ""))]
        except FileNotFoundError:
            raise BuildFailed(f"{name} failed: file not found in build context or excluded by "
                              f".dockerignore: stat {path}: file does not exist") from None

    @contextlib.contextmanager
    def _image_tree(self, image: Image | None) -> Iterator[SourceTree]:
        """The root filesystem of a stage's or image's image, for COPY --from."""
        scratch = self._scratch_dir()
        lowers = image_lowers(self.state, self.images, self.layers, image)
        try:
            with mounted(self.layers, lowers, scratch) as (merged, _):
                tree = DirectoryTree(merged)
                try:
                    yield tree
                finally:
                    tree.close()
        finally:
            shutil.rmtree(scratch, ignore_errors=True)

    def _inline_file(self, name: str, data: str) -> SourceTree:
        """A heredoc source (COPY <<EOF): a file of that name, 0644."""
        root = self._scratch_dir()
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(data)
        os.chmod(path, 0o644)
        return DirectoryTree(root)

    def _download(self, url: str, dest: str) -> tuple[SourceTree, str]:
        """ADD <url>: the file downloaded, mode 0600, mtime from Last-Modified."""
        import email.utils
        import urllib.error
        import urllib.request

        try:
            response = urllib.request.urlopen(url, timeout=300)  # noqa: S310 (the Dockerfile's URL)
        except urllib.error.HTTPError as e:
            raise BuildFailed(f"ADD failed: failed to GET {url} with status {e.code} {e.reason}") from None
        except (urllib.error.URLError, OSError) as e:
            raise BuildFailed(f'ADD failed: Get "{url}": {getattr(e, "reason", e)}') from None
        with response:
            name = _download_name(url, response.headers.get("Content-Disposition"))
            if not name and dest.endswith("/"):
                raise BuildFailed(f"cannot determine filename for source {url}")
            root = self._scratch_dir()
            path = root / (name or "__unnamed__")
            with open(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "wb") as f:
                shutil.copyfileobj(response, f, 1 << 20)
            modified = response.headers.get("Last-Modified")
        mtime = 0
        if modified:
            with contextlib.suppress(TypeError, ValueError):
                mtime = int(email.utils.parsedate_to_datetime(modified).timestamp())
        os.utime(path, (mtime, mtime))
        self._say("\n")
        return DirectoryTree(root), path.name


def _tag(text: str) -> Reference:
    ref = parse_normalized_named(text)
    if ref.digest:
        raise InvalidArgument("refusing to create a tag with a digest reference")
    return ref


def _run_command(instr: RunInstr, shell: list[str]) -> list[str]:
    """The argv of a RUN, with BuildKit's handling of here-documents."""
    if not instr.prepend_shell:
        return list(instr.cmd)
    line = instr.cmd[0] if instr.cmd else ""
    if instr.heredocs:
        doc = parse_heredoc(line.strip())
        if doc is not None and len(instr.heredocs) == 1:
            # `RUN <<EOF`: the document is the script.
            data = instr.heredocs[0].content
            if instr.heredocs[0].chomp:
                data = re.sub(r"(?m)^\t+", "", data)
            return shell + [data]
        for heredoc in instr.heredocs:
            line += "\n" + heredoc.content + heredoc.name
    return shell + [line]


def _wildcard_matches(tree: SourceTree, pattern: str) -> list[str]:
    """Context paths matching a COPY wildcard, in walk order."""
    # Only the literal leading directories can hold a match: start there.
    parts = pattern.split("/")
    literal = []
    for part in parts[:-1]:
        if gopath.has_wildcards(part) or "\\" in part:
            break
        literal.append(part)
    start = "/".join(literal)
    entry = tree.lookup(start)
    if entry is None or not entry.is_dir:
        return []
    return [rel for rel in tree.walk(start) if rel and gopath.match(pattern, rel)]


def _download_name(url: str, disposition: str | None) -> str:
    from urllib.parse import urlparse

    path = urlparse(url).path
    if path and not path.endswith("/"):
        return posixpath.basename(path)
    if disposition:
        m = re.search(r'filename="?([^";]+)"?', disposition)
        if m and not m.group(1).endswith("/"):
            return posixpath.basename(m.group(1))
    return ""
