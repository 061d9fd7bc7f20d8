# The Samlad gateway: `samlad serve` from the wheel, its dependencies from the runtime lock.
#
#   docker build -t samlad .
#   docker run -p 8000:8000 -v ./samlad.toml:/etc/samlad/samlad.toml:ro \
#       -v samlad-data:/var/lib/samlad -e SAMLAD_DATABASE_URL=postgresql://... \
#       -e SAMLAD_ID_KEY=... -e SAMLAD_DATA_KEY=... -e SAMLAD_AUDIT_CHECKPOINT_KEY=... samlad
#
# Every package comes from requirements/*.txt with its hash checked (pip --require-hashes).
# PYTHON_IMAGE names the base: any Debian-based image with CPython 3.11 or later at
# `python` (for a registry mirror: --build-arg PYTHON_IMAGE=mirror.example/python:3.11-slim).
# See docs/operations.md#container-image.
ARG PYTHON_IMAGE=python:3.11-slim

# -- Build the wheel (the build backend pinned too: no build isolation, nothing unpinned).
FROM ${PYTHON_IMAGE} AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
WORKDIR /src
COPY requirements/build.txt requirements/build.txt
RUN python -m venv /opt/build \
    && /opt/build/bin/pip install --quiet --require-hashes -r requirements/build.txt
COPY pyproject.toml README.md LICENSE ./
COPY gateway gateway
COPY adapters adapters
COPY consent consent
COPY store store
COPY fhir_profiles fhir_profiles
COPY simregions simregions
RUN /opt/build/bin/pip wheel --quiet --no-deps --no-build-isolation -w /dist .

# -- The image: a venv with the runtime lock and the wheel, run as an unprivileged user.
FROM ${PYTHON_IMAGE}
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1 \
    PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 \
    PATH=/opt/samlad/bin:$PATH
# The dependencies first, in their own layer: it changes only when the lock does.
COPY requirements/runtime.txt /tmp/runtime.txt
RUN python -m venv /opt/samlad \
    && /opt/samlad/bin/pip install --quiet --require-hashes -r /tmp/runtime.txt \
    && rm /tmp/runtime.txt
COPY --from=build /dist/ /tmp/dist/
RUN /opt/samlad/bin/pip install --quiet --no-deps /tmp/dist/samlad-*.whl \
    && /opt/samlad/bin/pip check \
    && rm -r /tmp/dist
RUN groupadd --gid 10001 samlad \
    && useradd --uid 10001 --gid samlad --no-create-home --home-dir /var/lib/samlad \
       --shell /usr/sbin/nologin samlad \
    && mkdir -p /var/lib/samlad /etc/samlad \
    && chown samlad:samlad /var/lib/samlad
# Listen on every interface of the container (the file's `host` and `port` are
# overridden: SAMLAD_* variables win over the file); data_dir holds the access log's
# checkpoint file and the SQLite default.
ENV SAMLAD_HOST=0.0.0.0 SAMLAD_PORT=8000 SAMLAD_DATA_DIR=/var/lib/samlad
USER samlad:samlad
WORKDIR /var/lib/samlad
EXPOSE 8000
# Mount the configuration (issuers, sources) at /etc/samlad/samlad.toml. `docker stop`
# sends SIGTERM: the gateway finishes its open requests (up to 30 s) and stops, so give
# it `--time 35` (compose: stop_grace_period).
STOPSIGNAL SIGTERM
HEALTHCHECK --interval=10s --timeout=3s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen(f\"http://127.0.0.1:{os.environ.get('SAMLAD_PORT', '8000')}/livez\", timeout=2)"]
ENTRYPOINT ["samlad"]
CMD ["serve", "--config", "/etc/samlad/samlad.toml"]
