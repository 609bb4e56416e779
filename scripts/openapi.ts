/** Writes openapi.yaml from the schemas the server serves (npm run openapi). */
import fs from 'node:fs'
import path from 'node:path'
import { buildApp } from '../src/app'

async function main (): Promise<void> {
  const app = await buildApp({}, { logger: false })
  await app.ready()
  const file = path.join(__dirname, '..', 'openapi.yaml')
  fs.writeFileSync(file, app.swagger({ yaml: true }))
  await app.close()
  console.log(`wrote ${path.relative(process.cwd(), file)}`)
}

main().catch(err => { console.error(err); process.exit(1) })
