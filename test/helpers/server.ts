import { type ChildProcess, spawn } from 'node:child_process'
import path from 'node:path'
import { type Test } from 'tap'
import { OLD_SPACE_FLOOR } from '../../src/heap'

/** A real losshub process (the built dist/src/server.js) on a free loopback port. */
export interface Server { url: string, child: ChildProcess, logs: string[], exited: Promise<number | null> }

/**
 * Starts the built server with PORT=0 and resolves once it listens; killed at teardown. One
 * process, gRPC off and no load shedding unless `env` says otherwise: on a busy test machine a
 * start-up's event-loop stall could otherwise shed the test's first requests (shedding has its
 * own test).
 */
export async function startServer (t: Test, env: Record<string, string> = {}): Promise<Server> {
  const entry = path.join(__dirname, '..', '..', 'dist', 'src', 'server.js')
  const child = spawn(process.execPath, [OLD_SPACE_FLOOR, entry], { env: { ...process.env, PORT: '0', GRPC_PORT: '0', HOST: '127.0.0.1', LOG_LEVEL: 'info', WORKERS: '1', MAX_EVENT_LOOP_DELAY_MS: '0', ...env }, stdio: ['ignore', 'pipe', 'inherit'] })
  const exited = new Promise<number | null>(resolve => child.once('exit', code => resolve(code)))
  t.teardown(() => { if (child.exitCode === null) child.kill('SIGKILL') })
  const logs: string[] = []
  const url = await new Promise<string>((resolve, reject) => {
    let buffer = ''
    child.stdout?.on('data', (chunk: Buffer) => {
      buffer += chunk.toString()
      let nl
      while ((nl = buffer.indexOf('\n')) >= 0) {
        const line = buffer.slice(0, nl)
        buffer = buffer.slice(nl + 1)
        logs.push(line)
        const m = /Server listening at (http:\/\/127\.0\.0\.1:\d+)/.exec(line)
        if (m !== null) resolve(m[1])
      }
    })
    void exited.then(code => reject(new Error(`server exited with ${code} before listening`)))
  })
  return { url, child, logs, exited }
}

/** Polls GET /readyz until 200 (or gives up after `ms`). */
export async function waitReady (url: string, ms = 30000): Promise<void> {
  const end = Date.now() + ms
  while (Date.now() < end) {
    const r = await fetch(`${url}/readyz`).catch(() => undefined)
    if (r?.status === 200) return
    await new Promise(resolve => setTimeout(resolve, 50))
  }
  throw new Error('server not ready in time')
}
