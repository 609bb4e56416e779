/**
 * Writes every loss's example kernel, with and without gradients, as .onnx files into a
 * folder (default onnx-export/) so the graphs can be opened in Netron (npm run export-onnx).
 */
import fs from 'node:fs'
import path from 'node:path'
import { LOSSES } from '../src/losses'
import { buildModel } from '../src/kernels/kernel'
import { prepare } from '../src/kernels/prepare'
import { exampleBody } from '../src/routes/loss'

const out = path.resolve(process.argv[2] ?? 'onnx-export')
fs.mkdirSync(out, { recursive: true })
for (const def of LOSSES) {
  for (const grad of [false, true]) {
    const call = prepare(def, { ...exampleBody(def), grad })
    const file = path.join(out, `${def.name}${grad ? '.grad' : ''}.onnx`)
    fs.writeFileSync(file, buildModel(call))
  }
}
console.log(`wrote ${LOSSES.length * 2} models to ${out}`)
