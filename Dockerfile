# syntax=docker/dockerfile:1
# losshub: build with dev dependencies, run with production dependencies only.

FROM node:20-bookworm-slim AS build
WORKDIR /app
COPY package.json package-lock.json .npmrc ./
RUN npm ci --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
COPY src ./src
COPY schemas ./schemas
RUN npm run build && npm prune --omit=dev

FROM node:20-bookworm-slim AS runtime
# tini is PID 1 so SIGTERM reaches Node and the process drains before exit
# jemalloc, which ALLOCATOR (default jemalloc) preloads into cluster workers (a single process,
# WORKERS=1, takes LD_PRELOAD=/usr/local/lib/libjemalloc.so.2 and MALLOC_CONF, as deploy/k8s
# sets them): it hands memory freed by past requests back to the system, where glibc's malloc
# keeps it (src/allocator.ts); linked at one path for every architecture
RUN apt-get update && apt-get install -y --no-install-recommends tini libjemalloc2 \
  && ln -s "$(ls /usr/lib/*-linux-gnu/libjemalloc.so.2)" /usr/local/lib/libjemalloc.so.2 \
  && rm -rf /var/lib/apt/lists/*
ENV NODE_ENV=production PORT=8080 GRPC_PORT=8081 HOST=0.0.0.0
# glibc keeps freed blocks below its (self-raising, up to 32 MiB) mmap threshold in the heap: a
# fixed 4 MiB threshold gives a large request's tensor buffers back to the OS when it ends, and
# transparent huge pages make mapping them afresh cheap (bench/README.md, "malloc")
ENV GLIBC_TUNABLES=glibc.malloc.mmap_threshold=4194304:glibc.malloc.hugetlb=1:glibc.malloc.arena_max=2
WORKDIR /app
COPY --from=build /app/package.json ./package.json
COPY --from=build /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
# the Open Inference Protocol's .proto files, which the gRPC front door loads at start-up
COPY proto ./proto
USER node
# HTTP (REST, /metrics, probes) and gRPC (the Open Inference Protocol, grpc.health.v1)
EXPOSE 8080 8081
STOPSIGNAL SIGTERM
HEALTHCHECK --interval=10s --timeout=3s --start-period=20s --retries=3 \
  CMD node -e "fetch('http://127.0.0.1:'+(process.env.PORT||8080)+'/healthz').then(r=>process.exit(r.ok?0:1),()=>process.exit(1))"
ENTRYPOINT ["/usr/bin/tini", "--"]
# a floor under the heap's old generation limit (src/heap.ts): NODE_OPTIONS may not carry it
CMD ["node", "--initial-old-space-size=64", "dist/src/server.js"]
