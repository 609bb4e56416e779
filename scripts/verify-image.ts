/**
 * npm run verify:image: checks what `docker build` + `docker run` would do, without a Docker
 * engine. It copies the build context (the repo's files that git knows of, less .dockerignore)
 * to a temporary directory, replays the Dockerfile's stages there (WORKDIR, ENV, COPY, RUN;
 * system-package RUNs such as apt-get are skipped: the host's tools stand in), then starts the
 * final stage's CMD from the final stage's directory, with only its ENV (PORT moved to a free
 * port, GRPC_PORT to another) and as a non-root user when run as root. It waits for /readyz,
 * asks the gRPC health service (with the image's own proto/health.proto) whether it serves,
 * runs the HEALTHCHECK command, POSTs a cross_entropy request, checks that no devDependency reached the runtime
 * node_modules, sends the STOPSIGNAL and expects exit code 0.
 *
 * Usage: npm run verify:image [-- --keep]   (--keep leaves the temporary directory)
 */
import { execFileSync, spawn, spawnSync } from 'node:child_process'
import fs from 'node:fs'
import net from 'node:net'
import os from 'node:os'
import path from 'node:path'
import * as grpc from '@grpc/grpc-js'
import * as protoLoader from '@grpc/proto-loader'
import { execForm, parseCopy, parseEnv, parseStages, type Stage } from './dockerfile'

const root = path.join(__dirname, '..')
const keep = process.argv.includes('--keep')
const started = Date.now()

function step (message: string): void {
  console.log(`[verify:image ${((Date.now() - started) / 1000).toFixed(1).padStart(6)}s] ${message}`)
}

function fail (message: string): never {
  throw new Error(message)
}

/** Docker's .dockerignore semantics: path globs from the context root; a match excludes a directory's content; `!` re-includes; the last match wins. */
export function dockerignore (text: string): (file: string) => boolean {
  const rules = text.split(/\r?\n/).map(l => l.trim()).filter(l => l !== '' && !l.startsWith('#')).map(l => {
    const negate = l.startsWith('!')
    const pattern = path.posix.normalize((negate ? l.slice(1) : l).replace(/^\/+/, '')).replace(/\/+$/, '')
    const source = pattern.split(/(\*\*|\*|\?)/).map(part =>
      part === '**' ? '.*' : part === '*' ? '[^/]*' : part === '?' ? '[^/]' : part.replace(/[.+^${}()|[\]\\]/g, '\\$&')).join('')
    return { negate, re: new RegExp(`^${source}$`) }
  })
  return file => {
    const parts = file.split('/')
    const prefixes = parts.map((_, i) => parts.slice(0, i + 1).join('/'))
    let excluded = false
    for (const r of rules) if (prefixes.some(p => r.re.test(p))) excluded = !r.negate
    return excluded
  }
}

/** The build context: tracked and untracked-but-not-gitignored files (what a checkout with local work holds), less .dockerignore. */
function contextFiles (): { files: string[], ignored: number } {
  const listed = execFileSync('git', ['ls-files', '-z', '--cached', '--others', '--exclude-standard'], { cwd: root, encoding: 'utf8', maxBuffer: 64 << 20 })
    .split('\0').filter(f => f !== '' && fs.existsSync(path.join(root, f)))
  const ignorePath = path.join(root, '.dockerignore')
  const ignored = dockerignore(fs.existsSync(ignorePath) ? fs.readFileSync(ignorePath, 'utf8') : '')
  const files = listed.filter(f => !ignored(f))
  return { files, ignored: listed.length - files.length }
}

/** A port nothing listens on now. */
async function freePort (): Promise<number> {
  return await new Promise((resolve, reject) => {
    const s = net.createServer().listen(0, '127.0.0.1', () => {
      const port = (s.address() as net.AddressInfo).port
      s.close(() => resolve(port))
    }).on('error', reject)
  })
}

/** uid/gid of a user named in /etc/passwd, or the nobody account as a stand-in for an image-only user. */
function lookupUser (name: string): { uid: number, gid: number, as: string } {
  const passwd = fs.existsSync('/etc/passwd') ? fs.readFileSync('/etc/passwd', 'utf8') : ''
  for (const line of passwd.split('\n')) {
    const [user, , uid, gid] = line.split(':')
    if (user === name || uid === name) return { uid: Number(uid), gid: Number(gid), as: user }
  }
  return { uid: 65534, gid: 65534, as: `nobody (65534), standing in for the image's "${name}"` }
}

interface StageResult { dir: string, workdir: string, env: Record<string, string>, user?: string }

/** Replays one stage in `dir` (the stage's filesystem root). */
function replay (stage: Stage, dir: string, context: string, done: Map<string, StageResult>): StageResult {
  let workdir = '/'
  const env: Record<string, string> = {}
  let user: string | undefined
  const inStage = (p: string): string => path.join(dir, path.posix.resolve(workdir, p))
  for (const ins of stage.instructions) {
    switch (ins.op) {
      case 'WORKDIR':
        workdir = path.posix.resolve(workdir, ins.args)
        fs.mkdirSync(inStage('.'), { recursive: true })
        break
      case 'ENV':
        Object.assign(env, parseEnv(ins.args))
        break
      case 'USER':
        user = ins.args
        break
      case 'COPY': {
        const { flags, sources, dest } = parseCopy(ins.args)
        const from = flags.from === undefined ? undefined : done.get(flags.from) ?? fail(`line ${ins.line}: COPY --from=${flags.from}: no such stage`)
        const many = sources.length > 1 || dest.endsWith('/')
        for (const src of sources) {
          if (/[*?[]/.test(src)) fail(`line ${ins.line}: COPY globs are not emulated (${src})`)
          const source = from === undefined ? path.join(context, src) : path.join(from.dir, path.posix.resolve('/', src))
          if (!fs.existsSync(source)) fail(`line ${ins.line}: COPY ${src}: not in the ${from === undefined ? 'build context (is it tracked by git? ignored by .dockerignore?)' : `stage ${flags.from}`}`)
          const target = many ? path.join(inStage(dest), path.basename(src)) : inStage(dest)
          fs.mkdirSync(path.dirname(target), { recursive: true })
          fs.cpSync(source, target, { recursive: true, verbatimSymlinks: true })
        }
        break
      }
      case 'RUN': {
        if (/\b(apt-get|apk|yum|dnf)\b/.test(ins.args)) {
          step(`  skip line ${ins.line} RUN ${ins.args.slice(0, 60)}... (system packages: the host's stand in)`)
          break
        }
        step(`  line ${ins.line} RUN ${ins.args}`)
        const r = spawnSync('sh', ['-c', ins.args], { cwd: inStage('.'), env: { ...process.env, ...env }, stdio: ['ignore', 'inherit', 'inherit'] })
        if (r.status !== 0) fail(`line ${ins.line}: RUN exited with ${r.status ?? r.signal}`)
        break
      }
      default:
        break // EXPOSE, HEALTHCHECK, STOPSIGNAL, ENTRYPOINT, CMD, LABEL, ARG: read from the final stage below
    }
  }
  return { dir, workdir, env, user }
}

/** Makes the replayed image readable (not writable) by the unprivileged user the server runs as. */
function readableByAll (dir: string): void {
  for (let d = dir; d !== path.dirname(d) && d.startsWith(os.tmpdir()) && d !== os.tmpdir(); d = path.dirname(d)) fs.chmodSync(d, 0o755)
  execFileSync('chmod', ['-R', 'a+rX,go-w', dir])
}

async function main (): Promise<void> {
  if (spawnSync('git', ['--version']).status !== 0) fail('git is needed to list the build context')
  const dockerfile = fs.readFileSync(path.join(root, 'Dockerfile'), 'utf8')
  const stages = parseStages(dockerfile)
  const final = stages[stages.length - 1]
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'losshub-image-'))
  let child: ReturnType<typeof spawn> | undefined
  try {
    const { files, ignored } = contextFiles()
    const context = path.join(tmp, 'context')
    for (const f of files) {
      fs.mkdirSync(path.dirname(path.join(context, f)), { recursive: true })
      fs.copyFileSync(path.join(root, f), path.join(context, f))
    }
    step(`context: ${files.length} files in ${context} (${ignored} left out by .dockerignore)`)

    const done = new Map<string, StageResult>()
    for (const [i, stage] of stages.entries()) {
      step(`stage ${i} "${stage.name}" (FROM ${stage.image}; the host's Node ${process.version} stands in)`)
      const result = replay(stage, path.join(tmp, 'stages', stage.name), context, done)
      done.set(stage.name, result)
      done.set(String(i), result)
    }
    const image = done.get(final.name) as StageResult

    // the runtime node_modules is exactly the lockfile's production tree: nothing marked dev
    // (devDependencies and what only they need), nothing of production missing
    const lock = JSON.parse(fs.readFileSync(path.join(context, 'package-lock.json'), 'utf8')) as { packages: Record<string, { dev?: boolean, optional?: boolean, devOptional?: boolean }> }
    const appDir = path.join(image.dir, image.workdir)
    const entries = Object.entries(lock.packages).filter(([p]) => p.startsWith('node_modules/'))
    const leaked = entries.filter(([p, e]) => e.dev === true && fs.existsSync(path.join(appDir, p))).map(([p]) => p)
    if (leaked.length > 0) fail(`dev-only packages in the runtime node_modules: ${leaked.slice(0, 10).join(', ')}${leaked.length > 10 ? ', ...' : ''}`)
    const prod = entries.filter(([, e]) => e.dev !== true && e.devOptional !== true && e.optional !== true)
    const absent = prod.filter(([p]) => !fs.existsSync(path.join(appDir, p))).map(([p]) => p)
    if (absent.length > 0) fail(`production packages missing from the runtime node_modules: ${absent.slice(0, 10).join(', ')}`)
    step(`runtime node_modules: the lockfile's ${prod.length} production packages, none of its ${entries.filter(([, e]) => e.dev === true).length} dev-only ones`)

    const last = (op: string): string | undefined => final.instructions.filter(i => i.op === op).pop()?.args
    const entrypoint = execForm(last('ENTRYPOINT') ?? '[]') ?? fail('ENTRYPOINT is not exec form')
    const cmd = execForm(last('CMD') ?? '') ?? fail('CMD is not exec form')
    const tiniHere = entrypoint.length > 0 && fs.existsSync(entrypoint[0])
    const argv = [...(tiniHere ? entrypoint : []), ...cmd].map(a => a === 'node' ? process.execPath : a)
    if (!tiniHere && entrypoint.length > 0) step(`ENTRYPOINT ${entrypoint.join(' ')} is not on this host: running CMD directly`)
    const stopSignal = (last('STOPSIGNAL') ?? 'SIGTERM') as NodeJS.Signals

    const port = await freePort()
    const grpcPort = await freePort()
    const env = { PATH: process.env.PATH ?? '/usr/bin:/bin', ...image.env, HOST: '127.0.0.1', PORT: String(port), GRPC_PORT: String(grpcPort) }
    const cwd = path.join(image.dir, image.workdir)
    let identity: { uid?: number, gid?: number } = {}
    let who = `uid ${process.getuid?.()}`
    if (process.getuid?.() === 0 && image.user !== undefined) {
      const u = lookupUser(image.user)
      readableByAll(image.dir)
      identity = { uid: u.uid, gid: u.gid }
      who = u.as
    }
    step(`start: ${argv.join(' ')} in ${cwd} as ${who}, env ${JSON.stringify({ ...image.env, HOST: env.HOST, PORT: env.PORT, GRPC_PORT: env.GRPC_PORT })}`)
    const proc = spawn(argv[0], argv.slice(1), { cwd, env, ...identity, stdio: ['ignore', 'pipe', 'pipe'] })
    child = proc
    const logs: string[] = []
    proc.stdout?.on('data', (b: Buffer) => logs.push(...b.toString().split('\n').filter(Boolean)))
    proc.stderr?.on('data', (b: Buffer) => logs.push(...b.toString().split('\n').filter(Boolean)))
    const exited = new Promise<{ code: number | null, signal: NodeJS.Signals | null }>(resolve => proc.once('exit', (code, signal) => resolve({ code, signal })))
    const url = `http://127.0.0.1:${port}`

    const readyBy = Date.now() + 120_000
    for (;;) {
      if (proc.exitCode !== null) fail(`the server exited with ${proc.exitCode} before it was ready:\n${logs.slice(-20).join('\n')}`)
      const r = await fetch(`${url}/readyz`).catch(() => undefined)
      if (r?.status === 200) break
      if (Date.now() > readyBy) fail('not ready after 120 s')
      await new Promise(resolve => setTimeout(resolve, 200))
    }
    step(`GET /readyz: 200 after ${((Date.now() - started) / 1000).toFixed(1)}s in total`)

    // the health service a Kubernetes grpc probe calls, through the image's own .proto
    const healthProto = path.join(cwd, 'proto', 'health.proto')
    if (!fs.existsSync(healthProto)) fail('proto/health.proto is not in the image')
    const Health = (grpc.loadPackageDefinition(protoLoader.loadSync(healthProto, { enums: String })) as any).grpc.health.v1.Health
    const client = new Health(`127.0.0.1:${grpcPort}`, grpc.credentials.createInsecure())
    const status = await new Promise<string>((resolve, reject) => client.Check({ service: '' }, { deadline: Date.now() + 10_000 }, (err: Error | null, r: { status: string }) => err === null ? resolve(r.status) : reject(err)))
    client.close()
    if (status !== 'SERVING') fail(`gRPC health check: ${status}, expected SERVING`)
    step(`gRPC grpc.health.v1.Health/Check on port ${grpcPort}: SERVING`)

    const health = last('HEALTHCHECK')?.replace(/^(--\S+\s+)*CMD\s+/, '')
    if (health !== undefined) {
      const h = spawnSync('sh', ['-c', health], { cwd, env: { ...env, PATH: `${path.dirname(process.execPath)}:${env.PATH}` }, timeout: 10_000 })
      if (h.status !== 0) fail(`HEALTHCHECK command exited with ${h.status}: ${health}`)
      step('HEALTHCHECK command: exit 0')
    }

    // a 503 with Retry-After is the API's "try again shortly" (load shedding): a client retries
    let r: Response
    let body: { loss?: number, code?: string }
    for (let attempt = 1; ; attempt++) {
      r = await fetch(`${url}/loss/cross_entropy`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ input: [[1, 2], [1, 3], [1, 3]], target: [0, 1, 1] })
      })
      body = await r.json() as typeof body
      const retryAfter = Number(r.headers.get('retry-after'))
      if (r.status !== 503 || !(retryAfter >= 0) || attempt === 3) break
      step(`POST /loss/cross_entropy: 503 ${JSON.stringify(body)}; retrying after ${retryAfter} s (Retry-After)`)
      await new Promise(resolve => setTimeout(resolve, retryAfter * 1000))
    }
    if (r.status !== 200) fail(`POST /loss/cross_entropy: ${r.status} ${JSON.stringify(body)}`)
    // PyTorch: F.cross_entropy(tensor([[1.,2],[1,3],[1,3]]), tensor([0,1,1])) = 0.52237
    if (typeof body.loss !== 'number' || Math.abs(body.loss - 0.5223726) > 1e-5) fail(`POST /loss/cross_entropy: loss ${JSON.stringify(body.loss)}, expected 0.5223726`)
    step(`POST /loss/cross_entropy: 200 ${JSON.stringify(body)}`)

    const signalled = Date.now()
    proc.kill(stopSignal)
    const timer = setTimeout(() => proc.kill('SIGKILL'), 30_000)
    const { code, signal } = await exited
    clearTimeout(timer)
    if (code !== 0) fail(`after ${stopSignal}: exit ${code ?? signal} (expected 0):\n${logs.slice(-20).join('\n')}`)
    step(`${stopSignal}: exit 0 after ${Date.now() - signalled} ms`)
    step('OK')
  } finally {
    if (child !== undefined && child.exitCode === null && child.signalCode === null) child.kill('SIGKILL')
    if (keep) step(`kept ${tmp}`)
    else fs.rmSync(tmp, { recursive: true, force: true })
  }
}

if (require.main === module) {
  main().catch(err => {
    console.error(`verify:image FAILED: ${(err as Error).message}`)
    process.exit(1)
  })
}
