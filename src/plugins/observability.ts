import { type FastifyInstance } from 'fastify'
import fp from 'fastify-plugin'
import { type Metrics } from '../metrics'

/** Per-request counters and latency for the loss routes, and `GET /metrics`. */
async function observabilityPlugin (app: FastifyInstance, opts: { metrics: Metrics, aggregate?: () => Promise<string> }): Promise<void> {
  const { metrics } = opts
  app.addHook('onResponse', async (request, reply) => {
    const route = request.routeOptions.url ?? ''
    if (!route.startsWith('/loss/') || request.method !== 'POST') return
    // unknown names share one label: a label per arbitrary name would grow without bound
    const loss = route === '/loss/:name' ? 'unknown' : route.slice('/loss/'.length)
    metrics.requests.inc({ loss, status: String(reply.statusCode) })
    metrics.duration.observe({ loss }, reply.elapsedTime / 1000)
  })
  app.get('/metrics', {
    schema: {
      operationId: 'metrics',
      summary: 'Prometheus metrics (text exposition format).',
      description: 'Request counts and latency by loss, batch sizes, queue wait and depth, ONNX run time, and the process and Node.js defaults. Under WORKERS > 1, for the whole cluster.',
      tags: ['operations'],
      produces: ['text/plain'],
      response: { 200: { description: 'Metrics in the Prometheus text format, version 0.0.4.', type: 'string' } }
    }
  }, async (_request, reply) => {
    const text = opts.aggregate !== undefined ? await opts.aggregate() : await metrics.registry.metrics()
    return await reply.type(metrics.registry.contentType).send(text)
  })
}

/** Not encapsulated: its hooks apply to every route of the app. */
export const observability = fp(observabilityPlugin, { name: 'losshub-observability' })
