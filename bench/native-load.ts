/**
 * Load generators written in C, for throughput cells: wrk (HTTP/1.1) and h2load (HTTP/2, from
 * nghttp2; it sends gRPC frames as request bodies). On a 2-core machine the generator shares
 * the cores with the servers, and a JavaScript generator (autocannon, node:http2) spends a
 * large share of them: the faster server, making more requests, loses more CPU to its client.
 * The C generators spend much less per request. Both are Debian packages (`wrk`,
 * `nghttp2-client`); a bench uses them only when they are on PATH.
 */
import { execFile, spawnSync } from 'node:child_process'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'

/** Throughput and latency of one run; errors are non-2xx answers and socket errors. */
export interface LoadResult { rps: number, p50: number, p99: number, errors: number }

/** Whether `tool` runs from PATH. */
export function hasTool (tool: 'wrk' | 'h2load'): boolean {
  return spawnSync(tool, ['--version'], { stdio: 'ignore' }).error === undefined
}

async function run (tool: string, args: string[]): Promise<string> {
  return await new Promise((resolve, reject) => {
    execFile(tool, args, { maxBuffer: 1 << 20 }, (err, stdout, stderr) => err === null ? resolve(stdout) : reject(new Error(`${tool}: ${err.message} ${stderr}`)))
  })
}

/** A wrk or h2load duration (`812.00us`, `5.00ms`, `1.20s`) in milliseconds. */
export function durationMs (text: string): number {
  const m = /^([\d.]+)(us|ms|s|m)$/.exec(text.trim())
  if (m === null) throw new Error(`not a duration: '${text}'`)
  return Number(m[1]) * { us: 1e-3, ms: 1, s: 1e3, m: 6e4 }[m[2] as 'us' | 'ms' | 's' | 'm']
}

/** A file in a fresh temporary directory, holding `data`; removed by the returned function. */
function tempFile (name: string, data: string | Buffer): [string, () => void] {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'losshub-bench-'))
  const file = path.join(dir, name)
  fs.writeFileSync(file, data)
  return [file, () => fs.rmSync(dir, { recursive: true, force: true })]
}

/**
 * POSTs `body` to `url` over `connections` keep-alive connections for `seconds` with wrk (one
 * thread); p50 and p99 from its latency distribution. A request unanswered after 10 s (as
 * autocannon waits) counts as an error.
 */
export async function wrkPost (url: string, body: string | Buffer, headers: Record<string, string>, connections: number, seconds: number): Promise<LoadResult> {
  const [bodyFile, removeBody] = tempFile('body', body)
  const lua = [
    'wrk.method = "POST"',
    ...Object.entries(headers).map(([k, v]) => `wrk.headers[${JSON.stringify(k)}] = ${JSON.stringify(v)}`),
    `local f = io.open(${JSON.stringify(bodyFile)}, "rb")`,
    'wrk.body = f:read("*a")',
    'f:close()'
  ].join('\n')
  const [script, removeScript] = tempFile('post.lua', lua)
  try {
    const out = await run('wrk', ['-t1', `-c${connections}`, `-d${seconds}s`, '--timeout', '10s', '--latency', '-s', script, url])
    const percentile = (p: string): number => {
      const m = new RegExp(`^\\s+${p}%\\s+(\\S+)`, 'm').exec(out)
      if (m === null) throw new Error(`wrk: no ${p}% latency in\n${out}`)
      return durationMs(m[1])
    }
    const rps = /^Requests\/sec:\s+([\d.]+)/m.exec(out)
    if (rps === null) throw new Error(`wrk: no Requests/sec in\n${out}`)
    const non2xx = Number(/Non-2xx or 3xx responses:\s+(\d+)/.exec(out)?.[1] ?? 0)
    const socket = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(out)
    const socketErrors = socket === null ? 0 : socket.slice(1).reduce((a, b) => a + Number(b), 0)
    return { rps: Number(rps[1]), p50: percentile('50'), p99: percentile('99'), errors: non2xx + socketErrors }
  } finally {
    removeScript()
    removeBody()
  }
}

/**
 * POSTs `body` (for gRPC: the framed message) to `url` with h2load for `seconds` after a
 * one-second warm-up: `connections` HTTP/2 connections carrying `streams` requests each at a
 * time. h2load reports no latency percentiles, so only the rate is kept. It sees HTTP statuses
 * only: a gRPC error is a 200 with a grpc-status trailer, so a gRPC bench counts its errors on
 * the server (its /metrics).
 */
export async function h2loadPost (url: string, body: Buffer, headers: Record<string, string>,
  connections: number, streams: number, seconds: number): Promise<{ rps: number, errors: number }> {
  const [bodyFile, removeBody] = tempFile('body', body)
  try {
    const out = await run('h2load', ['-D', String(seconds), '--warm-up-time=1', '-c', String(connections), '-m', String(streams),
      ...Object.entries(headers).flatMap(([k, v]) => ['-H', `${k}: ${v}`]), '-d', bodyFile, url])
    const rate = /^finished in \S+, ([\d.]+) req\/s/m.exec(out)
    const done = /^requests: \d+ total, \d+ started, \d+ done, \d+ succeeded, (\d+) failed, (\d+) errored, (\d+) timeout/m.exec(out)
    const codes = /^status codes: \d+ 2xx, (\d+) 3xx, (\d+) 4xx, (\d+) 5xx/m.exec(out)
    if (rate === null || done === null || codes === null) throw new Error(`h2load: unexpected output\n${out}`)
    const errors = [...done.slice(1), ...codes.slice(1)].reduce((a, b) => a + Number(b), 0)
    return { rps: Number(rate[1]), errors }
  } finally {
    removeBody()
  }
}
