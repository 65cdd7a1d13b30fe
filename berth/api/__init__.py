"""berth.api: the Docker Engine API, served from the engine (`berth daemon`)
and spoken to it (`client.RemoteEngine`).

`server` is HTTP (h11 over threads, hijacking for attach and exec),
`routing` the request and response kinds, `httpstatus` the one mapping of
engine errors to statuses; one module per route group (containers, exec,
images, build, networks, volumes, system, distribution), each declaring
the narrow backend it needs; `daemon` wires the engine's services into
them; `sessions` and `streams` carry attach sessions and streamed bodies.
"""
