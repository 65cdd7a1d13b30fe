"""berth.registry: the OCI distribution protocol, as Docker speaks it.

`client` talks to one registry over httpx (one transport seam; auth is a
generator over requests, in `auth`); `pull` and `push` move images between
it and the image store; `credentials` keeps logins in Docker's config.json;
`hosts` decides endpoints and TLS; `search` finds repositories; `progress`
is what they report.  Import the submodules: this package stays empty so
that loading the CLI does not load an HTTP stack.
"""
