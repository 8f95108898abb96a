# The one project image: `tensor-fusion controller`, `tensor-fusion agent`, and libtfshim.so
# for the init container that converted pods run (python3 -m tensorfusion.webhook.worker_setup
# --copy-shim-to ...). The chart's controller.image and agent.image name it.
#
# Images cannot be built on the machines this project is developed on (no container
# runtime); build it where Docker or BuildKit runs:
#   docker build -t tensorfusion/tensor-fusion-operator:0.1.0 .
# Everything is installed from this repository with pip at build time; nothing is fetched
# when a container runs.

FROM python:3.11-slim-bookworm AS build
RUN apt-get update \
 && apt-get install -y --no-install-recommends g++ cmake make \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
# The native core and the shim are built by scikit-build-core into the wheel.
RUN pip wheel --no-cache-dir --wheel-dir /wheels .

FROM python:3.11-slim-bookworm
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir /wheels/*.whl && rm -rf /wheels
# The chart runs the controller as this user (runAsNonRoot); the agent runs as root only to
# own its host directories.
RUN useradd --uid 65532 --no-create-home --shell /usr/sbin/nologin tensor-fusion
USER 65532
ENTRYPOINT ["tensor-fusion"]
CMD ["--help"]
