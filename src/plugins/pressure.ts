import { performance } from 'node:perf_hooks'
import { type FastifyInstance } from 'fastify'
import fp from 'fastify-plugin'
import { errorBody } from '../http/errors'
import { EventLoopLag } from './event-loop-lag'

/** How often the lag timer fires, and how long a window its samples are averaged over. */
const PERIOD_MS = 10
const WINDOW_MS = 1000

declare module 'fastify' {
  interface FastifyInstance {
    /** True while loss requests are being shed (readiness fails meanwhile). */
    isUnderPressure(): boolean
  }
}

/** Which bound is exceeded, and by what value (ms of lag or bytes of RSS). */
interface Pressure { type: 'eventLoopDelay' | 'rssBytes', value: number }

/**
 * Load shedding: while the event loop lags past `maxEventLoopDelayMs` (mean lag over the last
 * second) or the resident set passes `maxRssMb`, evaluations (every POST route evaluates
 * losses) get 503 OVERLOADED with Retry-After at once instead of slowing everyone down, and
 * `isUnderPressure()` is true (so readiness fails). Probes, catalog and metrics (GET) are always
 * answered. A bound of 0 turns its check off.
 */
async function pressurePlugin (app: FastifyInstance, opts: { maxEventLoopDelayMs: number, maxRssMb: number }): Promise<void> {
  if (opts.maxEventLoopDelayMs <= 0 && opts.maxRssMb <= 0) return
  const maxRssBytes = opts.maxRssMb * 1024 * 1024
  const lag = new EventLoopLag(PERIOD_MS, WINDOW_MS, performance.now())
  let rssBytes = process.memoryUsage.rss()
  const timer = setTimeout(() => {
    if (lag.tick(performance.now())) rssBytes = process.memoryUsage.rss()
    timer.refresh()
  }, PERIOD_MS).unref()
  app.addHook('onClose', async () => { clearTimeout(timer) })

  const pressure = (): Pressure | undefined => {
    if (opts.maxEventLoopDelayMs > 0 && lag.delayMs > opts.maxEventLoopDelayMs) return { type: 'eventLoopDelay', value: lag.delayMs }
    if (maxRssBytes > 0 && rssBytes > maxRssBytes) return { type: 'rssBytes', value: rssBytes }
    return undefined
  }
  app.decorate('isUnderPressure', () => pressure() !== undefined)
  app.addHook('onRequest', async (request, reply) => {
    if (request.method !== 'POST') return
    const p = pressure()
    if (p === undefined) return
    request.log.warn(p, 'shedding load')
    return await reply.code(503).header('Retry-After', '1').send(errorBody('OVERLOADED', `overloaded (${p.type} at ${Math.round(p.value)}); retry`))
  })
}

/** Not encapsulated: its hooks apply to every route of the app. */
export const pressure = fp(pressurePlugin, { name: 'losshub-pressure' })
