/** A plain HTTP/1.1 client for the fuzz suite: any body and headers, and a deadline per request. */
import http from 'node:http'
import { type Answer } from './oracle'

/** An answer, or `undefined` when none came before the deadline (the request is then abandoned). */
export async function request (
  port: number,
  method: string,
  path: string,
  body: string | Buffer | undefined,
  headers: Record<string, string>,
  timeoutMs: number
): Promise<Answer | undefined> {
  return await new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, method, path, headers, agent: false }, res => {
      const chunks: Buffer[] = []
      res.on('data', (c: Buffer) => chunks.push(c))
      res.on('end', () => {
        clearTimeout(timer)
        const text = Buffer.concat(chunks).toString('utf8')
        let parsed: unknown = text
        try { parsed = JSON.parse(text) } catch {}
        resolve({ status: res.statusCode ?? 0, body: parsed })
      })
      res.on('error', reject)
    })
    const timer = setTimeout(() => { req.destroy(); resolve(undefined) }, timeoutMs)
    req.on('error', err => { clearTimeout(timer); reject(err) })
    req.end(body)
  })
}
