# Ferry's one image. Stage "server" runs `ferry app`, `ferry proxy`, `ferry migrate` and ECS build tasks
# (`ferry build`) as the non-root user ferry; it is what the release workflow pushes. Stage "action", the LAST
# stage, is what GitHub builds for `uses: ferryhq/ferry@v1` (action.yml: `image: Dockerfile`, args ["action"]).
#
# Base images are pinned to exact version tags rather than digests: no digest could be read from a registry
# on the machine that wrote this file, and a made-up digest would only break the build. Bump the versions
# here on purpose; the release workflow records the digests it resolved in the image's provenance.
# deploy/deploy_test.go checks these pins, the stages, and runs every RUN step's commands (see deploy/README.md).

# GO_VERSION must be at least go.mod's go line. GOTOOLCHAIN=local below turns a mismatch into an error
# rather than a silent toolchain download.
ARG GO_VERSION=1.26.8
# Node.js 22 (LTS) is what user builds run with; bookworm matches the Debian release the apt step is checked
# against. Pass --build-arg NODE_VERSION=... to build sites with another Node.js.
ARG NODE_VERSION=22.23.4

FROM golang:${GO_VERSION}-bookworm AS build
ENV GOTOOLCHAIN=local
WORKDIR /src
# Modules first, so that a source change does not download them again.
COPY go.mod go.sum ./
RUN go mod download
COPY . .
# A static, stripped binary without local paths: it runs on any base and leaks nothing of the build machine.
RUN CGO_ENABLED=0 go build -trimpath -ldflags="-s -w" -o bin/ferry .

FROM node:${NODE_VERSION}-bookworm-slim AS server
# git clones the repositories to build; bubblewrap is the local builder's sandbox; ca-certificates for TLS to
# GitHub, S3 and the npm registry. prlimit (the build limits) comes with util-linux, which Debian always has.
# Package versions are not pinned: Debian's security updates replace them, and a pinned version would then
# fail to install.
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends bubblewrap ca-certificates git \
 && rm -rf /var/lib/apt/lists/*
# A fixed uid, so that volumes and Kubernetes' runAsNonRoot can rely on it. --no-log-init: no sparse lastlog
# entry sized by the uid.
RUN groupadd --system --gid 10001 ferry \
 && useradd --system --no-log-init --uid 10001 --gid ferry --home-dir /home/ferry --create-home --shell /usr/sbin/nologin ferry
COPY --from=build /src/bin/ferry /usr/local/bin/ferry
USER 10001:10001
WORKDIR /home/ferry
# The app listens on 8080, the proxy on 8081 (their --listen defaults).
EXPOSE 8080 8081
ENTRYPOINT ["ferry"]
# Replaces the node image's CMD ["node"]: with no arguments, ferry prints its commands.
CMD ["-h"]

FROM server AS action
# GitHub runs Docker actions as the image's user and documents that they must run as root: the mounted
# /github/workspace and the GITHUB_OUTPUT and GITHUB_STEP_SUMMARY files under /github/file_commands belong to
# the runner's user, which a uid of 10001 cannot write. The Action builds in the runner's own VM with
# --sandbox=none, so root here grants nothing the workflow does not already have.
USER root
