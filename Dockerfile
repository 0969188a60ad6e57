# The roomrig image the Kubernetes manifests of `roomrig k8s` run (see README, "Past one
# machine"): build with `docker build -t roomrig:0.1.0 .` and push where the cluster pulls.
#
# Stage 1 builds the release binary; stage 2 is Debian slim with that binary only (its `sh`,
# `date`, `grep` and `cat` run the pods' start and merge scripts).

FROM rust:1-slim-bookworm AS build
WORKDIR /src
# rusqlite (the reference server's chat history) builds bundled SQLite with the C compiler
# the image has.
COPY . .
RUN cargo build --release --locked --bin roomrig \
    && cp target/release/roomrig /usr/local/bin/roomrig

FROM debian:bookworm-slim
COPY --from=build /usr/local/bin/roomrig /usr/local/bin/roomrig
# The pods write their reports to a shared ReadWriteMany volume, whose owner the image cannot
# know (NFS ignores fsGroup): the image keeps the default user.
WORKDIR /work
ENTRYPOINT ["roomrig"]
CMD ["--help"]
