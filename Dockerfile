# siamesed: build and test on Debian 12, then ship the binary, the migrations,
# the default config and a model trained on the packaged Fashion-MNIST in a
# slim runtime image that runs as a non-root user.
#   docker build -t siamesed . && docker run -p 8080:8080 -v siamesed:/var/lib/siamesed siamesed
# The model lives in the image (/usr/local/share/siamesed), outside the data
# volume, so mounting a volume or a host directory there does not hide it.
# The first start writes a random write API key to /var/lib/siamesed/api-key
# (mode 0600) and prints it once in the log (`docker logs`); later starts
# reuse it. Set SIAMESED_API_KEYS to use keys of your own instead.

FROM debian:bookworm-slim AS build
WORKDIR /src
COPY scripts/install-deps.sh scripts/
RUN scripts/install-deps.sh --no-browser && rm -rf /var/lib/apt/lists/*
COPY . .
RUN scripts/test.sh build-test \
 && meson setup build --buildtype=release \
 && meson compile -C build \
 && build/siamesed --train --out /out/model.safetensors --threads 2

FROM debian:bookworm-slim
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      libopenblas0-pthread libmicrohttpd12 libcjson1 libsqlite3-0 libpng16-16 \
      libjpeg62-turbo zlib1g libnettle8 curl \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --home-dir /var/lib/siamesed --create-home --shell /usr/sbin/nologin siamesed
COPY --from=build /src/build/siamesed /usr/local/bin/siamesed
COPY --from=build /src/migrations /usr/local/share/siamesed/migrations
COPY --from=build /src/config/siamesed.conf /etc/siamesed/siamesed.conf
COPY --from=build /out/model.safetensors /usr/local/share/siamesed/model.safetensors
USER siamesed
WORKDIR /var/lib/siamesed
ENV SIAMESED_LISTEN=0.0.0.0:8080 \
    SIAMESED_MODEL=/usr/local/share/siamesed/model.safetensors \
    SIAMESED_DB=/var/lib/siamesed/siamesed.db \
    SIAMESED_API_KEY_FILE=/var/lib/siamesed/api-key \
    SIAMESED_TRAIN_IF_MISSING=no
EXPOSE 8080
VOLUME /var/lib/siamesed
HEALTHCHECK --interval=30s --timeout=3s --start-period=10s \
  CMD curl -fsS http://127.0.0.1:8080/healthz || exit 1
ENTRYPOINT ["/usr/local/bin/siamesed", "--config", "/etc/siamesed/siamesed.conf"]
