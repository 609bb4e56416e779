import { buildApp } from './app'
import { loadConfig } from './config'

/** Starts losshub: listens on HOST:PORT and closes cleanly on SIGTERM/SIGINT. */
async function main (): Promise<void> {
  const config = loadConfig()
  const app = await buildApp(config)
  await app.listen({ port: config.port, host: config.host })
  await app.losshub.warmed
  app.log.info('kernels loaded; ready')
  for (const signal of ['SIGTERM', 'SIGINT'] as const) {
    process.once(signal, () => {
      app.log.info({ signal }, 'shutting down')
      app.losshub.draining = true
      app.close().then(() => process.exit(0), err => { app.log.error({ err }, 'shutdown failed'); process.exit(1) })
    })
  }
}

main().catch(err => {
  console.error(err)
  process.exit(1)
})
