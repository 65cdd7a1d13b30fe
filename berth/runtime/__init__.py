"""berth.runtime: OCI runtime specs and the runtimes that run them.

- spec: `default_spec(ProcessOptions, SandboxOptions, HostInfo)` builds the
  config.json `docker run` would produce (namespaces, mounts, capabilities,
  masked/readonly paths, devices, seccomp converted from Docker's profile,
  cgroup limits); `exec_process_spec` the process of `docker exec`.
- interface: the `Runtime` protocol the container supervisor uses,
  `RuntimeState`, `Stdio`, `ConsoleSocket`, `set_child_subreaper`.
- oci: `OCIRuntime`, that protocol over any OCI runtime's command line
  (runc, crun) and over berth's own (`OCIRuntime.builtin(state_root)`).
- builtin: berth's OCI runtime, in Python, with runc's command line.

Nothing here imports a higher berth layer.  The builtin package keeps its
entry point light: it runs once per container operation.
"""
