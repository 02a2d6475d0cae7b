# Multi-stage build: one image holding api, worker, scheduler and ptctl.
FROM golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=0 go build -trimpath -ldflags="-s -w" -o /out/ ./cmd/...

FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates tzdata \
    && rm -rf /var/lib/apt/lists/* && useradd -r -u 10001 passbatch && mkdir -p /data/files && chown passbatch /data/files
COPY --from=build /out/ /usr/local/bin/
USER passbatch
ENV STORAGE_DIR=/data/files
EXPOSE 8080 9101
CMD ["api"]
