"""`build`: the engine's one entry point for Dockerfile builds (CLI and API).

A caller prepares a context (a directory, or a stream: a tarball or a lone
Dockerfile), then builds from it; the builder writes Docker's build output
to the `out` callable as it goes.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

from berth.build.builder import BuildOptions, BuildResult, Builder, Output
from berth.build.context import BuildContext, context_from_archive, context_from_directory
from berth.image.store import Image
from berth.store.state import State

if TYPE_CHECKING:
    from berth.container.manager import ContainerManager

__all__ = ["BuildService", "host_ca_bundle"]

# Where distributions keep the system's trusted CA certificates, as one file.
_CA_BUNDLES = ("/etc/ssl/certs/ca-certificates.crt", "/etc/pki/tls/certs/ca-bundle.crt",
               "/etc/ssl/ca-bundle.pem", "/etc/ssl/cert.pem")


def host_ca_bundle() -> str:
    """The host's CA bundle ($SSL_CERT_FILE, else the distribution's), or ""."""
    for path in (os.environ.get("SSL_CERT_FILE") or "", *_CA_BUNDLES):
        if path and os.path.isfile(path):
            return path
    return ""


class BuildService:
    def __init__(self, state: State, containers: Callable[[], ContainerManager],
                 resolve_image: Callable[[str], Image] | None = None):
        self.state = state
        # The engine's container manager, built when a step first needs it.
        self.containers = containers
        # How FROM and COPY --from get an image that is not here (a pull).
        self.resolve_image = resolve_image

    def context_from_directory(self, path: str, dockerfile: str | None = None,
                               dockerfile_text: str | None = None) -> BuildContext:
        return context_from_directory(path, dockerfile, dockerfile_text)

    def context_from_stream(self, stream: BinaryIO, dockerfile: str | None = None) -> BuildContext:
        workdir = Path(tempfile.mkdtemp(prefix="context-", dir=self.state.subdir("builds")))
        return context_from_archive(stream, workdir, dockerfile)

    def build(self, context: BuildContext, options: BuildOptions, out: Output) -> BuildResult:
        builder = Builder(self.state, self.containers, out, pull=self.resolve_image)
        return builder.build(context, options)
