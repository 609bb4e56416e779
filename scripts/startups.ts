/**
 * Back-to-back start-ups: starts the built server (dist/) again and again, and the moment
 * `/readyz` first answers 200 sends one loss request, which a ready instance must serve (200).
 * Then SIGTERM, which must exit 0. Prints one line per start-up and a summary; exits 1 if any failed.
 *
 * Usage: npm run build && npx ts-node-transpile-only scripts/startups.ts [runs] [KEY=VALUE ...]
 * (default 40 runs; each KEY=VALUE is added to the server's environment, e.g. WORKERS=0).
 */
import { type ChildProcess, spawn } from 'node:child_process'
import path from 'node:path'

const entry = path.join(__dirname, '..', 'dist', 'src', 'server.js')
const body = JSON.stringify({ input: [[1, 2], [1, 3], [1, 3]], target: [0, 1, 1] })

/** What one start-up gave: the first loss request's status (and error code), and the exit code after SIGTERM. */
export interface StartupResult { status: number, code?: string, exitCode: number | null, ms: number }

/** Starts the server with `env` on a free port, waits for readiness, sends one request, stops it. */
export async function startOnce (env: Record<string, string> = {}): Promise<StartupResult> {
  const t0 = Date.now()
  const child = spawn(process.execPath, [entry], {
    env: { ...process.env, PORT: '0', GRPC_PORT: '0', HOST: '127.0.0.1', ...env, LOG_LEVEL: 'info' }, // info: the "listening" line gives the port
    stdio: ['ignore', 'pipe', 'inherit']
  })
  const exited = new Promise<number | null>(resolve => child.once('exit', code => resolve(code)))
  try {
    const url = await listeningUrl(child, exited)
    await untilReady(url)
    const res = await fetch(`${url}/loss/cross_entropy`, { method: 'POST', headers: { 'content-type': 'application/json' }, body })
    const answer = await res.json() as { code?: string }
    const ms = Date.now() - t0
    child.kill('SIGTERM')
    return { status: res.status, code: answer.code, exitCode: await exited, ms }
  } finally {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL')
  }
}

/** Resolves with the URL from the "Server listening at" log line (any worker's, under node:cluster); 30 s at most. */
async function listeningUrl (child: ChildProcess, exited: Promise<number | null>): Promise<string> {
  return await new Promise<string>((resolve, reject) => {
    setTimeout(() => reject(new Error('not listening within 30 s')), 30000).unref()
    let buffer = ''
    child.stdout?.on('data', (chunk: Buffer) => {
      buffer += chunk.toString()
      const m = /Server listening at (http:\/\/127\.0\.0\.1:\d+)/.exec(buffer)
      if (m !== null) resolve(m[1])
      buffer = buffer.slice(Math.max(0, buffer.lastIndexOf('\n')))
    })
    void exited.then(code => reject(new Error(`server exited with ${code} before listening`)))
  })
}

/** Polls GET /readyz every 20 ms until it first answers 200 (30 s at most). */
async function untilReady (url: string): Promise<void> {
  const end = Date.now() + 30000
  while (Date.now() < end) {
    const status = await fetch(`${url}/readyz`).then(r => r.status, () => 0)
    if (status === 200) return
    await new Promise(resolve => setTimeout(resolve, 20))
  }
  throw new Error('not ready within 30 s')
}

async function main (): Promise<void> {
  const args = process.argv.slice(2)
  const runs = args[0] !== undefined && !args[0].includes('=') ? Number(args.shift()) : 40
  const env = Object.fromEntries(args.map(a => [a.slice(0, a.indexOf('=')), a.slice(a.indexOf('=') + 1)]))
  let failed = 0
  for (let i = 1; i <= runs; i++) {
    const r = await startOnce(env).catch((err: Error) => ({ status: 0, code: err.message, exitCode: null, ms: 0 }))
    const ok = r.status === 200 && r.exitCode === 0
    if (!ok) failed++
    console.log(`${String(i).padStart(3)} ${ok ? 'ok  ' : 'FAIL'} status ${r.status}${r.code !== undefined ? ` ${r.code}` : ''}, exit ${r.exitCode}, ${r.ms} ms`)
  }
  console.log(`${runs - failed} of ${runs} start-ups served their first request (env: ${JSON.stringify(env)})`)
  process.exitCode = failed === 0 ? 0 : 1
}

if (require.main === module) void main()
