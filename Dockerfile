# pman's REST service under gunicorn.
#
#   docker build -t pman .
#   docker run -p 5010:5010 -e JOB_NAMESPACE=chris -e PMAN_API_TOKEN=... pman
#
# Settings are environment variables (README.rst, "Configuration"). The image runs
# as a non-root user and also as any UID with group 0, as OpenShift's restricted
# policy assigns; it writes nothing outside /tmp and /dev/shm.
FROM python:3.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /opt/pman
COPY pyproject.toml setup.py README.rst ./
COPY pman ./pman
COPY publisher ./publisher
COPY localcluster ./localcluster
COPY devstack ./devstack
COPY swiftcreds ./swiftcreds
RUN pip install ".[server]" \
    && rm -rf /opt/pman/build \
    && chgrp -R 0 /opt/pman \
    && chmod -R g=u /opt/pman

USER 1001:0
EXPOSE 5010
HEALTHCHECK CMD python -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:5010/healthz')"
CMD ["gunicorn", "--config", "python:pman.gunicorn_conf"]
