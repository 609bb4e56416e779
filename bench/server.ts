import { type ChildProcess, fork, spawn } from 'node:child_process'
import fs from 'node:fs'
import net from 'node:net'
import path from 'node:path'
import { OLD_SPACE_FLOOR } from '../src/heap'

/** A free loopback port (asked of the OS, then released for the server to take). */
export async function freePort (): Promise<number> {
  return await new Promise((resolve, reject) => {
    const srv = net.createServer().listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as net.AddressInfo
      srv.close(() => resolve(port))
    }).on('error', reject)
  })
}

/** A process's resident set in MiB, from /proc (Linux). */
export function residentMiB (pid: number): number {
  return Number(/VmRSS:\s+(\d+)/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? 0) / 1024
}

/** The allocator settings the service ships with (package.json's start script, the Dockerfile). */
export const SERVICE_MALLOC = 'glibc.malloc.mmap_threshold=4194304:glibc.malloc.hugetlb=1:glibc.malloc.arena_max=2'

/**
 * A built losshub server (dist/) on loopback with extra environment (gRPC off unless it sets
 * GRPC_PORT), ready to serve; started as `npm start` starts it, with the heap's floor
 * (`nodeFlags` replaces the node flags).
 */
export async function startServer (env: Record<string, string>, nodeFlags: string[] = [OLD_SPACE_FLOOR]): Promise<{ url: string, pid: number, stop: () => Promise<void> }> {
  const entry = path.join(__dirname, '..', 'src', 'server.js')
  const port = await freePort()
  const child: ChildProcess = spawn(process.execPath, [...nodeFlags, entry], { env: { ...process.env, GLIBC_TUNABLES: SERVICE_MALLOC, PORT: String(port), GRPC_PORT: '0', HOST: '127.0.0.1', LOG_LEVEL: 'warn', ...env }, stdio: ['ignore', 'ignore', 'inherit'] })
  const exited = new Promise<void>(resolve => child.once('exit', () => resolve()))
  let gone = false
  void exited.then(() => { gone = true })
  const url = `http://127.0.0.1:${port}`
  for (let i = 0; ; i++) {
    if (gone || i > 1200) throw new Error('server did not become ready')
    if ((await fetch(`${url}/readyz`).catch(() => undefined))?.status === 200) break
    await new Promise(resolve => setTimeout(resolve, 50))
  }
  return { url, pid: child.pid as number, stop: async () => { child.kill('SIGTERM'); await exited } }
}

/** bench/bare-server.ts in a process of its own: its ports, and how to stop it. */
export async function startBare (): Promise<{ http: number, grpc: number, h2: number, fastify: number, stop: () => void }> {
  // with the service's allocator settings, as the service runs
  const child = fork(path.join(__dirname, 'bare-server.js'), { stdio: ['ignore', 'pipe', 'inherit', 'ipc'], env: { ...process.env, GLIBC_TUNABLES: SERVICE_MALLOC } })
  const ports = await new Promise<{ http: number, grpc: number, h2: number, fastify: number }>((resolve, reject) => {
    child.stdout?.once('data', (b: Buffer) => resolve(JSON.parse(b.toString())))
    child.once('exit', () => reject(new Error('bare-server exited')))
  })
  return { ...ports, stop: () => { child.kill('SIGTERM') } }
}
