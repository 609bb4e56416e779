/**
 * The gRPC front door of a real server process (the built dist/src/server.js) under node:cluster:
 * every worker serves the one GRPC_PORT beside HTTP (the primary hands out its connections, as
 * it does the HTTP port's), ready with /readyz; SIGTERM drains and exits 0.
 */
import * as grpc from '@grpc/grpc-js'
import net from 'node:net'
import t from 'tap'
import { startServer, waitReady } from '../../helpers/server'
import { clients, loadPackage, outputsOf, rawInputs } from './grpc'

/** A free loopback port (asked of the OS, then released for the server to take). */
async function freePort (): Promise<number> {
  return await new Promise((resolve, reject) => {
    const srv = net.createServer().listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as net.AddressInfo
      srv.close(() => resolve(port))
    }).on('error', reject)
  })
}

const ce = rawInputs([
  { name: 'input', t: { dtype: 'float32', shape: [3, 2], data: [1, 2, 1, 3, 1, 3] } },
  { name: 'target', t: { dtype: 'int64', shape: [3], data: [0, 1, 1] } }
])
// F.cross_entropy(tensor([[1.,2],[1,3],[1,3]]), tensor([0,1,1]))
const CE_LOSS = 0.5223726

t.test('WORKERS=2: both workers serve GRPC_PORT beside HTTP, connections spread across them; SIGTERM drains and exits 0', async t => {
  const port = await freePort()
  const server = await startServer(t, { WORKERS: '2', GRPC_PORT: String(port) })
  await waitReady(server.url)
  // a worker binds its ports once its kernels are loaded: wait for the second one too
  for (let i = 0; i < 600 && new Set(server.logs.filter(l => /gRPC listening/.test(l)).map(l => JSON.parse(l).pid)).size < 2; i++) {
    await new Promise(resolve => setTimeout(resolve, 50))
  }
  const c = clients(port)
  t.teardown(() => c.close())
  const health = await c.call('Check', { service: '' }, { service: 'health' })
  t.same(health.ok ? health.value : health.error, { status: 'SERVING' }, 'ready as /readyz')
  // a local subchannel pool per client: each client opens a connection of its own
  const pkg = loadPackage()
  const many = Array.from({ length: 8 }, () => new pkg.inference.GRPCInferenceService(`127.0.0.1:${port}`, grpc.credentials.createInsecure(), { 'grpc.use_local_subchannel_pool': 1 }))
  t.teardown(() => { for (const c of many) c.close() })
  const answers = await Promise.all(many.map(async c => await new Promise<any>((resolve, reject) => {
    c.ModelInfer({ model_name: 'cross_entropy', ...ce }, (err: Error | null, r: any) => err === null ? resolve(r) : reject(err))
  })))
  for (const r of answers) t.ok(Math.abs(outputsOf(r).get('loss')!.data[0] - CE_LOSS) < 1e-5)
  const listening = server.logs.filter(l => /gRPC listening/.test(l)).map(l => JSON.parse(l).pid)
  t.equal(new Set(listening).size, 2, 'each worker bound the gRPC port')
  const served = new Set(server.logs.filter(l => /"rpc":"ModelInfer"/.test(l)).map(l => JSON.parse(l).pid))
  t.equal(served.size, 2, 'calls were answered by both workers')
  server.child.kill('SIGTERM')
  t.equal(await server.exited, 0)
})
