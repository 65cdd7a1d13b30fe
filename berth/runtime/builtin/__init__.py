"""berth's own OCI runtime, in Python.

`python -m berth.runtime.builtin --root STATE create|start|state|kill|delete|
exec|pause|resume|run ...` takes the same arguments as runc, so
`berth.runtime.oci.OCIRuntime` drives it and runc alike.

Process model (as runc's): `create` forks a short-lived stage that enters or
creates the namespaces and forks the container's init, which is PID 1 of
its PID namespace; the stage exits at once, so init is re-parented to the
nearest child subreaper above `create` (the caller should set
PR_SET_CHILD_SUBREAPER to reap it) and no Python runtime process stays
behind.  Init sets up the root filesystem, then blocks on `exec.fifo` in
the state directory until `start` opens it, then execs.

Modules are imported lazily per command so `start`, `state` and `delete`
stay cheap; nothing here may import the rest of berth beyond berth.runtime's
small shared tables.
"""
