# Gatehouse image: `docker compose up` (see docker-compose.yml) or
#   docker build -t gatehouse . && docker run -e MASTER_KEY=... -e ISSUER=https://... -e DATABASE_URL=... -p 3000:3000 gatehouse

# Shared by the two build stages: the toolchain node-gyp needs for native addons
# (argon2, when it is added, compiles from source), so the runtime image needs no compiler.
FROM node:22-bookworm-slim AS toolchain
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 make g++ \
 && rm -rf /var/lib/apt/lists/*
# The official image ships Node's headers in /usr/local/include/node; pointing node-gyp
# there builds against exactly this Node and avoids fetching headers from nodejs.org.
ENV npm_config_nodedir=/usr/local
WORKDIR /app
COPY package.json package-lock.json ./

# Compile TypeScript. --ignore-scripts skips the root `prepare` (we build explicitly below)
# and the `node` devDependency's preinstall, which would download a second Node binary
# from the registry; the image's own Node 22 is the one we want.
FROM toolchain AS build
RUN npm ci --ignore-scripts
COPY tsconfig.json tsconfig.build.json ./
COPY src ./src
# Run tsc with the image's node, not through `npm run`/`npx`: those put node_modules/.bin
# first on PATH, where the `node` devDependency's bin would shadow the real Node.
RUN node node_modules/typescript/bin/tsc -p tsconfig.build.json

# Production dependencies only, installed without lifecycle scripts (the root `prepare`
# needs the dev-only TypeScript), then rebuilt so native addons compile here, against this
# image's glibc and Node ABI. With no native dependency the rebuild is a no-op; a failed
# compile fails the build rather than shipping a package without its binary.
FROM toolchain AS prod-deps
RUN npm ci --omit=dev --ignore-scripts \
 && npm rebuild --build-from-source

# Runtime: no compiler, no dev dependencies, no sources.
FROM node:22-bookworm-slim
ENV NODE_ENV=production \
    DATA_DIR=/app/data
WORKDIR /app
# Application files stay root-owned so the server cannot rewrite its own code; package.json
# is needed at runtime for "type": "module".
COPY package.json ./
COPY --from=prod-deps /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
COPY migrations ./migrations
COPY views ./views
COPY bin ./bin
# DATA_DIR is the only writable path: the embedded database when DATABASE_URL is unset
# (mount a volume here to keep it).
RUN mkdir -p /app/data && chown node:node /app/data
USER node
# PORT (public) and MANAGEMENT_PORT (/healthz, /readyz, /metrics: keep it off the public network).
EXPOSE 3000 9000
# The slim image has no curl; Node 22's fetch does the probe. /healthz says the process is
# alive; orchestrators that route traffic should use /readyz (database and migrations).
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:' + (process.env.PORT || 3000) + '/healthz', { signal: AbortSignal.timeout(4000) }).then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1))"]
# node as PID 1 is fine: main.ts handles SIGTERM and SIGINT itself (graceful shutdown).
# A heap cap sizes V8's collection thresholds to a server, not to the host: peak RSS under load
# drops from ~265 to ~190 MiB (bench/README.md, Performance). Same flag as `npm start`.
# Two glibc malloc arenas instead of one per thread: argon2's 19 MiB blocks (in the password
# process, which inherits this) otherwise stay resident in each thread's arena (bench/README.md).
# Same as `npm start`.
ENV MALLOC_ARENA_MAX=2
CMD ["node", "--max-old-space-size=512", "--experimental-async-context-frame", "dist/main.js"]
