# Fulcrum in a container: a multi-stage build to a small Debian image, running as a
# non-root user, with the demo config as the default config (mount yours over
# /etc/fulcrum/fulcrum.toml). `scripts/check-dockerfile` (in CI) runs the build
# stage's commands in an ordinary shell and checks every path copied.
#
#   docker build -t fulcrum .
#   docker run --rm -p 8080:8080 -v $PWD/my.toml:/etc/fulcrum/fulcrum.toml:ro fulcrum

FROM rust:1-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked -p fulcrum
RUN mkdir -p /out && cp target/release/fulcrum /out/fulcrum && \
    /out/fulcrum manpage | gzip -9n > /out/fulcrum.1.gz

FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates && \
    rm -rf /var/lib/apt/lists/* && \
    useradd --system --home /var/lib/fulcrum --shell /usr/sbin/nologin fulcrum && \
    mkdir -p /var/lib/fulcrum /etc/fulcrum && chown fulcrum:fulcrum /var/lib/fulcrum
COPY --from=build /out/fulcrum /usr/bin/fulcrum
COPY --from=build /out/fulcrum.1.gz /usr/share/man/man1/fulcrum.1.gz
COPY config/demo.toml /etc/fulcrum/fulcrum.toml
COPY config/reference.toml /usr/share/doc/fulcrum/reference.toml
USER fulcrum
EXPOSE 8080
# SIGTERM drains; SIGHUP reloads (docker kill -s HUP).
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/bin/fulcrum"]
CMD ["run", "--config", "/etc/fulcrum/fulcrum.toml"]
