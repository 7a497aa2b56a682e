# CI only: Caddy and Pebble from Debian, since no image can be pulled on the CI machines.
# Build with --target caddy or --target pebble; no build context is needed.
# Users run the official caddy image (compose.yaml); Pebble, Let's Encrypt's ACME test server,
# only ever serves the tests.
ARG PYTHON_IMAGE=qcompute-python:trixie

# The official image's layout, on which compose.yaml relies: the Caddyfile in /etc/caddy, state in
# /data and /config, caddy run as root (compose drops all capabilities but binding low ports), and a
# wget for the healthcheck (busybox's in the official Alpine image).
FROM ${PYTHON_IMAGE} AS caddy
RUN apt-get update -qq \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends caddy wget \
 && rm -rf /var/lib/apt/lists/* /var/cache/apt/* \
 && mkdir -p /config/caddy /data/caddy /etc/caddy /srv
ENV XDG_CONFIG_HOME=/config XDG_DATA_HOME=/data
EXPOSE 80 443 443/udp 2019
WORKDIR /srv
CMD ["caddy", "run", "--config", "/etc/caddy/Caddyfile", "--adapter", "caddyfile"]

FROM ${PYTHON_IMAGE} AS pebble
RUN apt-get update -qq \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends pebble \
 && rm -rf /var/lib/apt/lists/* /var/cache/apt/*
USER 65534:65534
EXPOSE 14000 15000
CMD ["pebble", "-config", "/etc/pebble/pebble-config.json"]
