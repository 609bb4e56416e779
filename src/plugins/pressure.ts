import { type FastifyInstance } from 'fastify'
import fp from 'fastify-plugin'
import underPressure from '@fastify/under-pressure'
import { errorBody } from '../http/errors'

/**
 * Load shedding: while the event loop lags past `maxEventLoopDelayMs` or the resident set
 * passes `maxRssMb`, loss requests get 503 with Retry-After at once instead of slowing
 * everyone down. Probes and metrics are always answered. A bound of 0 turns its check off.
 */
async function pressurePlugin (app: FastifyInstance, opts: { maxEventLoopDelayMs: number, maxRssMb: number }): Promise<void> {
  if (opts.maxEventLoopDelayMs <= 0 && opts.maxRssMb <= 0) return
  await app.register(underPressure, {
    maxEventLoopDelay: opts.maxEventLoopDelayMs,
    maxRssBytes: opts.maxRssMb * 1024 * 1024,
    retryAfter: 1,
    pressureHandler: (request, reply, type, value) => {
      if (!request.url.startsWith('/loss/') || request.method !== 'POST') return // handled normally
      request.log.warn({ type, value }, 'shedding load')
      void reply.code(503).header('Retry-After', '1').send(errorBody('OVERLOADED', `overloaded (${type} at ${Math.round(Number(value))}); retry`))
    }
  })
}

/** Not encapsulated: its hooks apply to every route of the app. */
export const pressure = fp(pressurePlugin, { name: 'losshub-pressure' })
