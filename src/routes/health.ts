import { type FastifyInstance } from 'fastify'
import { Type } from '@sinclair/typebox'
import { notReadyResponse } from '../../schemas/responses'
import { type ErrorCode } from '../errors'
import { errorBody } from '../http/errors'

/** What readiness depends on: kernels loaded, not draining, not shedding load. */
export interface Readiness { ready: () => boolean, draining: () => boolean, overloaded: () => boolean }

/** Why the instance is not ready (code and message), or undefined when it is: the rule of every readiness probe. */
export function notReady (r: Readiness): [ErrorCode, string] | undefined {
  if (r.draining()) return ['SHUTTING_DOWN', 'draining: this instance is shutting down']
  if (!r.ready()) return ['STARTING', 'starting: kernels are still loading']
  // a shedding instance is not ready: the load balancer sends its traffic elsewhere meanwhile
  if (r.overloaded()) return ['OVERLOADED', 'overloaded: shedding load']
  return undefined
}

const Status = Type.Object({ status: Type.String({ description: '"ok" (liveness) or "ready" (readiness).' }) })

/** Liveness and readiness probes. */
export async function healthRoutes (app: FastifyInstance, opts: { readiness: Readiness }): Promise<void> {
  app.get('/healthz', {
    schema: {
      operationId: 'healthz',
      summary: 'Liveness: 200 while the process serves.',
      description: 'For liveness probes: answers as soon as the server listens, also while kernels load or while draining.',
      tags: ['operations'],
      response: { 200: { ...Status, description: 'The process serves.', examples: [{ status: 'ok' }] } }
    }
  }, async () => ({ status: 'ok' }))
  app.get('/readyz', {
    schema: {
      operationId: 'readyz',
      summary: 'Readiness: 200 once every kernel is loaded, 503 while starting, draining or shedding load.',
      description: 'For readiness probes and load balancers: route traffic here only while this answers 200.',
      tags: ['operations'],
      response: { 200: { ...Status, description: 'Every kernel is loaded; the instance takes requests.', examples: [{ status: 'ready' }] }, 503: notReadyResponse }
    }
  }, async (_request, reply) => {
    const why = notReady(opts.readiness)
    if (why !== undefined) return await reply.code(503).header('Retry-After', '1').send(errorBody(...why))
    return { status: 'ready' }
  })
}
