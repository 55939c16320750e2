# Runtime image for xen_exporter in a Xen Dom0. The binary is built on the host by cargo and
# copied in: no compiler image and no registry are needed to build this.
#
#   cargo build --release --locked
#   buildah build --pull=never -t localhost/xen_exporter:latest .      # or: docker build -t ... .
#
# BASE must provide glibc (the binary is a dynamic glibc executable that dlopens libxenstat).
# With no registry, make one with debootstrap: .ci/docker.sh shows how. Mounts, capabilities and
# where libxenstat comes from: docs/deployment.md.
ARG BASE=localhost/debian:bookworm-slim
FROM ${BASE}

# Xen's user-space libraries to install, matching the Dom0's hypervisor: libxenmisc4.17 on
# Debian 12 (it brings libxenctrl and libxenstore). Empty: mount the host's instead, at
# /opt/xen/lib (searched through LD_LIBRARY_PATH below).
ARG XEN_PACKAGES=""
# The package's version must match the host's Xen, which only the operator knows: no pin here.
# Word splitting of XEN_PACKAGES is intended (a list of packages).
# hadolint ignore=DL3008,SC2086
RUN if [ -n "$XEN_PACKAGES" ]; then \
        apt-get update \
        && apt-get install -y --no-install-recommends $XEN_PACKAGES \
        && rm -rf /var/lib/apt/lists/*; \
    fi

ARG BINARY=target/release/xen_exporter
COPY --chmod=0755 ${BINARY} /usr/local/bin/xen_exporter

ENV LD_LIBRARY_PATH=/opt/xen/lib

LABEL org.opencontainers.image.title="xen_exporter" \
      org.opencontainers.image.description="Prometheus exporter for Xen Dom0: xentop metrics, VBD_OO, I/O rings, latency probes" \
      org.opencontainers.image.licenses="Apache-2.0"

# libxenstat needs /dev/xen/privcmd and xenstore, which only root may open: the container runs
# as root, confined by the runtime (see docs/deployment.md for the capabilities it keeps).
EXPOSE 19603
ENTRYPOINT ["/usr/local/bin/xen_exporter"]
