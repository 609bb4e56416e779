import { type FastifyInstance } from 'fastify'
import { Type } from '@sinclair/typebox'
import { ErrorResponse } from '../../schemas/error'
import { errorBody } from '../http/errors'

/** What readiness depends on: kernels loaded, not draining. */
export interface Readiness { ready: () => boolean, draining: () => boolean }

const Status = Type.Object({ status: Type.String() })

/** Liveness and readiness probes. */
export async function healthRoutes (app: FastifyInstance, opts: { readiness: Readiness }): Promise<void> {
  app.get('/healthz', { schema: { operationId: 'healthz', summary: 'Liveness: 200 while the process serves.', tags: ['operations'], response: { 200: Status } } },
    async () => ({ status: 'ok' }))
  app.get('/readyz', {
    schema: { operationId: 'readyz', summary: 'Readiness: 200 once every kernel is loaded, 503 while starting or draining.', tags: ['operations'], response: { 200: Status, 503: Type.Ref(ErrorResponse) } }
  }, async (_request, reply) => {
    const { ready, draining } = opts.readiness
    if (draining()) return await reply.code(503).header('Retry-After', '1').send(errorBody('SHUTTING_DOWN', 'draining: this instance is shutting down'))
    if (!ready()) return await reply.code(503).header('Retry-After', '1').send(errorBody('STARTING', 'starting: kernels are still loading'))
    return { status: 'ready' }
  })
}
