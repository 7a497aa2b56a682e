# CI only: LocalStack 4.14.0 built offline from the frozen requirement set, since no image can be
# pulled on the CI machines. It matches the official image where compose.local.yaml relies on it:
# the Python at /opt/code/localstack/.venv and the init hooks under /etc/localstack/init.
# Build context: requirements/. Users run the official localstack/localstack:4.14.0 instead.
ARG PYTHON_IMAGE=qcompute-python:ci
ARG WHEELHOUSE=qcompute-localstack-wheels:ci

FROM ${WHEELHOUSE} AS wheelhouse

FROM ${PYTHON_IMAGE} AS build
COPY --from=wheelhouse /wheels /wheels
COPY localstack-host.txt /tmp/requirements.txt
# --no-deps: the frozen set is complete, and pip's own choices break LocalStack 4.14.
RUN python3 -m venv /opt/code/localstack/.venv \
 && /opt/code/localstack/.venv/bin/pip install --no-cache-dir --no-index --find-links /wheels --no-deps \
      -r /tmp/requirements.txt

FROM ${PYTHON_IMAGE}
COPY --from=build /opt/code/localstack/.venv /opt/code/localstack/.venv
ENV GATEWAY_LISTEN=0.0.0.0:4566 DNS_ADDRESS=0 SKIP_SSL_CERT_DOWNLOAD=1 DISABLE_EVENTS=1
EXPOSE 4566
CMD ["/opt/code/localstack/.venv/bin/python", "-m", "localstack.runtime.main"]
