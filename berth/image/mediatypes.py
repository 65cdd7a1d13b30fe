"""Media types of the OCI image spec and Docker's schema2 equivalents."""

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar"
OCI_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
OCI_LAYER_ZSTD = "application/vnd.oci.image.layer.v1.tar+zstd"
OCI_LAYER_NONDIST_GZIP = "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip"

DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_MANIFEST_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
DOCKER_LAYER_GZIP = "application/vnd.docker.image.rootfs.diff.tar.gzip"
DOCKER_LAYER = "application/vnd.docker.image.rootfs.diff.tar"
DOCKER_LAYER_FOREIGN = "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip"

MANIFESTS = {OCI_MANIFEST, DOCKER_MANIFEST}
UNCOMPRESSED_LAYERS = {OCI_LAYER, DOCKER_LAYER}
# A layer's type in a Docker schema2 manifest, by its OCI type.
DOCKER_LAYER_TYPES = {OCI_LAYER: DOCKER_LAYER, OCI_LAYER_GZIP: DOCKER_LAYER_GZIP}
INDEXES = {OCI_INDEX, DOCKER_MANIFEST_LIST}
FOREIGN_LAYERS = {DOCKER_LAYER_FOREIGN, OCI_LAYER_NONDIST_GZIP,
                  "application/vnd.oci.image.layer.nondistributable.v1.tar"}

# Annotations naming an image inside an OCI layout.
ANNOTATION_REF_NAME = "org.opencontainers.image.ref.name"
ANNOTATION_CONTAINERD_NAME = "io.containerd.image.name"
