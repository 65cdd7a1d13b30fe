"""The engine's container operations that need more than the container layer.

Most container calls go straight to `engine.containers` (the container
layer's manager); `commit` also needs the Dockerfile instruction parser to
apply `-c` changes, which lives in the build layer above the containers.
"""

from __future__ import annotations

import os

from berth.build.instructions import apply_changes
from berth.container.manager import ContainerFilesystem
from berth.image.reference import parse_normalized_named


class Filesystems(ContainerFilesystem):
    def commit(self, ref: str, *, repository: str | None = None, changes: list[str] = (),
               message: str = "", author: str = "", pause: bool = True):
        tag = parse_normalized_named(repository) if repository else None
        return super().commit(ref, tag=tag, message=message, author=author, pause=pause,
                              change_config=lambda config: apply_changes(config, list(changes)))


# -- update: POST /containers/{id}/update -------------------------------------------------

# HostConfig fields an update may change: the restart policy and these resources.
UPDATABLE_RESOURCES = ("Memory", "MemorySwap", "MemoryReservation", "CpuShares", "NanoCpus", "CpuPeriod",
                       "CpuQuota", "CpusetCpus", "CpusetMems", "PidsLimit", "BlkioWeight")
MIN_MEMORY = 6 * 1024 * 1024
CPU_PERIOD = 100_000


def update_container(containers, ref: str, update: dict) -> list[str]:
    """Docker's `update`: merge the restart policy and resources into the
    container's HostConfig (kept for its next starts) and write the new
    limits to the cgroups of a running container; the warnings.  Conflicting
    values are invalid arguments (400), as moby's conflictingUpdateOptions."""
    from berth.container.states import SUPERVISED
    from berth.errors import InvalidArgument

    c = containers.get(ref)
    hc = dict(c.host_config)
    given = {k: update[k] for k in UPDATABLE_RESOURCES if update.get(k) not in (None, "")}
    given = {k: v for k, v in given.items() if v != 0 or k == "PidsLimit"}   # 0: unchanged, as moby
    # NanoCpus and CPU period/quota set the same limit: one may not replace the other.
    if given.get("NanoCpus") and (hc.get("CpuPeriod") or hc.get("CpuQuota")):
        raise InvalidArgument("Conflicting options: Nano CPUs cannot be updated as CPU Period or Quota has "
                       "already been set")
    if (given.get("CpuPeriod") or given.get("CpuQuota")) and hc.get("NanoCpus"):
        raise InvalidArgument("Conflicting options: CPU Period and Quota cannot be updated as NanoCPUs has "
                       "already been set")
    if given.get("NanoCpus") and (given.get("CpuPeriod") or given.get("CpuQuota")):
        raise InvalidArgument("Conflicting options: Nano CPUs and CPU Period cannot both be set")
    if "Memory" in given and "MemorySwap" not in given:
        swap = _swap_limit(hc)
        if swap not in (None, -1) and given["Memory"] > swap:
            raise InvalidArgument("Memory limit should be smaller than already set memoryswap limit, update the "
                           "memoryswap at the same time")
    policy = update.get("RestartPolicy") or {}
    if policy.get("Name"):
        if policy["Name"] not in ("no", "always", "unless-stopped", "on-failure"):
            raise InvalidArgument(f"invalid restart policy '{policy['Name']}'")
        if hc.get("AutoRemove") and policy["Name"] != "no":
            raise InvalidArgument("Restart policy cannot be updated because AutoRemove is enabled for the container")
        if policy["Name"] != "on-failure" and policy.get("MaximumRetryCount"):
            raise InvalidArgument(f"maximum retry count cannot be used with restart policy '{policy['Name']}'")
        hc["RestartPolicy"] = {"Name": policy["Name"], "MaximumRetryCount": policy.get("MaximumRetryCount") or 0}
    hc.update(given)
    memory, swap = hc.get("Memory") or 0, _swap_limit(hc)
    if memory and memory < MIN_MEMORY:
        raise InvalidArgument("Minimum memory limit allowed is 6MB")
    if memory and swap not in (None, -1) and swap < memory:
        raise InvalidArgument("Minimum memoryswap limit should be larger than memory limit, see usage")
    if hc.get("NanoCpus", 0) < 0 or (hc.get("CpuShares") or 0) < 0:
        raise InvalidArgument("CPU values may not be negative")
    spec = dict(c.spec, HostConfig=hc)
    containers.store.update_spec(c.id, spec)
    warnings: list[str] = []
    if given and c.status in SUPERVISED:
        _apply_limits(containers.paths(c.id).bundle / "config.json", c.id, _oci_resources(hc, given),
                      warnings)
    return warnings


def _swap_limit(hc: dict) -> int | None:
    """memory+swap in force: the one given, else Docker's default of twice the memory."""
    if hc.get("MemorySwap"):
        return hc["MemorySwap"]
    return 2 * hc["Memory"] if hc.get("Memory") else None


def _oci_resources(hc: dict, given: dict) -> dict:
    """The OCI linux.resources to write for the fields an update changed."""
    out: dict = {}
    if given.keys() & {"Memory", "MemorySwap", "MemoryReservation"}:
        memory: dict = {}
        if hc.get("Memory"):
            memory["limit"] = hc["Memory"]
            memory["swap"] = _swap_limit(hc)
        if hc.get("MemoryReservation"):
            memory["reservation"] = hc["MemoryReservation"]
        out["memory"] = memory
    cpu: dict = {}
    if given.get("CpuShares"):
        cpu["shares"] = hc["CpuShares"]
    if given.get("NanoCpus"):
        cpu["period"], cpu["quota"] = CPU_PERIOD, hc["NanoCpus"] * CPU_PERIOD // 1_000_000_000
    if given.get("CpuPeriod"):
        cpu["period"] = hc["CpuPeriod"]
    if given.get("CpuQuota"):
        cpu["quota"] = hc["CpuQuota"]
        cpu.setdefault("period", hc.get("CpuPeriod") or CPU_PERIOD)
    for key, name in (("CpusetCpus", "cpus"), ("CpusetMems", "mems")):
        if given.get(key):
            cpu[name] = hc[key]
    if cpu:
        out["cpu"] = cpu
    if "PidsLimit" in given:
        limit = hc["PidsLimit"]
        out["pids"] = {"limit": limit if limit > 0 else -1}
    if given.get("BlkioWeight"):
        out["blockIO"] = {"weight": hc["BlkioWeight"]}
    return out


def _apply_limits(bundle_config, container_id: str, resources: dict, warnings: list[str]) -> None:
    """Write limits to a running container's cgroups (found through its bundle's
    cgroupsPath, as the runtime placed them; the same for every runtime berth uses)."""
    import json

    from berth.errors import BerthError
    from berth.runtime.builtin.cgroups import CgroupError, Cgroups

    try:
        spec = json.loads(bundle_config.read_text())
        cgroups = Cgroups.for_container((spec.get("linux") or {}).get("cgroupsPath"), container_id)
    except (OSError, ValueError, CgroupError) as e:
        warnings.append(f"the running container's limits were not changed: {e}")
        return
    # The supervisor's restarts create the container from this bundle again.
    current = spec.setdefault("linux", {}).setdefault("resources", {})
    for key, value in resources.items():
        current[key] = {**(current.get(key) or {}), **value}
    tmp = bundle_config.with_name(bundle_config.name + ".update")
    tmp.write_text(json.dumps(spec))
    os.replace(tmp, bundle_config)
    if not all(os.path.isdir(p) for p in cgroups.paths.values()):
        return      # between two runs: the next one has them
    try:
        cgroups.create(resources)
    except CgroupError as e:
        raise BerthError(f"Cannot update container {container_id}: {e}") from None
