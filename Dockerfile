# Warden's image: `docker build -t warden .`, then `docker run IMAGE gateway|agents|dashboard|start|
# migrate|audit verify|…` (the entry point is the `warden` command line; the default is `gateway`).
#
# NODE_IMAGE is the base of both stages. The default is the official slim image of Node 26, the
# active LTS. better-sqlite3 12.x (the SQLite store) declares engines up to 25.x, but it compiles
# from source and passes the image test and the Node smoke run on 26 (README, "Deploying"); npm
# prints an EBADENGINE warning for it. Machines that cannot pull from a registry build a local
# base first (scripts/docker-base.sh 26) and pass --build-arg NODE_IMAGE=warden-node-base:26.
ARG NODE_IMAGE=node:26-slim

# ---- builder: dependencies, the native module, the TypeScript build and the dashboard bundle ----
FROM ${NODE_IMAGE} AS builder
# better-sqlite3 has no prebuilt binary reachable offline: it compiles against the headers that
# ship with Node (/usr/local/include/node), with a C/C++ tool chain.
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 make g++ \
 && rm -rf /var/lib/apt/lists/*
ENV npm_config_nodedir=/usr/local \
    npm_config_update_notifier=false \
    npm_config_fund=false \
    npm_config_audit=false
WORKDIR /src
COPY package.json package-lock.json ./
# Scripts are skipped here (`prepare` needs the sources) and run for the two packages that need
# theirs: this layer is reused as long as the lock file does not change.
RUN npm ci --ignore-scripts && npm rebuild better-sqlite3 esbuild
COPY tsconfig.json tsconfig.build.json ./
COPY src ./src
COPY dashboard ./dashboard
RUN npm run build && npm prune --omit=dev

# ---- runtime: production dependencies, the build output, configuration and models ----
FROM ${NODE_IMAGE} AS runtime
ENV NODE_ENV=production \
    # The gateway (HOST overrides server.host), the agent API and the dashboard listen on
    # loopback by default; in a container that would make them unreachable. Publish their ports
    # only where they should be reached.
    HOST=0.0.0.0 \
    AGENTS_HOST=0.0.0.0 \
    DASHBOARD_HOST=0.0.0.0 \
    # The container configuration (config/compose: the demo's agents and tools, decisions readable
    # with an approver token only), not config/demo. Its keys are still the public demo keys, so
    # the gateway refuses to listen on 0.0.0.0 until told twice: run the image with
    # -e WARDEN_DEMO_PUBLIC=1 to try it, or mount your own configuration (WARDEN_CONFIG).
    WARDEN_CONFIG=/app/config/compose/warden.yaml
WORKDIR /app
RUN groupadd --system --gid 10001 warden \
 && useradd --system --uid 10001 --gid warden --home-dir /app --no-create-home \
      --shell /usr/sbin/nologin warden \
 && mkdir -p /app/data \
 && chown warden:warden /app/data
COPY --from=builder /src/package.json /src/package-lock.json ./
COPY --from=builder /src/node_modules ./node_modules
COPY --from=builder /src/dist ./dist
COPY --from=builder /src/dashboard/dist ./dashboard/dist
COPY bin ./bin
COPY models ./models
COPY config ./config
COPY docker/healthcheck.js ./docker/healthcheck.js
USER 10001:10001
# The embedded SQLite audit log (config: store.sqlite_path, data/warden.db) and the agent API's
# held runs (data/agent-runs.db). Unused with DATABASE_URL (PostgreSQL).
VOLUME ["/app/data"]
EXPOSE 8004 8005 8006
# Readiness of whatever this container runs: the gateway's /health/ready (PORT, default 8004), the
# agent API's /health (AGENTS_PORT), the dashboard's page (DASHBOARD_PORT).
HEALTHCHECK --interval=10s --timeout=5s --start-period=30s --retries=3 \
  CMD ["node", "docker/healthcheck.js"]
ENTRYPOINT ["node", "bin/warden.js"]
CMD ["gateway"]
