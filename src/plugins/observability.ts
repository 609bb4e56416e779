import { type FastifyInstance } from 'fastify'
import fp from 'fastify-plugin'
import { type Metrics, type Protocol } from '../metrics'

/** What the plugin needs: the metrics, the cluster's scrape (under node:cluster), the models V2 serves. */
export interface ObservabilityOptions {
  metrics: Metrics
  aggregate?: () => Promise<string>
  /** Whether a V2 model name is served: any other shares the label `unknown`. */
  isModel?: (name: string) => boolean
}

const V2_INFER = new Set(['/v2/models/:model/infer', '/v2/models/:model/versions/:version/infer'])

/** Counts one loss evaluation answered (any protocol) and its latency. */
export function observeRequest (metrics: Metrics, protocol: Protocol, loss: string, status: number, seconds: number): void {
  metrics.requests.inc({ protocol, loss, status: String(status) })
  metrics.duration.observe({ protocol, loss }, seconds)
}

/** Per-request counters and latency for the loss and V2 inference routes, and `GET /metrics`. */
async function observabilityPlugin (app: FastifyInstance, opts: ObservabilityOptions): Promise<void> {
  const { metrics } = opts
  app.addHook('onResponse', async (request, reply) => {
    if (request.method !== 'POST') return
    const route = request.routeOptions.url ?? ''
    // unknown names share one label: a label per arbitrary name would grow without bound
    if (route.startsWith('/loss/')) {
      observeRequest(metrics, 'loss', route === '/loss/:name' ? 'unknown' : route.slice('/loss/'.length), reply.statusCode, reply.elapsedTime / 1000)
    } else if (V2_INFER.has(route)) {
      const model = (request.params as { model?: string }).model ?? ''
      observeRequest(metrics, 'v2', opts.isModel?.(model) === true ? model : 'unknown', reply.statusCode, reply.elapsedTime / 1000)
    }
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
