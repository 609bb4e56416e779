/**
 * Compiles src/tensor/number-row.wat into src/tensor/number-row-wasm.ts (`npm run wasm`): the
 * module's bytes in base64, so that the service needs no compiler at run time. A test checks
 * that the two agree (test/tensor/number-row.test.ts).
 */
import fs from 'node:fs'
import path from 'node:path'
import wabt from 'wabt'

const WAT = path.join(__dirname, '..', 'src', 'tensor', 'number-row.wat')
const OUT = path.join(__dirname, '..', 'src', 'tensor', 'number-row-wasm.ts')

/** The module's bytes, compiled from its text. */
export async function compileNumberRow (): Promise<Buffer> {
  const module = (await wabt()).parseWat(WAT, fs.readFileSync(WAT, 'utf8'))
  try {
    module.validate()
    return Buffer.from(module.toBinary({}).buffer)
  } finally {
    module.destroy()
  }
}

/** The TypeScript source holding `bytes`. */
export function numberRowSource (bytes: Buffer): string {
  return `// Written by \`npm run wasm\` (scripts/wasm.ts) from number-row.wat: do not edit.\nexport const NUMBER_ROW_WASM = '${bytes.toString('base64')}'\n`
}

if (require.main === module) {
  void compileNumberRow().then(bytes => {
    fs.writeFileSync(OUT, numberRowSource(bytes))
    console.log(`wrote ${path.relative(process.cwd(), OUT)} (${bytes.length} bytes of WebAssembly)`)
  })
}
