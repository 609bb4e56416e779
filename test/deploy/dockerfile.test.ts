/**
 * The Dockerfile has the production properties (checked without a Docker engine): multi-stage,
 * non-root, the service port and the gRPC port exposed, the .proto files shipped, a health
 * check, SIGTERM drained through tini. The lint itself is shown to catch each property on a
 * broken copy.
 */
import fs from 'node:fs'
import path from 'node:path'
import t from 'tap'
import { DEFAULTS } from '../../src/config'
import { lintDockerfile, parseStages, parseEnv, execForm, parseCopy } from '../../scripts/dockerfile'
import { jemallocCandidates } from '../../src/allocator'
import { OLD_SPACE_FLOOR } from '../../src/heap'

const root = path.join(__dirname, '..', '..')
const dockerfile = fs.readFileSync(path.join(root, 'Dockerfile'), 'utf8')
const pkg = JSON.parse(fs.readFileSync(path.join(root, 'package.json'), 'utf8'))
const expect = {
  port: DEFAULTS.port,
  entry: pkg.main as string,
  nodeMajor: Number(/(\d+)/.exec(pkg.engines.node)?.[1])
}

t.test('the Dockerfile passes the lint', async t => {
  t.same(lintDockerfile(dockerfile, expect), [])
})

t.test('the final stage runs the built entry point as a non-root user', async t => {
  const stages = parseStages(dockerfile)
  t.ok(stages.length >= 2, 'multi-stage')
  const final = stages[stages.length - 1]
  const user = final.instructions.filter(i => i.op === 'USER').pop()
  t.equal(user?.args, 'node', 'the node image\'s unprivileged user (uid 1000, as deploy/k8s runs it)')
  const env = Object.assign({}, ...final.instructions.filter(i => i.op === 'ENV').map(i => parseEnv(i.args)))
  t.equal(env.NODE_ENV, 'production')
  t.equal(Number(env.PORT), DEFAULTS.port)
  const cmd = execForm(final.instructions.filter(i => i.op === 'CMD').pop()?.args ?? '')
  t.same(cmd, ['node', OLD_SPACE_FLOOR, pkg.main], 'with the heap\'s floor (src/heap.ts): NODE_OPTIONS may not carry it')
  // everything the runtime needs: dist, node_modules and package.json from the build stage, proto/ from the context
  const copies = final.instructions.filter(i => i.op === 'COPY').map(i => parseCopy(i.args))
  t.same(copies.filter(c => c.flags.from === 'build').flatMap(c => c.sources).map(s => s.replace(/^\/app\//, '')).sort(), ['dist', 'node_modules', 'package.json'])
  t.same(copies.filter(c => c.flags.from === undefined).map(c => [c.sources, c.dest]), [[['proto'], './proto']], 'proto/ beside dist/: the gRPC front door loads it at start-up')
})

t.test('the gRPC port: exposed, and the default the image sets', async t => {
  const final = parseStages(dockerfile).pop()!
  const exposed = final.instructions.filter(i => i.op === 'EXPOSE').flatMap(i => i.args.split(' ').map(p => Number(p.split('/')[0])))
  t.ok(exposed.includes(DEFAULTS.grpcPort), `EXPOSE ${DEFAULTS.grpcPort} (${exposed.join(', ')})`)
  const env = Object.assign({}, ...final.instructions.filter(i => i.op === 'ENV').map(i => parseEnv(i.args)))
  t.equal(Number(env.GRPC_PORT), DEFAULTS.grpcPort)
})

t.test('the final stage installs jemalloc where ALLOCATOR=jemalloc looks first (src/allocator.ts)', async t => {
  const final = parseStages(dockerfile).pop()!
  const run = final.instructions.filter(i => i.op === 'RUN').map(i => i.args).join('\n')
  t.match(run, /apt-get install [^&]*\blibjemalloc2\b/)
  t.match(run, new RegExp(`ln -s .+ ${jemallocCandidates()[0]}`), `linked at ${jemallocCandidates()[0]}`)
})

t.test('.dockerignore keeps host builds and modules out of the context', async t => {
  const ignored = fs.readFileSync(path.join(root, '.dockerignore'), 'utf8').split(/\r?\n/).map(l => l.trim())
  for (const p of ['node_modules', 'dist', '.git']) t.ok(ignored.includes(p), `${p} is ignored`)
})

// Each broken copy must be caught, with a message naming the property.
const breakages: Array<[string, (s: string) => string, RegExp]> = [
  ['single stage', s => s.replace(/^FROM node:20-bookworm-slim AS runtime$/m, '').replace(/--from=build /g, ''), /multi-stage/],
  ['dev dependencies shipped', s => s.replace(/ && npm prune --omit=dev/, ''), /dev dependencies/],
  ['no USER', s => s.replace(/^USER node$/m, ''), /^USER: the final stage runs as root/],
  ['USER root', s => s.replace(/^USER node$/m, 'USER root'), /^USER root: must not be root/],
  ['wrong EXPOSE', s => s.replace(/^EXPOSE 8080 8081$/m, 'EXPOSE 3000 8081'), /^EXPOSE: 8080/],
  ['no HEALTHCHECK', s => s.replace(/^HEALTHCHECK[^\n]*\\\n[^\n]*\n/m, ''), /^HEALTHCHECK: missing/],
  ['STOPSIGNAL SIGINT', s => s.replace(/^STOPSIGNAL SIGTERM$/m, 'STOPSIGNAL SIGINT'), /^STOPSIGNAL/],
  ['no tini', s => s.replace(/^ENTRYPOINT .*$/m, ''), /^ENTRYPOINT/],
  ['tini not installed', s => s.replace(/--no-install-recommends tini/, '--no-install-recommends curl'), /never installed/],
  ['shell-form CMD', s => s.replace(/^CMD \[.*\]$/m, 'CMD node dist/src/server.js'), /^CMD: expected exec form/],
  ['CMD running another file', s => s.replace(/^CMD \[.*\]$/m, 'CMD ["node", "--initial-old-space-size=64", "dist/src/other.js"]'), /^CMD: expected \["node", \(node flags,\) "dist\/src\/server.js"\]/],
  ['CMD with a script argument before the entry', s => s.replace(/^CMD \[.*\]$/m, 'CMD ["node", "-r", "dist/src/server.js"]'), /^CMD: expected/],
  ['old Node', s => s.replace(/^FROM node:20-bookworm-slim AS runtime$/m, 'FROM node:18-bookworm-slim AS runtime'), /older than package.json engines/]
]

for (const [name, breakIt, message] of breakages) {
  t.test(`the lint catches: ${name}`, async t => {
    const broken = breakIt(dockerfile)
    t.not(broken, dockerfile, 'the breakage applies to the current Dockerfile')
    const problems = lintDockerfile(broken, expect)
    t.ok(problems.some(p => message.test(p)), `${message} in ${JSON.stringify(problems)}`)
  })
}
