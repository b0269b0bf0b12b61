# syntax=docker/dockerfile:1
# nginx-rtmp for the streams app's `nginx` engine: Debian's nginx and libnginx-mod-rtmp, the packages the
# tests run (tests/apps/streams/test_ingest_nginx.py).
#   docker build -f deploy/docker/nginx-rtmp.Dockerfile -t pentad-nginx-rtmp deploy/docker
# It runs the config `pentad streams nginx-config --managed -o <prefix>/nginx.conf` writes (foreground, one
# process), in the network namespace of the Pentad process running the media plane (compose: network_mode
# service:streams; Kubernetes: a container of the streams pod), so the callbacks and Pentad's pull of each
# live stream stay on loopback. No secret in the image: the config, which holds the callbacks' secret, is
# mounted at run time.
FROM debian:bookworm-slim
RUN apt-get update \
    && apt-get install -y --no-install-recommends nginx libnginx-mod-rtmp \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --system --gid 10001 pentad \
    && useradd --system --uid 10001 --gid pentad --no-create-home --shell /usr/sbin/nologin pentad \
    && mkdir -p /var/lib/nginx-rtmp \
    && chown pentad:pentad /var/lib/nginx-rtmp
USER 10001:10001
VOLUME ["/var/lib/nginx-rtmp"]
EXPOSE 1935
HEALTHCHECK --interval=15s --timeout=5s --start-period=10s --retries=3 \
    CMD ["bash", "-c", "exec 3<>/dev/tcp/127.0.0.1/1935"]
ENTRYPOINT ["/usr/sbin/nginx", "-e", "stderr"]
CMD ["-p", "/var/lib/nginx-rtmp", "-c", "/var/lib/nginx-rtmp/nginx.conf"]
