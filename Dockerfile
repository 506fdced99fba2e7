# pman's REST service under gunicorn.
#
#   docker build -t pman .
#   docker run -p 5010:5010 -e JOB_NAMESPACE=chris -e PMAN_API_TOKEN=... \
#       -v $HOME/.kube/config:/etc/pman/kubeconfig:ro -e KUBECONFIG=/etc/pman/kubeconfig pman
#
# Settings are environment variables (README.rst, "Configuration"); in a pod, pman uses the
# pod's service account. With no Kubernetes configuration at all, pman exits at start and
# says so. The image runs as a non-root user and also as any UID with group 0, as
# OpenShift's restricted policy assigns; it writes nothing outside /tmp and /dev/shm.

# The wheels pman installs, from PyPI. A builder that cannot reach PyPI replaces this stage
# with a directory whose wheels/ holds them (podman build --build-context wheels=DIR; see
# "Building the images" in README.rst): the image's own stage fetches nothing either way.
FROM python:3.11-slim-bookworm AS wheels
WORKDIR /src
COPY pyproject.toml setup.py README.rst ./
RUN pip download --quiet --dest /wheels ".[server]" "setuptools>=77"

FROM python:3.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_ROOT_USER_ACTION=ignore

WORKDIR /opt/pman
COPY pyproject.toml setup.py README.rst ./
COPY pman ./pman
COPY publisher ./publisher
COPY localcluster ./localcluster
COPY devstack ./devstack
COPY swiftcreds ./swiftcreds
RUN --mount=type=bind,from=wheels,source=/wheels,target=/wheels \
    pip install ".[server]" --no-index --find-links /wheels \
    && rm -rf /opt/pman/build \
    && chgrp -R 0 /opt/pman \
    && chmod -R g=u /opt/pman

USER 1001:0
EXPOSE 5010
HEALTHCHECK CMD python -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:5010/healthz')"
CMD ["gunicorn", "--config", "python:pman.gunicorn_conf"]
