import { type AddressInfo } from 'node:net'
import { type Test } from 'tap'
import { type FastifyInstance } from 'fastify'
import { buildApp, type AppOptions } from '../../src/app'
import { type Config } from '../../src/config'

/** A ready app (kernels warmed; on the event loop unless the config asks for workers) closed when the test ends. */
export async function build (t: Test, config: Partial<Config> = {}, options: AppOptions = {}): Promise<FastifyInstance> {
  const app = await buildApp({ kernelWorkers: 0, ...config }, { logger: false, ...options })
  t.teardown(async () => { await app.close() })
  await app.losshub.warmed
  return app
}

/** As `build`, listening on a free loopback port: the app and its port. */
export async function listening (t: Test, config: Partial<Config> = {}, options: AppOptions = {}): Promise<{ app: FastifyInstance, port: number }> {
  const app = await build(t, config, options)
  await app.listen({ port: 0, host: '127.0.0.1' })
  return { app, port: (app.server.address() as AddressInfo).port }
}

/** POSTs a JSON body to /loss/<name> and returns status and parsed body. */
export async function postLoss (app: FastifyInstance, name: string, body: unknown): Promise<{ status: number, body: any, headers: Record<string, unknown> }> {
  const r = await app.inject({ method: 'POST', url: `/loss/${name}`, payload: body as object })
  return { status: r.statusCode, body: r.json(), headers: r.headers }
}
